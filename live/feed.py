"""The synthetic market feed: lands the market's live bars (``market.live_bars``, withheld from the history the
pipeline trains on) in the landing zone and ingests them, one bar timestamp at a time, at a chosen pace: what a
data vendor's feed does for a real lake. The engine's *follow* mode trades each timestamp as it lands."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ml.config import RunConfig
from ml.ingest import ingest_landing, landing_dir, write_landing_parquet
from ml.lake import read_table, table_dir
from ml.synthetic import make_market, split_history


@dataclass
class FeedReport:
    landed: int
    first_ts: str | None
    last_ts: str | None
    remaining: int


def play(
    results: str | Path,
    cfg: RunConfig,
    *,
    n_bars: int | None = None,
    seconds_per_bar: float = 0.0,
    batch: bool = False,
    on_bar: Callable[[str], None] | None = None,
) -> FeedReport:
    """Land the next ``n_bars`` live bar timestamps (all that remain by default) after the newest one in the lake.

    ``seconds_per_bar`` paces them (0: as fast as ingest goes); ``batch`` lands them as one file (the fastest).

    Raises:
        ValueError: the config is not a synthetic market with ``live_bars``.
    """
    if cfg.data_source != "synthetic" or not cfg.market.live_bars:
        raise ValueError("the market feed plays a synthetic market's live_bars: set market.live_bars in the config")
    results = Path(results)
    interval = cfg.bar_interval_minutes
    _history, live = split_history(make_market(cfg.market), cfg.market)
    directory = table_dir(results, "bars", interval)
    newest = read_table(directory)["ts"].max() if any(directory.glob("date=*/part-0.parquet")) else None
    if newest is None:
        raise ValueError(f"{directory}: no history in the lake; materialize the bars first")
    upcoming = live.filter(pl.col("ts") > newest)
    stamps = upcoming["ts"].unique().sort().to_list()
    todo = stamps if n_bars is None else stamps[:n_bars]
    if not todo:
        return FeedReport(0, None, None, 0)
    land = landing_dir(results)
    if batch:
        part = upcoming.filter(pl.col("ts") <= todo[-1])
        write_landing_parquet(part, land / f"feed-{_stamp(todo[0])}-{_stamp(todo[-1])}.parquet")
        ingest_landing(results, interval_minutes=interval)
        if on_bar:
            on_bar(todo[-1].isoformat())
    else:
        by_ts = {k[0]: v for k, v in upcoming.filter(pl.col("ts") <= todo[-1]).partition_by("ts", as_dict=True).items()}
        for ts in todo:
            t0 = time.monotonic()
            write_landing_parquet(by_ts[ts], land / f"feed-{_stamp(ts)}.parquet")
            ingest_landing(results, interval_minutes=interval)
            if on_bar:
                on_bar(ts.isoformat())
            time.sleep(max(0.0, seconds_per_bar - (time.monotonic() - t0)))
    return FeedReport(len(todo), todo[0].isoformat(), todo[-1].isoformat(), len(stamps) - len(todo))


def _stamp(ts) -> str:
    return ts.strftime("%Y%m%dT%H%M%S")


def rewind(results: str | Path, cfg: RunConfig) -> int:
    """Undo what the feed landed (the demo replays its story from the start): remove the lake's bar and feature
    partitions of the live days, the feed's landing files and their entries in the ingest ledger. The number of
    partitions removed."""
    import shutil

    from contracts.io import write_atomic_json
    from ml.ingest import LEDGER_VERSION, ledger_path, read_ledger

    results = Path(results)
    _history, live = split_history(make_market(cfg.market), cfg.market)
    if live.is_empty():
        return 0
    first_day = live["ts"].min().date().isoformat()
    removed = 0
    for table in ("bars", "features"):
        for part in table_dir(results, table, cfg.bar_interval_minutes).glob("date=*"):
            if part.name.removeprefix("date=") >= first_day:
                shutil.rmtree(part)
                removed += 1
    feed_files = sorted(landing_dir(results).glob("feed-*.parquet"))
    for f in feed_files:
        f.unlink()
    entries = read_ledger(results)
    kept = {k: v for k, v in entries.items() if not k.startswith("feed-")}
    if kept != entries:
        write_atomic_json(ledger_path(results), {"version": LEDGER_VERSION, "files": kept})
    return removed
