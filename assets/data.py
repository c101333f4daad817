"""Data assets: bars and features+targets in the lake (hive parquet under RESULTS/lake)."""

import dagster as dg

from assets.resources import LakeResource
from ml.bars import validate_bars
from ml.features import build_features, resolve
from ml.lake import read_table, table_dir, write_partitions
from ml.synthetic import make_market
from ml.targets import add_targets


@dg.asset(group_name="lake", kinds={"parquet", "polars"})
def bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.Output[dict]:
    """OHLCV bars of the configured synthetic market, validated, one partition file per day."""
    cfg = lake.run_config()
    df = validate_bars(make_market(cfg.market), source="synthetic market")
    directory = table_dir(lake.results(), "bars", cfg.interval_minutes)
    dates = write_partitions(df, directory)
    return dg.Output(
        {"path": str(directory), "interval_minutes": cfg.interval_minutes, "partitions": dates},
        metadata={
            "rows": df.height,
            "symbols": df["symbol"].n_unique(),
            "partitions": len(dates),
            "date_range": f"{dates[0]} → {dates[-1]}",
            "interval_minutes": cfg.interval_minutes,
            "path": dg.MetadataValue.path(str(directory)),
        },
    )


@dg.asset(group_name="lake", kinds={"parquet", "polars"})
def features(context: dg.AssetExecutionContext, lake: LakeResource, bars: dict) -> dg.Output[dict]:
    """Features (``ml.features``, the same code live trading runs) and forward-return targets."""
    cfg = lake.run_config()
    raw = read_table(table_dir(lake.results(), "bars", cfg.interval_minutes))
    names = resolve(cfg.features)
    panel = add_targets(build_features(raw, names), raw, cfg.targets, cfg.interval_minutes)
    directory = table_dir(lake.results(), "features", cfg.interval_minutes)
    dates = write_partitions(panel, directory)
    return dg.Output(
        {"path": str(directory), "features": names, "targets": cfg.target_names(), "partitions": dates},
        metadata={
            "rows": panel.height,
            "n_features": len(names),
            "features": ", ".join(names),
            "targets": ", ".join(cfg.target_names()),
            "date_range": f"{dates[0]} → {dates[-1]}",
            "path": dg.MetadataValue.path(str(directory)),
        },
    )
