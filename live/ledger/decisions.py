"""A cycle's decisions as the ledger keeps them: one ``cycle_decisions`` row per cycle, built column-wise.

The row holds ``models_json`` (the keys of the models that scored, in order), ``blends_json`` (the blended
target/view keys) and ``decisions_json``, a JSON array with one object per universe symbol (symbol order)::

    {"symbol", "action" (TRADE / HOLD / BLOCKED), "reason",
     "prediction": [score of each model of models_json], "blend": [score of each key of blends_json],
     "alpha_bps", "cost_bps", "sigma_bps", "z", "current_weight_frac", "target_weight_frac", "net_alpha_bps",
     "sized_qty", "gate" (why blocked, or null), "cuts" (the risk stage's cuts, or null), "order_qty"}

The keys of the models are written once per cycle, not once per symbol, and the cycle's ``in_sample`` and trading
state stay in ``cycles``: a 500-symbol cycle of six models is ~270 KB instead of ~460 KB, one insert. Numbers keep
their shortest round-trip digits (they read back bit for bit); a missing or non-finite number is ``null``.

:func:`decode` gives each symbol's decision with its trace in full (``prediction`` and ``blend`` as
``{key: score}``, ``in_sample``, ``risk: {state, cuts}``): what the bridge serves. The ledger's ``decisions`` and
``predictions`` views give the same rows to SQL (see ``live.ledger.schema``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl

STAGES = (
    "alpha_bps",
    "cost_bps",
    "sigma_bps",
    "z",
    "current_weight_frac",
    "target_weight_frac",
    "net_alpha_bps",
    "sized_qty",
)
"""The per-symbol numbers of the stages, in the order written."""


def _finite(values: np.ndarray) -> pl.Series:
    v = np.asarray(values, dtype=float)
    return pl.Series(np.where(np.isinf(v), np.nan, v), nan_to_null=True)


def _scores(arrays: dict[str, np.ndarray], n: int) -> pl.Series:
    """One list of scores per symbol, in ``arrays``' key order (null where a model has none)."""
    if not arrays:
        return pl.Series([[]] * n, dtype=pl.List(pl.Float64))
    matrix = np.column_stack([np.asarray(a, dtype=float) for a in arrays.values()])
    matrix = np.where(np.isinf(matrix), np.nan, matrix)
    return pl.Series(matrix.ravel(), nan_to_null=True).reshape((n, len(arrays))).cast(pl.List(pl.Float64))


def encode(
    universe: list[str],
    actions: list[str],
    reasons: list[str],
    predictions: dict[str, np.ndarray],
    blends: dict[str, np.ndarray],
    stages: dict[str, np.ndarray],
    gates: np.ndarray,
    cuts: list[list[str]],
    order_qty: np.ndarray,
) -> tuple[str, str, str]:
    """``(models_json, blends_json, decisions_json)`` of a cycle: ``predictions`` and ``blends`` map a key to one
    score per universe symbol (NaN: none), ``stages`` every name of :data:`STAGES` to one number per symbol."""
    n = len(universe)
    columns: dict[str, pl.Series] = {
        "symbol": pl.Series(universe, dtype=pl.String),
        "action": pl.Series(actions, dtype=pl.String),
        "reason": pl.Series(reasons, dtype=pl.String),
        "prediction": _scores(predictions, n),
        "blend": _scores(blends, n),
    }
    columns.update({name: _finite(stages[name]) for name in STAGES})
    columns["gate"] = pl.Series([g or None for g in gates.tolist()], dtype=pl.String)
    columns["cuts"] = pl.Series(["; ".join(c) or None for c in cuts], dtype=pl.String)
    columns["order_qty"] = _finite(order_qty)
    return json.dumps(list(predictions)), json.dumps(list(blends)), pl.DataFrame(columns).write_json()


def decode(
    models_json: str, blends_json: str, decisions_json: str, in_sample: bool, trading_state: str
) -> list[dict[str, Any]]:
    """Each symbol's decision (``symbol``, ``action``, ``reason``, the stage numbers, ``order_qty``) with its
    ``trace``: ``in_sample``, ``prediction`` and ``blend`` as ``{key: score}``, the stage numbers, ``gate``,
    ``risk: {state, cuts}`` and ``order_qty``."""
    models, blends = json.loads(models_json), json.loads(blends_json)
    out = []
    for row in json.loads(decisions_json):
        trace = {
            "in_sample": bool(in_sample),
            "prediction": dict(zip(models, row["prediction"], strict=True)) if models else None,
            "blend": dict(zip(blends, row["blend"], strict=True)) if blends else None,
            **{name: row[name] for name in STAGES},
            "gate": row["gate"],
            "risk": {"state": trading_state, "cuts": row["cuts"]},
            "order_qty": row["order_qty"],
        }
        decision = {k: row[k] for k in ("symbol", "action", "reason", *STAGES[:6], "order_qty")}
        out.append({**decision, "trace": trace})
    return out


def scores(models_json: str, blends_json: str, decisions_json: str) -> tuple[dict, dict]:
    """``({model: {symbol: score}}, {target/view: {symbol: score}})`` of a cycle (present scores only)."""
    models, blends = json.loads(models_json), json.loads(blends_json)
    by_model: dict[str, dict[str, float]] = {k: {} for k in models}
    by_blend: dict[str, dict[str, float]] = {k: {} for k in blends}
    for row in json.loads(decisions_json):
        for keys, values, into in ((models, row["prediction"], by_model), (blends, row["blend"], by_blend)):
            for key, score in zip(keys, values, strict=True):
                if score is not None:
                    into[key][row["symbol"]] = score
    return by_model, by_blend
