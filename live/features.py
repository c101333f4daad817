"""The live feature buffer: a rolling window of bars per symbol, featurised by the same ``ml.features`` code as
training (:func:`ml.features.latest_features`: the rows ``build_features`` gives at the newest bar). The window holds
the largest lookback of the loaded models' features plus the current bar, so a row it builds equals the training row
of the same bar (the parity test checks 1e-9). When raw-sequence models are loaded it also feeds each bar, once, to
the per-symbol ring buffer they read (``live.sequence_buffer``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from live.sequence_buffer import SequenceBuffer
from ml.features import latest_features, max_lookback_bars

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume", "vwap")
SEQUENCE_COLUMNS = BAR_COLUMNS[2:]


class FeatureBuffer:
    """Bars of the last ``history_bars`` bar timestamps, and the feature rows of the newest one.

    Attributes:
        feature_names: every feature a loaded model reads (sorted).
        history_bars: timestamps kept: the largest lookback plus the current bar (at least ``min_bars`` and
            ``sequence_bars``).
        sequences: the raw-sequence ring buffer, holding each symbol's last ``sequence_bars`` bars (``None`` when
            no loaded model reads raw OHLCV).
    """

    def __init__(self, feature_names: Iterable[str], min_bars: int = 1, sequence_bars: int = 0) -> None:
        self.feature_names = sorted(set(feature_names))
        self.history_bars = max(max_lookback_bars(self.feature_names) + 1, min_bars, sequence_bars)
        self.sequences = SequenceBuffer(sequence_bars, SEQUENCE_COLUMNS) if sequence_bars > 0 else None
        self._chunks: list[pl.DataFrame] = []  # one per timestamp, sorted by symbol
        self._values: list[np.ndarray] = []  # each chunk's price and volume columns, symbols x columns
        self._grid_run = 0  # how many of the newest chunks hold the newest one's symbols, without nulls
        self._bars: pl.DataFrame | None = None

    @property
    def bars(self) -> pl.DataFrame:
        """The window's bars, sorted by (symbol, ts)."""
        if self._bars is None:
            if not self._chunks:
                return pl.DataFrame()
            if self._grid_run >= len(self._chunks):
                self._bars = self._grid()
            else:
                self._bars = pl.concat(self._chunks).sort("symbol", "ts")
        return self._bars

    def _grid(self) -> pl.DataFrame:
        """The window as a timestamps x symbols grid transposed to (symbol, ts) order: no sort, no string copies
        beyond one gather (what ``sort`` gives when every timestamp holds the same symbols)."""
        newest = self._chunks[-1]
        n_ts, n_sym = len(self._chunks), newest.height
        values = np.stack(self._values).transpose(1, 0, 2).reshape(n_ts * n_sym, -1)  # (symbol, ts) rows
        stamps = pl.concat([c["ts"].head(1) for c in self._chunks])
        columns = {
            "ts": stamps.gather(np.tile(np.arange(n_ts), n_sym)),
            "symbol": newest["symbol"].gather(np.repeat(np.arange(n_sym), n_ts)),
        }
        numeric = [c for c in newest.columns if c not in ("ts", "symbol")]
        for j, name in enumerate(numeric):
            columns[name] = pl.Series(name, values[:, j]).cast(newest.schema[name])
        return pl.DataFrame(columns).select(newest.columns)

    def last(self, k: int) -> pl.DataFrame:
        """The bars of the newest ``k`` timestamps, sorted by (symbol, ts)."""
        return pl.concat(self._chunks[-k:]).sort("symbol", "ts")

    def push(self, bars_at_ts: pl.DataFrame) -> None:
        """Add one timestamp's bars (the oldest timestamp falls out once the window is full)."""
        cols = [c for c in BAR_COLUMNS if c in bars_at_ts.columns]
        chunk = bars_at_ts.select(cols).sort("symbol")
        numeric = chunk.drop("ts", "symbol")
        if self.sequences is not None and chunk.height:  # first: a bar pushed twice changes nothing
            values = np.full((chunk.height, len(SEQUENCE_COLUMNS)), np.nan)
            for j, c in enumerate(SEQUENCE_COLUMNS):
                if c in numeric.columns:
                    values[:, j] = numeric[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
            self.sequences.push(int(chunk["ts"].dt.epoch("us")[0]), chunk["symbol"].to_list(), values)
        if any(numeric.null_count().row(0)):
            self._grid_run = 0  # an empty cell: no grid until this chunk falls out
        elif (
            self._chunks
            and self._chunks[-1]["symbol"].equals(chunk["symbol"])
            and self._chunks[-1].columns == chunk.columns
        ):
            self._grid_run += 1
        else:
            self._grid_run = 1
        self._chunks.append(chunk)
        self._values.append(numeric.to_numpy().astype(float, copy=False))
        self._bars = None
        if len(self._chunks) > self.history_bars:
            self._chunks.pop(0)
            self._values.pop(0)

    def rows(self) -> pl.DataFrame:
        """Feature rows at the newest timestamp, one per symbol with a bar there (nulls where history is short)."""
        if not self._chunks:
            raise ValueError("the feature buffer is empty")
        return latest_features(self.bars, self.feature_names)

    @staticmethod
    def matrix(rows: pl.DataFrame, feature_list: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``X`` in the model's feature order and the mask of rows with every input present."""
        X = rows.select(feature_list).to_numpy().astype(float)
        return X, np.isfinite(X).all(axis=1)
