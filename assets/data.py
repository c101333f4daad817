"""Data assets: bars (synthetic market or landing files) and features, as time-partitioned parquet in the lake."""

import dagster as dg

from assets.resources import LakeResource
from ml.bars import validate_bars
from ml.feature_store import update_features
from ml.ingest import ingest_landing
from ml.lake import partitions, read_table, table_dir, write_partitions
from ml.synthetic import make_market, split_history

LAKE_POOL = "lake_writer"
"""Ingestion and the feature store write the lake's partitions: one writer at a time (dagster.yaml's pool limit)."""


@dg.asset(group_name="lake", kinds={"parquet", "polars"}, pool=LAKE_POOL)
def bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.Output[dict]:
    """Validated OHLCV bars, one partition file per UTC day: the synthetic market, or landing files ingested."""
    cfg = lake.run_config()
    interval = cfg.bar_interval_minutes
    directory = table_dir(lake.results(), "bars", interval)
    if cfg.data_source == "synthetic":
        history, _live = split_history(make_market(cfg.market), cfg.market)  # the feed lands the live bars
        written = write_partitions(validate_bars(history, source="synthetic market"), directory)
        note = f"synthetic market, seed {cfg.market.seed}"
    else:
        report = ingest_landing(lake.results(), interval_minutes=interval)
        written = report.partitions_written.get(interval, [])
        note = f"landing: {report.files_ingested} file(s) ingested, {report.files_skipped} already ingested"
    dates = partitions(directory)
    if not dates:
        raise dg.Failure(f"{directory}: no bars at interval {interval}; drop files into RESULTS/lake/landing/")
    df = read_table(directory)
    return dg.Output(
        {"path": str(directory), "interval_minutes": interval, "partitions": dates},
        metadata={
            "source": note,
            "rows": df.height,
            "symbols": df["symbol"].n_unique(),
            "partitions": len(dates),
            "partitions_written": len(written),
            "date_range": f"{dates[0]} → {dates[-1]}",
            "interval_minutes": interval,
            "path": dg.MetadataValue.path(str(directory)),
        },
    )


@dg.asset(
    group_name="lake", kinds={"parquet", "polars"}, pool=LAKE_POOL, automation_condition=dg.AutomationCondition.eager()
)
def features(context: dg.AssetExecutionContext, lake: LakeResource, bars: dict) -> dg.Output[dict]:
    """Features (``ml.features``, the same code live trading runs), computed only for new or changed days."""
    cfg = lake.run_config()
    report = update_features(lake.results(), cfg.bar_interval_minutes, list(cfg.features) if cfg.features else None)
    dates = partitions(table_dir(lake.results(), "features", cfg.bar_interval_minutes))
    return dg.Output(
        {"path": report["directory"], "features": report["features"], "partitions": dates},
        metadata={
            "n_features": len(report["features"]),
            "features": ", ".join(report["features"]),
            "partitions_computed": len(report["computed"]),
            "partitions_current": report["current"],
            "date_range": f"{dates[0]} → {dates[-1]}",
            "path": dg.MetadataValue.path(report["directory"]),
        },
    )
