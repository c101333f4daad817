"""The live feature buffer: each symbol's last bars (:class:`live.bar_window.BarWindow`) and the feature rows of
the newest bar timestamp, computed from them by :func:`ml.features.newest_feature_values` — the features' one
definition, evaluated with numpy at the newest bar (the parity tests check the rows against training's
``build_features`` of the same bars to 1e-9). The window holds the largest lookback of the loaded models' features
plus the current bar, and the longest raw-sequence window, so the same bars feed both paths, each bar once."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from live.bar_window import BarWindow
from ml.features import BAR_WINDOW_COLUMNS, max_lookback_bars, newest_feature_values

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "vwap")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(ts: datetime) -> int:
    """A bar time as epoch microseconds (the window's ``ts``; a naive time is UTC), exactly."""
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class FeatureRows:
    """The feature rows of one bar timestamp.

    Attributes:
        ts: the bar timestamp.
        symbols: the symbols with a bar there, sorted.
        names: the feature names (sorted), the columns of ``values``.
        values: ``(len(symbols), len(names))``, NaN where a feature is null (short history, 0/0).
    """

    ts: object
    symbols: list[str]
    names: list[str]
    values: np.ndarray

    def matrix(self, feature_list: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``X`` in the model's feature order and the mask of rows with every input present."""
        index = {n: j for j, n in enumerate(self.names)}
        X = self.values[:, [index[n] for n in feature_list]]
        return X, np.isfinite(X).all(axis=1)

    def frame(self) -> pl.DataFrame:
        """``ts``, ``symbol`` and the features as a frame (nulls for NaN): :func:`ml.features.latest_features`'s
        shape."""
        keys = pl.DataFrame({"ts": [self.ts] * len(self.symbols), "symbol": self.symbols})
        values = pl.DataFrame({n: self.values[:, j] for j, n in enumerate(self.names)}, nan_to_null=True)
        return pl.concat([keys, values], how="horizontal")


class FeatureBuffer:
    """Each symbol's last ``history_bars`` bars, and the feature rows of the newest bar timestamp.

    Attributes:
        feature_names: every feature a loaded model reads (sorted).
        history_bars: bars kept per symbol: the largest lookback plus the current bar (at least ``min_bars`` and
            ``sequence_bars``).
        window: the bars (:class:`BarWindow` over ``open, high, low, close, volume, vwap, ts``; ``vwap`` NaN where
            a bar has none, ``ts`` in epoch microseconds).
        sequences: the window again when a loaded model reads raw OHLCV windows (``None`` otherwise).
    """

    def __init__(self, feature_names: Iterable[str], min_bars: int = 1, sequence_bars: int = 0) -> None:
        self.feature_names = sorted(set(feature_names))
        self.history_bars = max(max_lookback_bars(self.feature_names) + 1, min_bars, sequence_bars)
        self.window = BarWindow(self.history_bars, BAR_WINDOW_COLUMNS)
        self.sequences = self.window if sequence_bars > 0 else None
        self._chunks: deque[pl.DataFrame] = deque(maxlen=self.history_bars)  # the newest timestamps' bars

    def push(self, bars_at_ts: pl.DataFrame) -> tuple[list[str], np.ndarray]:
        """Add one timestamp's bars (each symbol's oldest bar falls out once it has ``history_bars``); returns the
        bars as the window took them: their symbols (sorted) and ``(n, len(BAR_WINDOW_COLUMNS))`` values.

        Raises:
            live.bar_window.BarOrderError: a symbol's bar at or before the newest it has (nothing is written).
        """
        if bars_at_ts.is_empty():
            return [], np.zeros((0, len(BAR_WINDOW_COLUMNS)))
        chunk = bars_at_ts if bars_at_ts["symbol"].is_sorted() else bars_at_ts.sort("symbol")
        n = chunk.height
        ts_us = int(chunk["ts"].dt.epoch("us")[0])
        values = np.empty((n, len(BAR_WINDOW_COLUMNS)))
        for j, c in enumerate(BAR_WINDOW_COLUMNS):
            if c == "ts":
                values[:, j] = ts_us
            elif c in chunk.columns:  # column by column: no frame is built (null -> NaN)
                values[:, j] = chunk[c].to_numpy()
            else:
                values[:, j] = np.nan
        symbols = chunk["symbol"].to_list()
        self.window.push(ts_us, symbols, values)
        self._chunks.append(chunk)
        return symbols, values

    def last(self, k: int) -> pl.DataFrame:
        """The bars of the newest ``k`` timestamps, in timestamp order (each symbol's bars in time order, as an
        ``over("symbol")`` window reads them; not sorted by symbol)."""
        if k > len(self._chunks) and len(self._chunks) == self._chunks.maxlen:
            raise ValueError(f"the buffer keeps {self._chunks.maxlen} timestamps, not {k}")
        return pl.concat(list(self._chunks)[-k:])

    @property
    def bars(self) -> pl.DataFrame:
        """Each symbol's bars in the window, sorted by (symbol, ts) (``vwap`` null where a bar had none)."""
        rows = np.arange(len(self.window.symbols))
        n_bars = self.window.n_bars(rows)
        present = np.arange(self.history_bars)[None, :] >= (self.history_bars - n_bars)[:, None]
        frame = {
            "symbol": np.repeat(np.array(self.window.symbols, dtype=object), n_bars),
            **{c: self.window.column(c, rows).T[present] for c in BAR_WINDOW_COLUMNS},
        }
        ts = pl.Series("ts", frame.pop("ts").astype(np.int64)).cast(pl.Datetime("us", "UTC"))
        out = pl.DataFrame({"ts": ts, **frame}, nan_to_null=True)
        return out.select(BAR_COLUMNS).sort("symbol", "ts")

    def rows(self) -> FeatureRows:
        """Feature rows at the newest timestamp, one per symbol with a bar there (NaN where history is short)."""
        if not self._chunks:
            raise ValueError("the feature buffer is empty")
        ts = self._chunks[-1]["ts"][0]
        rows = self.window.at_newest()
        symbols = [self.window.symbols[i] for i in rows]
        if not self.feature_names:
            return FeatureRows(ts, symbols, [], np.zeros((len(rows), 0)))
        width = max_lookback_bars(self.feature_names) + 1
        columns = {c: self.window.column(c, rows, width) for c in BAR_WINDOW_COLUMNS}
        values = newest_feature_values(columns, self.window.n_bars(rows), self.feature_names)
        return FeatureRows(ts, symbols, self.feature_names, values)
