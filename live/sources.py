"""Bar sources: one interface, two clocks. *Replay* yields the lake's bar timestamps from a start; *follow* does
the same, then keeps polling the lake and yields each new timestamp as it lands (the same engine code runs both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import polars as pl

from ml.lake import read_table, table_dir


def _read(directory: Path, since: datetime) -> pl.DataFrame:
    try:
        bars = read_table(directory, since=since.date().isoformat())
    except FileNotFoundError:
        return pl.DataFrame()
    return bars.filter(pl.col("ts") >= since)


class LakeBars:
    """The lake's bars at one interval, read in day partitions."""

    def __init__(self, results: str | Path, interval_minutes: float) -> None:
        self.directory = table_dir(results, "bars", interval_minutes)
        self.interval_minutes = interval_minutes

    def timestamps(self) -> list[datetime]:
        """Every bar timestamp in the lake (sorted)."""
        files = sorted(self.directory.glob("date=*/part-0.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.directory}: no bars")
        return pl.read_parquet(files, columns=["ts"])["ts"].unique().sort().to_list()

    def between(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Bars with ``start <= ts <= end``."""
        bars = _read(self.directory, start)
        return bars.filter(pl.col("ts") <= end) if not bars.is_empty() else bars

    def at(self, stamps: list[datetime]) -> list[pl.DataFrame]:
        """The bars of each of ``stamps`` (sorted lake timestamps), one frame per timestamp, oldest first: what
        warms a feature buffer."""
        if not stamps:
            return []
        bars = self.between(stamps[0], stamps[-1]).sort("ts")
        by_ts = {k[0]: v for k, v in bars.partition_by("ts", as_dict=True).items()}
        return [by_ts[t] for t in stamps]


def replay(
    lake: LakeBars, after: datetime | None, until: datetime | None = None
) -> Iterator[tuple[datetime, pl.DataFrame]]:
    """(ts, bars at ts) for every lake timestamp after ``after`` (and up to ``until``), read once."""
    stamps = [t for t in lake.timestamps() if (after is None or t > after) and (until is None or t <= until)]
    if not stamps:
        return
    bars = lake.between(stamps[0], stamps[-1])
    by_ts = {k[0]: v for k, v in bars.sort("ts").partition_by("ts", as_dict=True).items()}
    for ts in stamps:
        yield ts, by_ts[ts]


def follow(
    lake: LakeBars,
    after: datetime | None,
    *,
    poll_seconds: float,
    idle_exit_seconds: float,
    on_stale: Callable[[float], None],
    stale_after_seconds: float,
) -> Iterator[tuple[datetime, pl.DataFrame]]:
    """Replay what the lake holds, then poll it every ``poll_seconds`` for new timestamps; ``on_stale(seconds)``
    is called once when no new bar has come for ``stale_after_seconds``; returns after ``idle_exit_seconds``
    without a new bar. A timestamp lands whole (the feed writes every symbol's bar of it in one partition write)."""
    last = after
    quiet_since = time.monotonic()
    warned = False
    while True:
        got = False
        for ts, part in replay(lake, last):
            last, got = ts, True
            yield ts, part
        if got:
            quiet_since, warned = time.monotonic(), False
        quiet = time.monotonic() - quiet_since
        if quiet >= idle_exit_seconds:
            return
        if quiet >= stale_after_seconds and not warned:
            on_stale(quiet)
            warned = True
        time.sleep(poll_seconds)
