"""The lake's daily partitions in Dagster: one ``lake_days`` key (``YYYY-MM-DD``) per ``date=`` folder of the bars.

Dynamic, not a calendar: a key exists for every day the lake holds bars (no weekends or holidays without data, any
start date, any bar interval). Keys are added in date order as days land (the landing sensor, ``foxlake
materialize``, the tests); ``bars`` and ``features`` are partitioned by them with a single-run backfill policy, so a
run (or a backfill of chosen days) covers a range of days at once, and the Dagster UI shows each day.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from ml.config import RunConfig
from ml.ingest import check_landing_file, pending_landing_files
from ml.lake import partitions, table_dir
from ml.synthetic import trading_timestamps

LAKE_DAYS = dg.DynamicPartitionsDefinition(name="lake_days")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def days_to_load(results: str | Path, cfg: RunConfig) -> list[str]:
    """The days a run of ``bars`` produces: the synthetic history's, or the lake's and the pending landing files'."""
    if cfg.data_source == "synthetic":  # the history's bar times, without generating the market
        m = cfg.market
        return sorted({ts.date().isoformat() for ts in trading_timestamps(m.start, m.n_bars, m.interval_minutes)})
    days = set(partitions(table_dir(results, "bars", cfg.bar_interval_minutes)))
    for path, _digest in pending_landing_files(results):
        days |= set(check_landing_file(path)[1])
    return sorted(days)


def new_days(instance: dg.DagsterInstance, days: Iterable[str]) -> list[str]:
    """Of ``days``, those the instance has no ``lake_days`` key for yet (sorted)."""
    have = set(instance.get_dynamic_partitions(LAKE_DAYS.name))
    return sorted(set(days) - have)


def range_tags(days: Iterable[str]) -> dict[str, str]:
    """Run tags selecting the partition range first..last of ``days``."""
    days = sorted(days)
    if not days:
        raise ValueError("no lake day to materialize: the lake holds no bars and no landing file is pending")
    return {RANGE_START: days[0], RANGE_END: days[-1]}


def lake_run_tags(instance: dg.DagsterInstance, results: str | Path, cfg: RunConfig) -> dict[str, str]:
    """Register the days a run of ``bars`` produces on ``instance`` and return the tags of a run over all of them
    (what ``foxlake materialize`` and a full materialization in a test use)."""
    days = days_to_load(results, cfg)
    instance.add_dynamic_partitions(LAKE_DAYS.name, new_days(instance, days))
    return range_tags(days)
