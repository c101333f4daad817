"""The live feature buffer: a rolling window of bars per symbol, featurised by the same ``ml.features`` code as
training. The window holds the largest lookback of the loaded models' features plus the current bar, so a row
it builds equals the training row of the same bar (the parity test checks 1e-9)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from ml.features import build_features, max_lookback_bars

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "vwap")


class FeatureBuffer:
    """Bars of the last ``history_bars`` bar timestamps, and the feature rows of the newest one.

    Attributes:
        feature_names: every feature a loaded model reads (sorted).
        history_bars: timestamps kept: the largest lookback plus the current bar (at least ``min_bars``).
    """

    def __init__(self, feature_names: Iterable[str], min_bars: int = 1) -> None:
        self.feature_names = sorted(set(feature_names))
        self.history_bars = max(max_lookback_bars(self.feature_names) + 1, min_bars)
        self._chunks: list[pl.DataFrame] = []
        self._bars: pl.DataFrame | None = None

    @property
    def bars(self) -> pl.DataFrame:
        """The window's bars, sorted by (symbol, ts)."""
        if self._bars is None:
            self._bars = pl.concat(self._chunks).sort("symbol", "ts") if self._chunks else pl.DataFrame()
        return self._bars

    def last(self, k: int) -> pl.DataFrame:
        """The bars of the newest ``k`` timestamps, sorted by (symbol, ts)."""
        return pl.concat(self._chunks[-k:]).sort("symbol", "ts")

    def push(self, bars_at_ts: pl.DataFrame) -> None:
        """Add one timestamp's bars (the oldest timestamp falls out once the window is full)."""
        cols = [c for c in BAR_COLUMNS if c in bars_at_ts.columns]
        self._chunks.append(bars_at_ts.select(cols))
        self._bars = None
        if len(self._chunks) > self.history_bars:
            self._chunks.pop(0)

    def rows(self) -> pl.DataFrame:
        """Feature rows at the newest timestamp, one per symbol with a bar there (nulls where history is short)."""
        if not self._chunks:
            raise ValueError("the feature buffer is empty")
        ts = self._chunks[-1]["ts"][0]
        return build_features(self.bars, self.feature_names).filter(pl.col("ts") == ts).sort("symbol")

    @staticmethod
    def matrix(rows: pl.DataFrame, feature_list: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``X`` in the model's feature order and the mask of rows with every input present."""
        X = rows.select(feature_list).to_numpy().astype(float)
        return X, np.isfinite(X).all(axis=1)
