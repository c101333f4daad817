"""What the loop's sensors decide on, as plain functions over RESULTS (no Dagster): new data since the newest run,
and which decayed targets are out of their cooldown."""

from __future__ import annotations

from pathlib import Path

from catalog.indexer import catalog_path
from catalog.query import sql
from loop.config import DecayConfig
from loop.decay import TargetDecay
from ml.lake import partitions, table_dir


def newest_data_end(results: str | Path, interval_minutes: float) -> str | None:
    """The last bar (ISO) any complete run at this interval read, from the catalog; None before the first run."""
    if not catalog_path(results).exists():
        return None
    df = sql(
        results,
        "select max(m.data_end) as d from models m join runs r using (run_dir) "
        "where r.complete and m.interval_minutes = ?",
        [interval_minutes],
    )
    return df["d"][0]


def new_partitions(results: str | Path, interval_minutes: float) -> tuple[list[str], str | None]:
    """The bars' daily partitions after the day of the newest complete run's data end (all of them before the
    first run), and that data end."""
    dates = partitions(table_dir(results, "bars", interval_minutes))
    end = newest_data_end(results, interval_minutes)
    if end is None:
        return dates, None
    return [d for d in dates if d > end[:10]], end


def out_of_cooldown(decays: list[TargetDecay], fired: dict[str, int], cfg: DecayConfig) -> list[TargetDecay]:
    """The decayed targets that did not fire within the last ``cooldown_cycles`` cycles (``fired``: target -> the
    ledger's last cycle when it last fired)."""
    return [
        d
        for d in decays
        if d.decayed and (d.target not in fired or d.last_cycle - fired[d.target] >= cfg.cooldown_cycles)
    ]
