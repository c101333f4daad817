"""Live features: the same ``ml.features`` code as training, on the last bars of each symbol."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ml.features import build_features, max_lookback_bars


class LiveFeatureBuilder:
    """Builds the feature rows of one timestamp from a rolling history of bars.

    Attributes:
        feature_names: every feature any loaded model needs (sorted).
        history_bars: bars per symbol kept: the largest lookback plus the current bar.
    """

    def __init__(self, feature_names: Iterable[str]) -> None:
        self.feature_names = sorted(set(feature_names))
        self.history_bars = max_lookback_bars(self.feature_names) + 1

    def build(self, history: pl.DataFrame, ts) -> pl.DataFrame:
        """Feature rows at ``ts`` for every symbol with a bar at ``ts`` (nulls where history is short)."""
        frame = build_features(history, self.feature_names)
        return frame.filter(pl.col("ts") == ts).sort("symbol")

    @staticmethod
    def matrix(rows: pl.DataFrame, feature_list: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``X`` in the model's feature_list order and a mask of rows with every input present."""
        X = rows.select(feature_list).to_numpy().astype(float)
        complete = np.isfinite(X).all(axis=1)
        return X, complete
