"""The prediction stage: every traded model scores every symbol of the bar at its close.

One input array per distinct feature list (the feature rows of the bar, ``live.features``) or raw-sequence window
(``live.bar_window``), sliced per model: a cross-sectional model reads every universe symbol with a bar, a
per-symbol model its one symbol. A row with an input missing is left out and reported (``incomplete``), never
filled. Models reading the same rows share one input array. A model that raises, or returns a non-finite score, is
reported (``failed``) and scores nothing this cycle; the engine quarantines it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from live.features import FeatureRows


@dataclass
class Predictions:
    """A cycle's predictions.

    Attributes:
        scores: model key -> score per universe symbol (NaN: no score), for every model that predicted.
        failed: model key -> the error, for every model that raised or returned a non-finite score.
        incomplete: model key -> the symbols it could not score for a missing input.
    """

    scores: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, list[str]] = field(default_factory=dict)


def _call(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    try:
        pred = np.asarray(predict(X), dtype=float).ravel()
        if not np.isfinite(pred).all():
            raise ValueError("non-finite prediction")
        return pred, None
    except Exception as exc:  # noqa: BLE001 - one model must not stop the cycle
        return None, f"{type(exc).__name__}: {exc}"[:300]


def predict_all(models: list[Any], rows: FeatureRows, sequences: Any, index: dict[str, int], n: int) -> Predictions:
    """Score ``rows`` (the bar's symbols) with ``models`` (``live.engine.cycle.TradedModel``, in order).

    Args:
        sequences: the bar window the raw-sequence models read (``None`` when none is traded).
        index: universe symbol -> its position in the ``n``-long score arrays.
    """
    out = Predictions()
    row_pos = {s: i for i, s in enumerate(rows.symbols)}
    row_universe = np.array([index.get(s, -1) for s in rows.symbols], dtype=np.int64)
    matrices: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for m in models:
        window = m.loaded.sequence
        inputs = window if window is not None else tuple(m.loaded.meta.feature_list)
        if inputs not in matrices:
            matrices[inputs] = (
                sequences.windows(rows.symbols, window) if window is not None else rows.matrix(list(inputs))
            )
        X_all, complete_all = matrices[inputs]
        if m.symbol:
            sel = np.array([row_pos[m.symbol]] if m.symbol in row_pos else [], dtype=np.int64)
        else:
            sel = np.flatnonzero(row_universe >= 0)
        if not len(sel):
            continue
        complete = complete_all[sel]
        if not complete.all():
            out.incomplete[m.key] = [rows.symbols[i] for i in sel[~complete]]
        if len(sel) == len(X_all) and complete.all():  # every row: the shared input array itself, no copy
            X, at = X_all, row_universe
        else:
            X, at = X_all[sel[complete]], row_universe[sel[complete]]
        pred, error = _call(m.predict, X) if len(X) else (np.zeros(0), None)
        if error is not None:
            out.failed[m.key] = error
            continue
        scores = np.full(n, np.nan)
        scores[at] = pred
        out.scores[m.key] = scores
    return out
