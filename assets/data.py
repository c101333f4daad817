"""Data assets: bars (synthetic market or landing files) and features, partitioned by the lake's days.

Both are partitioned by ``lake_days`` (``assets.partitions``: one key per ``date=`` folder) with a single-run backfill
policy: a run covers a range of days. The files are the record: the assets write parquet under ``RESULTS/lake``
(no IO manager value) and downstream assets read the lake.
"""

import dagster as dg
import polars as pl

from assets.partitions import LAKE_DAYS
from assets.resources import LakeResource
from ml.bars import validate_bars
from ml.feature_store import update_features
from ml.ingest import ingest_landing
from ml.lake import partitions, read_table, table_dir, write_partitions
from ml.synthetic import make_market, split_history

LAKE_POOL = "lake_writer"
"""Ingestion and the feature store write the lake's partitions: one writer at a time (dagster.yaml's pool limit)."""
LAKE_TABLE = {
    "group_name": "lake",
    "kinds": {"parquet", "polars"},
    "pool": LAKE_POOL,
    "partitions_def": LAKE_DAYS,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}
"""What both lake tables are: a day per partition, a range of days per run, one lake writer at a time."""


@dg.asset(**LAKE_TABLE)
def bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Validated OHLCV bars, one partition file per UTC day: the synthetic market's history for the run's days, or
    every pending landing file ingested (each day it holds is written)."""
    cfg = lake.run_config()
    interval = cfg.bar_interval_minutes
    directory = table_dir(lake.results(), "bars", interval)
    days = list(context.partition_keys)
    if cfg.data_source == "synthetic":
        history, _live = split_history(make_market(cfg.market), cfg.market)  # the feed lands the live bars
        history = validate_bars(history, source="synthetic market")
        keep = history.filter(pl.col("ts").dt.date().cast(pl.String).is_in(days))
        written = write_partitions(keep, directory) if keep.height else []
        note = f"synthetic market, seed {cfg.market.seed}"
    else:
        report = ingest_landing(lake.results(), interval_minutes=interval)
        written = report.partitions_written.get(interval, [])
        note = f"landing: {report.files_ingested} file(s) ingested, {len(report.files_skipped)} already ingested"
    dates = partitions(directory)
    missing = sorted(set(days) - set(dates))
    if missing:
        raise dg.Failure(f"{directory}: no bars for the run's day(s) {missing[:5]}; land them in RESULTS/lake/landing/")
    df = read_table(directory, since=days[0])
    return dg.MaterializeResult(
        metadata={
            "source": note,
            "rows": df.height,
            "symbols": df["symbol"].n_unique(),
            "days_in_run": len(days),
            "partitions_written": len(written),
            "lake_days": len(dates),
            "date_range": f"{dates[0]} → {dates[-1]}",
            "interval_minutes": interval,
            "path": dg.MetadataValue.path(str(directory)),
        },
    )


@dg.asset(**LAKE_TABLE, deps=[bars], automation_condition=dg.AutomationCondition.eager())
def features(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Features (``ml.features``, the same code live trading runs), computed only for new or changed days (their
    lookback reads the days before); eager: a day of bars that lands alone gets its features."""
    cfg = lake.run_config()
    report = update_features(lake.results(), cfg.bar_interval_minutes, list(cfg.features) if cfg.features else None)
    dates = partitions(table_dir(lake.results(), "features", cfg.bar_interval_minutes))
    return dg.MaterializeResult(
        metadata={
            "n_features": len(report["features"]),
            "features": ", ".join(report["features"]),
            "days_in_run": len(context.partition_keys),
            "partitions_computed": len(report["computed"]),
            "partitions_current": report["current"],
            "date_range": f"{dates[0]} → {dates[-1]}",
            "path": dg.MetadataValue.path(report["directory"]),
        },
    )
