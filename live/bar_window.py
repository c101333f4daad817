"""The live bar window: per symbol, its last bars, each bar pushed exactly once; one store for every model.

Read per symbol, right-aligned: a symbol's newest bar last, its older bars before it, oldest first, and NaN before
its first bar (a new listing, a short history); see :class:`BarWindow` for the storage. Both readers take these
windows:

* the feature path (:mod:`live.features`) hands each symbol's last bars to :func:`ml.features.newest_feature_values`,
  the numpy evaluation of the features' one definition;
* the raw-sequence path cuts each symbol's newest ``length`` bars, oldest first: the window
  :func:`ml.sequences.raw_windows` cuts in training from the same bars, normalised by the training function itself
  (:func:`ml.sequences.normalize_windows`).

A bar for a symbol at or before the newest bar the window holds for it (the same bar twice, or one out of order) is
an error (:class:`BarOrderError`), never a silent duplicate: a window with a bar twice is not the window training
saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.sequences import SequenceSpec, complete_windows, normalize_windows


class BarOrderError(ValueError):
    """A bar was pushed twice or out of time order; the message names the symbols and times."""


class BarWindow:
    """The last ``capacity`` bars of each symbol, over the bar ``columns``.

    Storage: each column is ``2·capacity × symbols``; a symbol's ``c``-th bar goes to rows ``(c - 1) % capacity``
    and that plus ``capacity`` of its column, so its newest ``capacity`` bars always sit one under the other, oldest
    first, ending at row ``(c - 1) % capacity + capacity`` (NaN in the rows it has no bar for yet). A push writes two
    cells per symbol and column; when every symbol has pushed as many bars (the usual case) a read is a slice of
    whole rows, not a copy.

    Attributes:
        capacity: bars kept per symbol.
        columns: the bar columns kept, in this order.
        symbols: every symbol seen, in the order they first came (the rows of :meth:`column`).
        newest: the time of the newest bar pushed (integer, e.g. epoch µs; ``None`` before the first).
    """

    def __init__(self, capacity: int, columns: Sequence[str]) -> None:
        if capacity <= 0:
            raise ValueError(f"a bar window needs capacity > 0, got {capacity}")
        self.capacity = int(capacity)
        self.columns = tuple(columns)
        self.symbols: list[str] = []
        self.newest: int | None = None
        self._col = {c: j for j, c in enumerate(self.columns)}
        self._index: dict[str, int] = {}
        self._data = np.full((len(self.columns), 2 * self.capacity, 0), np.nan)
        self._count = np.zeros(0, dtype=np.int64)  # bars pushed per symbol, ever
        self._last = np.zeros(0, dtype=np.int64)  # time of each symbol's newest bar
        self._pushed: tuple[list[str], np.ndarray] = ([], np.zeros(0, dtype=np.int64))  # the last push's rows
        self._by_name = np.zeros(0, dtype=np.int64)  # every row, in symbol order

    def _add(self, symbols: Sequence[str]) -> None:
        new = [s for s in dict.fromkeys(symbols) if s not in self._index]
        if new:
            for s in new:
                self._index[s] = len(self.symbols)
                self.symbols.append(s)
            k = len(new)
            fresh = np.full((len(self.columns), 2 * self.capacity, k), np.nan)
            self._data = np.concatenate([self._data, fresh], axis=2)
            self._count = np.concatenate([self._count, np.zeros(k, dtype=np.int64)])
            self._last = np.concatenate([self._last, np.full(k, np.iinfo(np.int64).min)])

    def push(self, ts: int, symbols: Sequence[str], values: np.ndarray) -> None:
        """Add one bar time's bars: ``values[i]`` (in :attr:`columns` order) is ``symbols[i]``'s bar at ``ts``.

        Raises:
            BarOrderError: a symbol repeats in the call, or already holds a bar at or after ``ts``; nothing is
                written then.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(symbols), len(self.columns)):
            raise ValueError(f"values of shape {values.shape}; expected ({len(symbols)}, {len(self.columns)})")
        if symbols == self._pushed[0]:  # the same symbols as the last push (the usual case): no lookups
            rows = self._pushed[1]
        else:
            if len(set(symbols)) != len(symbols):
                seen: set[str] = set()
                twice = sorted({s for s in symbols if s in seen or seen.add(s)})
                raise BarOrderError(f"bar at {ts} pushed twice in one call for {twice[:5]}")
            rows = np.fromiter((self._index.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))
        known = rows[rows >= 0]
        if len(known) and (self._last[known] >= ts).any():
            last = self._last[rows.clip(0)]
            stale = (rows >= 0) & (last >= ts)
            bad = [symbols[i] for i in np.flatnonzero(stale)[:5]]
            kind = "again" if (last[stale] == ts).any() else "out of order"
            raise BarOrderError(
                f"bar at {ts} pushed {kind} for {bad} (the window's newest bar for them is at or after it)"
            )
        if len(known) < len(rows):
            self._add(symbols)
            rows = np.fromiter((self._index[s] for s in symbols), dtype=np.int64, count=len(symbols))
        slot = self._count[rows] % self.capacity
        self._data[:, slot, rows] = values.T
        self._data[:, slot + self.capacity, rows] = values.T
        self._count[rows] += 1
        self._last[rows] = ts
        self._pushed = (list(symbols), rows)
        self.newest = ts if self.newest is None else max(self.newest, ts)

    def rows_of(self, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, known)``: each symbol's row (0 where unknown) and whether the window has seen it."""
        known = np.fromiter((s in self._index for s in symbols), dtype=bool, count=len(symbols))
        rows = np.fromiter((self._index.get(s, 0) for s in symbols), dtype=np.int64, count=len(symbols))
        return rows, known

    def at_newest(self) -> np.ndarray:
        """Rows of the symbols with a bar at :attr:`newest`, in symbol order."""
        if self.newest is None:
            return np.zeros(0, np.int64)
        if len(self._by_name) != len(self.symbols):  # symbols came since: sort their rows by name again
            self._by_name = np.argsort(np.array(self.symbols, dtype=object), kind="stable")
        return self._by_name[self._last[self._by_name] == self.newest]

    def column(self, name: str, rows: np.ndarray, length: int | None = None) -> np.ndarray:
        """``(length, len(rows))``: the newest ``length`` (default: all) bars of a column for each of ``rows`` (the
        symbols' numbers), oldest first down the rows, NaN above a symbol's first bar. A view when ``rows`` are all
        the symbols, in order, with as many bars pushed."""
        length = self.capacity if length is None else length
        if length > self.capacity:
            raise ValueError(f"a window of {length} bars is longer than the window's {self.capacity}")
        block = self._data[self._col[name]]
        end = (self._count[rows] - 1) % self.capacity + self.capacity + 1  # one past each symbol's newest bar
        if len(rows) and (end == end[0]).all():
            if len(rows) == len(self.symbols) and (rows == np.arange(len(rows))).all():
                return block[end[0] - length : end[0]]
            return block[end[0] - length : end[0], rows]
        return block[end[None, :] - length + np.arange(length)[:, None], rows[None, :]]

    def n_bars(self, rows: np.ndarray) -> np.ndarray:
        """Bars each row's symbol has in the window (at most :attr:`capacity`)."""
        return np.minimum(self._count[rows], self.capacity)

    def raw(self, symbols: Sequence[str], length: int, channels: Sequence[str]) -> np.ndarray:
        """Raw windows ``[len(symbols), length, len(channels)]``, oldest bar first; NaN where a symbol has fewer
        than ``length`` bars (or none)."""
        if length > self.capacity:
            raise ValueError(f"a window of {length} bars is longer than the window's {self.capacity}")
        rows, known = self.rows_of(symbols)
        out = np.stack([self.column(c, rows, length).T for c in channels], axis=-1)
        out[~known | (self._count[rows] < length)] = np.nan
        return out

    def windows(self, symbols: Sequence[str], spec: SequenceSpec) -> tuple[np.ndarray, np.ndarray]:
        """Normalised windows of ``symbols`` for a model reading ``spec``, and the mask of complete ones."""
        raw = self.raw(symbols, spec.length, spec.channels)
        return normalize_windows(raw, spec), complete_windows(raw, spec.channels)
