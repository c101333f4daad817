"""Cross-sectional kernels: values of one timestamp compared across symbols, on a dense timestamps × symbols matrix.

:class:`Panel` places each row of a (symbol, ts)-sorted frame in a matrix with one row per timestamp and one column
per symbol (NaN where a symbol has no bar, or a null value); :meth:`Panel.apply` runs a kernel over blocks of
whole rows of that matrix and brings the result back to the frame's row order.

Why a matrix and not ``rank().over("ts")``: polars ranks each timestamp's group on its own (~5 µs a group, so
~0.19 s for one feature on 200 symbols × 20,000 bars); numpy sorts all rows of the matrix in one vectorised call
(~20 ms) and the whole rank kernel takes ~50 ms, with identical results (``bench/features.py`` and
``tests/test_features.py`` check them against pandas and polars).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Panel:
    """Where the rows of a frame sorted by (symbol, ts) sit in a dense ``n_ts × n_symbols`` matrix.

    Only blocks of the matrix are ever built, so a sparse panel (symbols listed at different times) costs memory in
    proportion to its rows, not to ``n_ts × n_symbols``.

    Attributes:
        n_ts: distinct timestamps (matrix rows, ascending).
        n_symbols: distinct symbols (matrix columns, in the frame's order).
        bars_at_ts: number of bars (frame rows) at each timestamp, shape ``(n_ts,)``.
        by_ts: ``None`` when every symbol has a bar at every timestamp (the frame's values reshaped
            ``(n_symbols, n_ts)`` are then the matrix transposed); otherwise the frame's row numbers ordered by
            (ts, symbol), the rows of timestamp ``i`` being ``by_ts[ts_start[i]:ts_start[i + 1]]``.
        ts_start: see ``by_ts``, shape ``(n_ts + 1,)``.
        cell: for the rows in ``by_ts`` order, their flat matrix index ``ts_index * n_symbols + symbol_index``.
    """

    n_ts: int
    n_symbols: int
    bars_at_ts: np.ndarray
    by_ts: np.ndarray | None = None
    ts_start: np.ndarray | None = None
    cell: np.ndarray | None = None

    @classmethod
    def of(cls, ts: pl.Series, symbol: pl.Series) -> Panel:
        """The layout of a frame sorted by (symbol, ts); a (symbol, ts) pair seen twice is a ``ValueError``."""
        n = ts.len()
        if n == 0:
            return cls(0, 0, np.zeros(0, dtype=np.int64))
        sym = symbol.rle_id().to_numpy()
        t = ts.to_physical().to_numpy()
        repeated = (np.diff(t) == 0) & (np.diff(sym) == 0)
        if repeated.any():
            i = int(np.flatnonzero(repeated)[0])
            raise ValueError(
                f"bars hold {int(repeated.sum())} repeated (symbol, ts) row(s), e.g. symbol {symbol[i]!r} at "
                f"{ts[i]}: cross-sectional features need one bar per symbol and timestamp (ingestion de-duplicates)"
            )
        n_symbols = int(sym[-1]) + 1
        per_symbol = n // n_symbols
        if per_symbol * n_symbols == n:
            grid = t.reshape(n_symbols, per_symbol)
            if (grid == grid[0]).all():
                return cls(per_symbol, n_symbols, np.full(per_symbol, n_symbols, dtype=np.int64))
        by_ts = np.argsort(t, kind="stable")  # stable: symbols stay in order within a timestamp
        t_by_ts = t[by_ts]
        ts_start = np.flatnonzero(np.concatenate([[True], t_by_ts[1:] != t_by_ts[:-1], [True]]))
        bars_at_ts = np.diff(ts_start)
        ts_index = np.repeat(np.arange(len(bars_at_ts)), bars_at_ts)
        return cls(len(bars_at_ts), n_symbols, bars_at_ts, by_ts, ts_start, ts_index * n_symbols + sym[by_ts])

    def apply(self, kernel: Kernel, values: pl.Series, name: str) -> pl.Series:
        """``kernel`` over the matrix of a column of the frame, back in the frame's row order (NaN -> null).

        The matrix goes through the kernel in blocks of consecutive timestamps of about :data:`BLOCK_CELLS` cells:
        each block's arrays stay in cache.
        """
        x = values.cast(pl.Float64).fill_null(np.nan).to_numpy()  # ~3x faster than to_numpy() turning nulls to NaN
        rows = max(1, BLOCK_CELLS // max(self.n_symbols, 1))
        if self.by_ts is None:
            by_symbol = x.reshape(self.n_symbols, self.n_ts)
            out = np.empty_like(by_symbol)
            for a in range(0, self.n_ts, rows):
                block = np.ascontiguousarray(by_symbol[:, a : a + rows].T)
                out[:, a : a + rows] = kernel(block, self.bars_at_ts[a : a + rows]).T
            return pl.Series(name, out.ravel(), dtype=pl.Float64, nan_to_null=True)
        out = np.empty(len(x))
        for a in range(0, self.n_ts, rows):
            b = min(a + rows, self.n_ts)
            frame_rows = self.by_ts[self.ts_start[a] : self.ts_start[b]]  # a block's rows: a few cache lines a symbol
            cells = self.cell[self.ts_start[a] : self.ts_start[b]] - a * self.n_symbols
            block = np.full((b - a) * self.n_symbols, np.nan)
            block[cells] = x[frame_rows]
            out[frame_rows] = kernel(block.reshape(b - a, self.n_symbols), self.bars_at_ts[a:b]).ravel()[cells]
        return pl.Series(name, out, dtype=pl.Float64, nan_to_null=True)


BLOCK_CELLS = 1 << 16
"""Cells (timestamps × symbols) a kernel gets at once: 512 KB of float64, so that its temporaries stay in cache."""

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``kernel(matrix, bars_at_ts)``: a timestamps × symbols block (NaN: null or no bar) and the number of bars at each
of its timestamps -> the feature's block, same shape."""


def rank_pct(m: np.ndarray, bars_at_ts: np.ndarray | None = None) -> np.ndarray:
    """Each value's rank in its row, in ``[0, 1]``: ``(rank - 1) / max(n - 1, 1)``, ties averaged.

    ``rank`` counts from 1 among the row's ``n`` non-NaN values; NaN stays NaN. The denominator counts the values
    present, not the timestamp's bars, so the top value ranks 1 however many symbols have a null there.
    ``bars_at_ts`` is not read; it makes ``rank_pct`` a :data:`Kernel`.
    """
    n_rows, n_cols = m.shape
    if m.size == 0:
        return m.copy()
    missing = np.isnan(m)
    has_missing = bool(missing.any())
    keys = m
    if has_missing and not np.isposinf(m).any():
        keys = np.where(missing, np.inf, m)  # the same order, NaN last; numpy's vectorised sort is ~6x slower on NaN
    order = np.argsort(keys, axis=1)
    order += (np.arange(n_rows) * n_cols)[:, None]
    flat = order.ravel()
    ordered = m.ravel().take(flat).reshape(n_rows, n_cols)
    denominator = np.maximum(n_rows_present(missing) - 1, 1).astype(np.float64)[:, None]
    position = np.arange(n_cols, dtype=np.float64) / denominator
    tied = ordered[:, 1:] == ordered[:, :-1]  # NaN never ties
    rows = np.flatnonzero(tied.any(axis=1))
    if rows.size:
        position[rows] = _tie_averaged_positions(tied[rows]) / denominator[rows]
    out = np.empty(m.size)
    out[flat] = position.ravel()
    if has_missing:
        out[missing.ravel()] = np.nan
    return out.reshape(n_rows, n_cols)


def n_rows_present(missing: np.ndarray) -> np.ndarray:
    """Number of values present (not NaN) in each row."""
    return missing.shape[1] - missing.sum(axis=1)


def _tie_averaged_positions(tied: np.ndarray) -> np.ndarray:
    """0-based positions in sorted rows, each run of equal values given its average position.

    ``tied[i, j]``: sorted values ``j`` and ``j + 1`` of row ``i`` are equal.
    """
    n_rows, n_cols = tied.shape[0], tied.shape[1] + 1
    cols = np.arange(n_cols)
    starts = np.ones((n_rows, n_cols), dtype=bool)
    starts[:, 1:] = ~tied
    first = np.maximum.accumulate(np.where(starts, cols, 0), axis=1)
    ends = np.ones((n_rows, n_cols), dtype=bool)
    ends[:, :-1] = ~tied
    last = np.minimum.accumulate(np.where(ends, cols, n_cols - 1)[:, ::-1], axis=1)[:, ::-1]
    return (first + last) * 0.5


def demean(m: np.ndarray, bars_at_ts: np.ndarray | None = None) -> np.ndarray:
    """Each value minus its row's mean over the non-NaN values (NaN stays NaN; an all-NaN row stays NaN).

    ``bars_at_ts`` is not read (the mean is over the values present); it makes ``demean`` a :data:`Kernel`.
    """
    valid = ~np.isnan(m)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf, 0 / 0: NaN, as intended
        mean = np.where(valid, m, 0.0).sum(axis=1) / count
        return m - mean[:, None]
