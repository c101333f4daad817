"""The ledger rows of one cycle, built column-wise (one polars frame per table, not one Python dict per symbol):
the decisions with their traces, and the predictions. Non-finite numbers are written as SQL ``NULL`` / JSON
``null``."""

from __future__ import annotations

from itertools import repeat

import numpy as np
import polars as pl


def _finite_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    """Float columns with NaN/inf as null."""
    finite = {}
    for k, v in columns.items():
        v = np.asarray(v, dtype=float)
        finite[k] = np.where(np.isinf(v), np.nan, v)
    return pl.DataFrame(finite, nan_to_null=True)


def trace_json(
    n: int,
    in_sample: bool,
    predictions: dict[str, np.ndarray],
    blends: dict[str, np.ndarray],
    stages: dict[str, np.ndarray],
    gates: np.ndarray,
    risk_state: str,
    cuts: list[list[str]],
    order_qty: np.ndarray,
) -> list[str]:
    """One JSON object per symbol with every stage's numbers:

    ``in_sample``; ``prediction`` (model key → raw score), ``blend`` (target/view → blended score); the named
    ``stages`` (``alpha_bps``, ``cost_bps``, …, each a per-symbol array); ``gate`` (why the symbol was blocked, or
    null); ``risk`` (``state`` and the pre-trade ``cuts``, joined by ``; ``, null when none); ``order_qty``. A model
    without a score for a symbol has ``null`` there (``prediction`` and ``blend`` are ``null`` in a cycle where no
    model scored)."""
    parts = [
        pl.DataFrame({"in_sample": np.full(n, bool(in_sample))}),
        _finite_frame(predictions).to_struct("prediction").to_frame() if predictions else None,
        _finite_frame(blends).to_struct("blend").to_frame() if blends else None,
        _finite_frame(stages),
        pl.DataFrame({"gate": [g or None for g in gates.tolist()]}, schema={"gate": pl.String}),
        pl.DataFrame(
            {"state": [risk_state] * n, "cuts": ["; ".join(c) or None for c in cuts]},
            schema={"state": pl.String, "cuts": pl.String},
        )
        .to_struct("risk")
        .to_frame(),
        pl.DataFrame({"order_qty": np.asarray(order_qty, dtype=float)}),
    ]
    frame = pl.concat([p for p in parts if p is not None], how="horizontal")
    if not predictions:  # no model scored this cycle
        frame = frame.with_columns(pl.lit(None).alias("prediction"))
    if not blends:
        frame = frame.with_columns(pl.lit(None).alias("blend"))
    return frame.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()


def decision_rows(
    cycle_id: int,
    universe: list[str],
    actions: list[str],
    reasons: list[str],
    numbers: dict[str, np.ndarray],
    order_qty: np.ndarray,
    traces: list[str],
) -> list[tuple]:
    """``decisions`` rows: cycle, symbol, action, reason, the ``numbers`` columns in order (alpha, cost, sigma, z,
    current and target weight), the order quantity and the trace."""
    keys = pl.DataFrame({"cycle_id": [cycle_id] * len(universe), "symbol": universe, "action": actions})
    frame = pl.concat(
        [
            keys,
            pl.DataFrame({"reason": reasons}),
            _finite_frame(numbers),
            pl.DataFrame({"order_qty": np.asarray(order_qty, dtype=float), "trace": traces}),
        ],
        how="horizontal",
    )
    return frame.rows()


def prediction_rows(
    cycle_id: int, ts_iso: str, universe: np.ndarray, scores: list[tuple[str, str, np.ndarray]]
) -> list[tuple]:
    """``predictions`` rows (cycle, ts, target, model, symbol, score) of every finite score; ``scores`` holds
    (target, model key, per-symbol array) triples and ``universe`` the symbols as an object array."""
    out: list[tuple] = []
    for target, key, arr in scores:
        idx = np.flatnonzero(np.isfinite(arr))
        head = (repeat(cycle_id), repeat(ts_iso), repeat(target), repeat(key))
        out.extend(zip(*head, universe[idx].tolist(), arr[idx].tolist(), strict=False))  # repeat() is endless
    return out
