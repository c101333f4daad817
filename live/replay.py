"""Replay: run the live path bar by bar over the last N bars of the lake.

Each cycle takes one bar timestamp, builds features from the bars up to it (never after), and has
every selected model predict for every symbol. A model whose inputs are incomplete for a symbol says
so in the cycle's trace instead of silently dropping out. The engine's state and events are published
through :class:`live.journal.StateJournal`, so a bridge in another process shows the real replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from live.feature_builder import LiveFeatureBuilder
from live.journal import StateJournal
from live.loader import load_selected
from live.policies import DEFAULT_POLICY
from ml.bars import check_interval
from ml.lake import read_table, table_dir


@dataclass
class ReplaySummary:
    """What a replay did."""

    models_loaded: int = 0
    models_refused: list[str] = field(default_factory=list)
    cycles: int = 0
    predictions: int = 0
    incomplete_inputs: int = 0
    symbols: int = 0
    interval_minutes: float = 0.0
    first_ts: str | None = None
    last_ts: str | None = None
    models: list[str] = field(default_factory=list)
    last_predictions: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def replay(
    results: str | Path,
    n_bars: int,
    *,
    interval_minutes: float,
    policy: str = DEFAULT_POLICY,
    strict: bool = False,
) -> ReplaySummary:
    """Replay the last ``n_bars`` bar timestamps of the lake's bars at ``interval_minutes``."""
    results = Path(results)
    summary = ReplaySummary(interval_minutes=interval_minutes)
    journal = StateJournal(results)
    journal.update(status="running", current_stage="idle")
    journal.event("engine_start", f"replay of the last {n_bars} bars", policy=policy)
    try:
        bars_dir = table_dir(results, "bars", interval_minutes)
        bars = read_table(bars_dir)
        # the interval the models are checked against is the one the bars show, not only the one declared
        measured = check_interval(bars, interval_minutes, str(bars_dir))
        models, refused = load_selected(results, policy, interval_minutes=measured, strict=strict)
        summary.models_loaded, summary.models_refused = len(models), refused
        summary.models = [m.key for m in models]
        for err in refused:
            journal.event("model_refused", err, severity="warning")
        if not models:
            raise RuntimeError(f"no model selected by policy {policy!r} at interval {interval_minutes}")
        journal.event("models_loaded", f"{len(models)} model(s) loaded", models=summary.models)

        builder = LiveFeatureBuilder(f for m in models for f in m.meta.feature_list)
        stamps = bars["ts"].unique().sort()
        cycle_stamps = stamps.tail(n_bars)
        first_needed = stamps[max(0, len(stamps) - n_bars - builder.history_bars)]
        bars = bars.filter(pl.col("ts") >= first_needed)
        summary.symbols = bars["symbol"].n_unique()
        summary.first_ts, summary.last_ts = str(cycle_stamps[0]), str(cycle_stamps[-1])
        all_stamps = bars["ts"].unique().sort().to_list()
        index = {ts: i for i, ts in enumerate(all_stamps)}

        for ts in cycle_stamps.to_list():
            lo = all_stamps[max(0, index[ts] - builder.history_bars + 1)]
            history = bars.filter(pl.col("ts").is_between(lo, ts))
            journal.update(current_stage="prediction", symbols_active=history["symbol"].n_unique())
            rows = builder.build(history, ts)
            preds: dict[str, dict[str, float]] = {}
            for model in models:
                scope = rows.filter(pl.col("symbol") == model.meta.symbol) if model.meta.symbol else rows
                X, complete = builder.matrix(scope, model.meta.feature_list)
                missing = int((~complete).sum())
                if missing:
                    summary.incomplete_inputs += missing
                    journal.event(
                        "incomplete_inputs",
                        f"{model.key}: {missing} symbol(s) lack inputs at {ts}",
                        severity="warning",
                        model=model.key,
                        symbols=scope.filter(pl.Series(~complete))["symbol"].to_list(),
                    )
                if complete.any():
                    scores = model.predict(X[complete])
                    syms = scope.filter(pl.Series(complete))["symbol"].to_list()
                    preds[model.key] = {s: float(v) for s, v in zip(syms, np.asarray(scores), strict=True)}
                    summary.predictions += len(syms)
            summary.cycles += 1
            summary.last_predictions = preds
            journal.update(current_stage="idle", cycle_count=summary.cycles, last_cycle=str(ts.isoformat()))
        journal.event("engine_stop", f"replay finished: {summary.cycles} cycles, {summary.predictions} predictions")
        journal.update(status="stopped", current_stage="idle")
    except Exception as exc:
        journal.event("engine_error", str(exc), severity="error")
        journal.update(status="error", current_stage="idle")
        raise
    return summary
