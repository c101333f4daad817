"""The features table in the lake, kept up to date incrementally, partition by partition.

A date partition of features is computed from that date's bars plus enough earlier bars to cover the
largest feature lookback, so appending a day computes only that day, and the result equals a full
recompute. ``_state.json`` beside the partitions records, per date, the sha256 of the bars partition
and the feature set it was computed from; a changed bars partition also refreshes the later partitions
whose lookback reaches into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from contracts.io import canonical_json, read_json, sha256_file, sha256_text, write_atomic_json
from ml.features import build_features, max_lookback_bars, resolve
from ml.lake import partitions, table_dir, write_partitions

STATE_FILE = "_state.json"


def _bars_file(bars_dir: Path, date: str) -> Path:
    return bars_dir / f"date={date}" / "part-0.parquet"


def update_features(results: str | Path, interval_minutes: float, names: list[str] | None = None) -> dict[str, Any]:
    """Bring ``lake/features/interval=<m>`` up to date with ``lake/bars/interval=<m>``.

    Returns a report: partitions computed, partitions already current, the feature names.
    """
    names = resolve(names)
    bars_dir = table_dir(results, "bars", interval_minutes)
    feat_dir = table_dir(results, "features", interval_minutes)
    dates = partitions(bars_dir)
    if not dates:
        raise FileNotFoundError(f"{bars_dir}: no bars partitions; materialize or ingest bars first")
    state_path = feat_dir / STATE_FILE
    state = read_json(state_path) if state_path.exists() else {}
    names_digest = sha256_text(canonical_json(names))
    bars_sha = {d: sha256_file(_bars_file(bars_dir, d)) for d in dates}
    stale = [
        d
        for d in dates
        if state.get(d, {}).get("bars_sha256") != bars_sha[d] or state.get(d, {}).get("features") != names_digest
    ]
    lookback = max_lookback_bars(names)
    to_compute: set[str] = set(stale)
    if stale:  # a changed day also changes later days whose lookback reaches back into it
        counts = {
            d: pl.scan_parquet(_bars_file(bars_dir, d)).select(pl.col("ts").n_unique()).collect().item() for d in dates
        }
        for d in stale:
            i, seen = dates.index(d) + 1, 0
            while i < len(dates) and seen < lookback:
                to_compute.add(dates[i])
                seen += counts[dates[i]]
                i += 1
    computed: list[str] = []
    order = sorted(to_compute, key=dates.index)
    runs: list[list[str]] = []
    for d in order:  # contiguous runs of dates are computed in one pass
        if runs and dates.index(d) == dates.index(runs[-1][-1]) + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    for run in runs:
        first = dates.index(run[0])
        files = [_bars_file(bars_dir, d) for d in run]
        have, j = 0, first - 1
        while j >= 0 and have < lookback:  # earlier partitions, enough for the largest lookback
            files.insert(0, _bars_file(bars_dir, dates[j]))
            have += pl.scan_parquet(files[0]).select(pl.col("ts").n_unique()).collect().item()
            j -= 1
        frame = build_features(pl.read_parquet(files), names)
        frame = frame.filter(pl.col("ts").dt.date().cast(pl.String).is_in(run))
        write_partitions(frame, feat_dir)
        for d in run:
            state[d] = {"bars_sha256": bars_sha[d], "features": names_digest}
        computed.extend(run)
    for gone in set(state) - set(dates):
        state.pop(gone)
    write_atomic_json(state_path, state)
    return {"computed": computed, "current": len(dates) - len(computed), "features": names, "directory": str(feat_dir)}
