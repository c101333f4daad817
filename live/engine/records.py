"""The ledger record of one cycle's decisions, built column-wise: every symbol's decision with its stage traces (every
model's prediction included) as one JSON document (``cycle_decisions``; the ``decisions`` and ``predictions`` views
give one row per symbol). Non-finite numbers are written as JSON ``null``; numbers keep their shortest round-trip
digits (they read back bit for bit)."""

from __future__ import annotations

import numpy as np
import polars as pl


def _finite_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    """Float columns with NaN/inf as null."""
    finite = {}
    for k, v in columns.items():
        v = np.asarray(v, dtype=float)
        finite[k] = np.where(np.isinf(v), np.nan, v)
    return pl.DataFrame(finite, nan_to_null=True)


def decisions_json(
    universe: list[str],
    actions: list[str],
    reasons: list[str],
    in_sample: bool,
    predictions: dict[str, np.ndarray],
    blends: dict[str, np.ndarray],
    stages: dict[str, np.ndarray],
    gates: np.ndarray,
    risk_state: str,
    cuts: list[list[str]],
    order_qty: np.ndarray,
) -> str:
    """The cycle's decisions as one JSON array, one object per symbol of ``universe`` (in its order):

    ``symbol``, ``action`` (TRADE / HOLD / BLOCKED), ``reason``, then the trace of every stage's numbers:
    ``in_sample``; ``prediction`` (model key → raw score), ``blend`` (target/view → blended score); the named
    ``stages`` (``alpha_bps``, ``cost_bps``, …, each a per-symbol array); ``gate`` (why the symbol was blocked, or
    null); ``risk`` (``state`` and the pre-trade ``cuts``, joined by ``; ``, null when none); ``order_qty``. A model
    without a score for a symbol has ``null`` there (``prediction`` and ``blend`` are ``null`` in a cycle where no
    model scored)."""
    n = len(universe)
    columns: dict[str, pl.Series] = {
        "symbol": pl.Series(universe, dtype=pl.String),
        "action": pl.Series(actions, dtype=pl.String),
        "reason": pl.Series(reasons, dtype=pl.String),
        "in_sample": pl.Series(np.full(n, bool(in_sample))),
        "prediction": _finite_frame(predictions).to_struct() if predictions else pl.Series([None] * n),
        "blend": _finite_frame(blends).to_struct() if blends else pl.Series([None] * n),
    }
    columns.update(_finite_frame(stages).to_dict())
    columns["gate"] = pl.Series([g or None for g in gates.tolist()], dtype=pl.String)
    columns["risk"] = pl.DataFrame(
        {"state": [risk_state] * n, "cuts": ["; ".join(c) or None for c in cuts]},
        schema={"state": pl.String, "cuts": pl.String},
    ).to_struct()
    columns["order_qty"] = pl.Series(np.asarray(order_qty, dtype=float))
    return pl.DataFrame(columns).write_json()
