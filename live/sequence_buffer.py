"""The live raw-sequence buffer: per symbol, a ring of its last bars, each bar pushed exactly once.

One buffer serves every raw-sequence model the engine trades, whatever their number, targets or horizons: it holds
the longest ``sequence_length`` any of them reads, and a window of ``length`` bars is the newest ``length`` of the
ring, oldest first: the window :func:`ml.sequences.raw_windows` cuts in training from the same bars. Normalising is
:func:`ml.sequences.normalize_windows`, the training function itself.

A bar for a symbol at or before the newest bar the buffer holds for it (the same bar twice, or one out of order) is
an error (:class:`BarOrderError`), never a silent duplicate: a window with a bar twice is not the window training
saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.sequences import SequenceSpec, complete_windows, normalize_windows


class BarOrderError(ValueError):
    """A bar was pushed twice or out of time order; the message names the symbols and times."""


class SequenceBuffer:
    """Rings of the last ``capacity`` bars of each symbol, over the OHLCV ``columns``.

    Attributes:
        capacity: bars kept per symbol (the longest window a loaded model reads).
        columns: the bar columns kept, in this order.
    """

    def __init__(self, capacity: int, columns: Sequence[str]) -> None:
        if capacity <= 0:
            raise ValueError(f"a sequence buffer needs capacity > 0, got {capacity}")
        self.capacity = int(capacity)
        self.columns = tuple(columns)
        self._col = {c: j for j, c in enumerate(self.columns)}
        self._index: dict[str, int] = {}
        self._data = np.full((0, self.capacity, len(self.columns)), np.nan)
        self._count = np.zeros(0, dtype=np.int64)  # bars pushed per symbol, ever
        self._last = np.zeros(0, dtype=np.int64)  # time of each symbol's newest bar (integer, e.g. epoch µs)

    def _rows(self, symbols: Sequence[str]) -> np.ndarray:
        new = [s for s in dict.fromkeys(symbols) if s not in self._index]
        if new:
            for s in new:
                self._index[s] = len(self._index)
            k = len(new)
            self._data = np.concatenate([self._data, np.full((k, self.capacity, len(self.columns)), np.nan)])
            self._count = np.concatenate([self._count, np.zeros(k, dtype=np.int64)])
            self._last = np.concatenate([self._last, np.full(k, np.iinfo(np.int64).min)])
        return np.fromiter((self._index[s] for s in symbols), dtype=np.int64, count=len(symbols))

    def push(self, ts: int, symbols: Sequence[str], values: np.ndarray) -> None:
        """Add one bar time's bars: ``values[i]`` (in :attr:`columns` order) is ``symbols[i]``'s bar at ``ts``.

        Raises:
            BarOrderError: a symbol repeats in the call, or already holds a bar at or after ``ts``; nothing is
                written then.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(symbols), len(self.columns)):
            raise ValueError(f"values of shape {values.shape}; expected ({len(symbols)}, {len(self.columns)})")
        if len(set(symbols)) != len(symbols):
            seen: set[str] = set()
            twice = sorted({s for s in symbols if s in seen or seen.add(s)})
            raise BarOrderError(f"bar at {ts} pushed twice in one call for {twice[:5]}")
        rows = self._rows(symbols)
        stale = self._last[rows] >= ts
        if stale.any():
            bad = [symbols[i] for i in np.flatnonzero(stale)[:5]]
            kind = "again" if (self._last[rows][stale] == ts).any() else "out of order"
            raise BarOrderError(
                f"bar at {ts} pushed {kind} for {bad} (the buffer's newest bar for them is at or after it)"
            )
        slot = self._count[rows] % self.capacity
        self._data[rows, slot] = values
        self._count[rows] += 1
        self._last[rows] = ts

    def raw(self, symbols: Sequence[str], length: int, channels: Sequence[str]) -> np.ndarray:
        """Raw windows ``[len(symbols), length, len(channels)]``, oldest bar first; NaN where a symbol has fewer
        than ``length`` bars (or none)."""
        if length > self.capacity:
            raise ValueError(f"a window of {length} bars is longer than the buffer's {self.capacity}")
        out = np.full((len(symbols), length, len(channels)), np.nan)
        known = np.array([s in self._index for s in symbols], dtype=bool)
        if not known.any():
            return out
        rows = np.array([self._index[s] for s in symbols if s in self._index], dtype=np.int64)
        count = self._count[rows]
        slots = (count[:, None] - length + np.arange(length)[None, :]) % self.capacity
        cols = [self._col[c] for c in channels]
        got = self._data[rows[:, None], slots][:, :, cols]
        got[count < length] = np.nan
        out[known] = got
        return out

    def windows(self, symbols: Sequence[str], spec: SequenceSpec) -> tuple[np.ndarray, np.ndarray]:
        """Normalised windows of ``symbols`` for a model reading ``spec``, and the mask of complete ones."""
        raw = self.raw(symbols, spec.length, spec.channels)
        return normalize_windows(raw, spec), complete_windows(raw, spec.channels)
