"""The small expression language the time-series features are written in: each feature is defined once, as a tree
of :class:`SeriesExpr` nodes over one symbol's bars (oldest first), and evaluated two ways:

* :meth:`SeriesExpr.polars` builds the polars expression that training runs over whole histories
  (:func:`ml.features.build_features`, ``over`` each symbol);
* :func:`compile_tail` turns it into a function computing the node's values at each symbol's newest ``m`` bars with
  numpy, from a window of every symbol's last bars (:func:`ml.features.newest_feature_values`, the live engine's
  path): only the bars a value reads are touched, so the newest bar of 500 symbols costs a few array operations per
  feature, not a plan.

The operations mirror polars' names and meaning, null handling included. In the numpy form a missing value is NaN:
a symbol's window is one column, its newest bar in the last row, padded with NaN above where it has fewer bars (no
row there, as before a symbol's first bar in training); ``present`` tells the padding from a value.
``rolling_*(w)`` is null unless all ``w`` values are present (polars' default ``min_samples``). Raw bar columns hold
no NaN (:func:`ml.bars.validate_bars`) and every feature's NaN becomes null after its stage, so within the bars a
value reads, NaN and null coincide. ``tests/test_features.py`` checks the two evaluations against each other
(1e-9) on every feature, with short histories, missing bars and bars without ``vwap``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import as_strided

DAY_US = 86_400_000_000
"""Microseconds in a day: the time-of-day angle's period."""


class SeriesExpr:
    """A node: an operation ``op`` on child nodes ``args`` with constant ``params``. Build nodes with :func:`col`,
    :func:`lit`, the operators and the methods below, never by hand."""

    __slots__ = ("op", "args", "params")

    def __init__(self, op: str, args: tuple[SeriesExpr, ...] = (), params: tuple = ()) -> None:
        self.op, self.args, self.params = op, args, params

    # arithmetic: the same operand order as the polars expression written with these operators
    def __add__(self, other: SeriesExpr | float) -> SeriesExpr:
        return SeriesExpr("add", (self, lift(other)))

    def __radd__(self, other: float) -> SeriesExpr:
        return SeriesExpr("add", (lift(other), self))

    def __sub__(self, other: SeriesExpr | float) -> SeriesExpr:
        return SeriesExpr("sub", (self, lift(other)))

    def __rsub__(self, other: float) -> SeriesExpr:
        return SeriesExpr("sub", (lift(other), self))

    def __mul__(self, other: SeriesExpr | float) -> SeriesExpr:
        return SeriesExpr("mul", (self, lift(other)))

    def __rmul__(self, other: float) -> SeriesExpr:
        return SeriesExpr("mul", (lift(other), self))

    def __truediv__(self, other: SeriesExpr | float) -> SeriesExpr:
        return SeriesExpr("div", (self, lift(other)))

    def __rtruediv__(self, other: float) -> SeriesExpr:
        return SeriesExpr("div", (lift(other), self))

    def __neg__(self) -> SeriesExpr:
        return SeriesExpr("neg", (self,))

    def pow(self, exponent: int) -> SeriesExpr:
        return SeriesExpr("pow", (self,), (exponent,))

    def log(self) -> SeriesExpr:
        return SeriesExpr("log", (self,))

    def log1p(self) -> SeriesExpr:
        return SeriesExpr("log1p", (self,))

    def sqrt(self) -> SeriesExpr:
        return SeriesExpr("sqrt", (self,))

    def sin(self) -> SeriesExpr:
        return SeriesExpr("sin", (self,))

    def cos(self) -> SeriesExpr:
        return SeriesExpr("cos", (self,))

    def clip(self, lower_bound: float) -> SeriesExpr:
        """Values below ``lower_bound`` raised to it (null stays null)."""
        return SeriesExpr("clip", (self,), (lower_bound,))

    def fill_nan(self, value: float) -> SeriesExpr:
        return SeriesExpr("fill_nan", (self,), (value,))

    def fill_null(self, value: float) -> SeriesExpr:
        return SeriesExpr("fill_null", (self,), (value,))

    def is_not_null(self) -> SeriesExpr:
        return SeriesExpr("is_not_null", (self,))

    # along the symbol's bars
    def shift(self, bars: int) -> SeriesExpr:
        """The value ``bars`` bars earlier (``bars >= 1``: never a later bar)."""
        if bars < 1:
            raise ValueError(f"shift({bars}): only earlier bars may be read")
        return SeriesExpr("shift", (self,), (bars,))

    def diff(self) -> SeriesExpr:
        """This bar's value minus the previous bar's."""
        return SeriesExpr("diff", (self,))

    def rolling_mean(self, window: int) -> SeriesExpr:
        return SeriesExpr("rolling_mean", (self,), (window,))

    def rolling_std(self, window: int) -> SeriesExpr:
        """Sample standard deviation (ddof 1) of the last ``window`` values."""
        return SeriesExpr("rolling_std", (self,), (window,))

    def rolling_sum(self, window: int) -> SeriesExpr:
        return SeriesExpr("rolling_sum", (self,), (window,))

    def rolling_max(self, window: int) -> SeriesExpr:
        return SeriesExpr("rolling_max", (self,), (window,))

    def rolling_min(self, window: int) -> SeriesExpr:
        return SeriesExpr("rolling_min", (self,), (window,))

    def rolling_skew(self, window: int) -> SeriesExpr:
        """Sample skewness, bias-corrected (``rolling_skew(window, bias=False)``)."""
        return SeriesExpr("rolling_skew", (self,), (window,))

    def truncated_ema(self, span: int, window: int) -> SeriesExpr:
        """The EMA of span ``span`` truncated to the last ``window`` bars: weights ``d^lag``
        (``d = 1 - 2 / (span + 1)``) normalised over the window, nulls read as 0 (mask with :meth:`complete`
        where the input may hold them); null before the symbol's ``window``-th bar.

        Polars computes it in O(1) a bar from the running, untruncated EMA ``y_t = d·y_{t-1} + (1 - d)·x_t``
        (``y_0 = x_0``): the window's weighted sum is ``y_t - d^window·y_{t-window}`` (older terms cancel) and
        ``y_{t-window} = (y_{t-window+1} - (1 - d)·x_{t-window+1}) / d`` (with ``y_{-1} = x_0``); numpy takes the
        weighted sum of each window directly, one matrix product for all of them. The two agree to ~1e-15
        relative.
        """
        return SeriesExpr("truncated_ema", (self,), (span, window))

    def complete(self, window: int) -> SeriesExpr:
        """True where the last ``window`` values (this bar's included) are all present; null before the symbol's
        ``window``-th bar."""
        return SeriesExpr("complete", (self,), (window,))

    # ---- the two evaluations ----------------------------------------------------------------------------------
    def polars(self) -> pl.Expr:
        """The polars expression over one symbol's bars (the caller adds ``over``)."""
        return _POLARS[self.op](self, *(a.polars() for a in self.args))


def lift(value: SeriesExpr | float | str) -> SeriesExpr:
    """A node for a node, a number (a literal) or a column name."""
    if isinstance(value, SeriesExpr):
        return value
    if isinstance(value, str):
        return col(value)
    return lit(value)


def col(name: str) -> SeriesExpr:
    """A bar column (``open``, ``high``, ``low``, ``close``, ``volume``, ``vwap``) or another feature's column."""
    return SeriesExpr("col", (), (name,))


def lit(value: float) -> SeriesExpr:
    return SeriesExpr("lit", (), (float(value),))


def when(condition: SeriesExpr, value: SeriesExpr) -> SeriesExpr:
    """``value`` where ``condition`` is true, else null."""
    return SeriesExpr("when", (condition, value))


def max_horizontal(*values: SeriesExpr | str) -> SeriesExpr:
    """The largest of the values at each bar, nulls ignored (null only when all are)."""
    return SeriesExpr("max_horizontal", tuple(lift(v) for v in values))


def min_horizontal(*values: SeriesExpr | str) -> SeriesExpr:
    """The smallest of the values at each bar, nulls ignored (null only when all are)."""
    return SeriesExpr("min_horizontal", tuple(lift(v) for v in values))


def tod_angle() -> SeriesExpr:
    """The bar's UTC time of day as an angle in radians (``ts``, epoch microseconds, modulo a day)."""
    return SeriesExpr("tod_angle")


def _truncated_ema_polars(node: SeriesExpr, x: pl.Expr) -> pl.Expr:
    span, window = node.params
    decay = 1.0 - 2.0 / (span + 1.0)
    x = x.fill_null(0.0)
    running = x.ewm_mean(alpha=1.0 - decay, adjust=False)
    dropped = decay ** (window - 1) * (running.shift(window - 1) - (1.0 - decay) * x.shift(window - 1))
    return (running - dropped) / (1.0 - decay**window)


_POLARS: dict[str, Callable[..., pl.Expr]] = {
    "col": lambda n: pl.col(n.params[0]),
    "lit": lambda n: pl.lit(n.params[0]),
    "add": lambda n, a, b: a + b,
    "sub": lambda n, a, b: a - b,
    "mul": lambda n, a, b: a * b,
    "div": lambda n, a, b: a / b,
    "neg": lambda n, a: -a,
    "pow": lambda n, a: a.pow(n.params[0]),
    "log": lambda n, a: a.log(),
    "log1p": lambda n, a: a.log1p(),
    "sqrt": lambda n, a: a.sqrt(),
    "sin": lambda n, a: a.sin(),
    "cos": lambda n, a: a.cos(),
    "clip": lambda n, a: a.clip(lower_bound=n.params[0]),
    "fill_nan": lambda n, a: a.fill_nan(n.params[0]),
    "fill_null": lambda n, a: a.fill_null(n.params[0]),
    "is_not_null": lambda n, a: a.is_not_null(),
    "shift": lambda n, a: a.shift(n.params[0]),
    "diff": lambda n, a: a.diff(),
    "rolling_mean": lambda n, a: a.rolling_mean(n.params[0]),
    "rolling_std": lambda n, a: a.rolling_std(n.params[0]),
    "rolling_sum": lambda n, a: a.rolling_sum(n.params[0]),
    "rolling_max": lambda n, a: a.rolling_max(n.params[0]),
    "rolling_min": lambda n, a: a.rolling_min(n.params[0]),
    "rolling_skew": lambda n, a: a.rolling_skew(n.params[0], bias=False),
    "truncated_ema": _truncated_ema_polars,
    "complete": lambda n, a: a.is_not_null().cast(pl.UInt32).rolling_sum(n.params[0]) == n.params[0],
    "when": lambda n, c, v: pl.when(c).then(v),
    "max_horizontal": lambda n, *a: pl.max_horizontal(*a),
    "min_horizontal": lambda n, *a: pl.min_horizontal(*a),
    "tod_angle": lambda n: (pl.col("ts").dt.epoch("us") % DAY_US).cast(pl.Float64) * (2.0 * math.pi / DAY_US),
}


# ---- the numpy evaluation at each symbol's newest bars ----------------------------------------------------------

TailFn = Callable[["TailWindow", int], "np.ndarray | float"]
"""A compiled node: ``fn(window, m)`` -> the node's values at every symbol's newest ``m`` bars (see
:func:`compile_tail`)."""


def extra_bars(node: SeriesExpr) -> int:
    """How many bars before its own first value ``node`` reads of its inputs: its values at the newest ``m`` bars
    need its inputs' at the newest ``m + extra_bars(node)`` (a shift's bars, a window's width less one)."""
    op, p = node.op, node.params
    if op == "shift":
        return p[0]
    if op == "diff":
        return 1
    if op in _ROLLING or op == "complete":
        return p[0] - 1
    if op == "truncated_ema":
        return p[1] - 1
    return 0


def tail_demand(nodes: dict[str, SeriesExpr], outputs: Iterable[str]) -> dict[str, int]:
    """For ``outputs`` evaluated at each symbol's newest bar, the most newest bars any node reads of each named
    column (a bar column, or another of ``nodes``): :class:`TailWindow` computes each column once, that long."""
    demand: dict[str, int] = {}

    def visit(node: SeriesExpr, m: int) -> None:
        if node.op == "col":
            name = node.params[0]
            if demand.get(name, 0) < m:
                demand[name] = m
                if name in nodes:
                    visit(nodes[name], m)
            return
        for child in node.args:
            visit(child, m + extra_bars(node))

    for name in outputs:
        visit(SeriesExpr("col", (), (name,)), 1)
    return demand


@dataclass
class TailWindow:
    """Every symbol's last bars, one column per symbol: column ``i`` of each array holds symbol ``i``'s bars, oldest
    first down the rows, its newest bar in the last row, NaN above its first bar in the window (positions × symbols:
    a window's reduction adds whole rows of contiguous symbols, ~3x faster than along each symbol's bars).

    Attributes:
        columns: bar columns (``open``, ``high``, ``low``, ``close``, ``volume``, ``vwap``; ``ts`` as float epoch
            microseconds, exact below 2^53), each ``(width, n_symbols)``.
        n_bars: bars each symbol has in the window (at most ``width``), ``(n_symbols,)``.
        resolve: the compiled node of a column that is not a bar column (another feature, a helper column).
        demand: how many newest bars to compute a resolved column at (:func:`tail_demand`): once, then sliced.
    """

    columns: dict[str, np.ndarray]
    n_bars: np.ndarray
    resolve: Callable[[str], TailFn]
    demand: dict[str, int] = field(default_factory=dict)
    _memo: dict[object, np.ndarray] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return next(iter(self.columns.values())).shape[0]

    def present(self, m: int) -> np.ndarray:
        """``(m, n_symbols)``: the newest ``m`` positions that hold a bar."""
        key = ("<present>", m)
        if key not in self._memo:
            self._memo[key] = np.arange(self.width - m, self.width)[:, None] >= (self.width - self.n_bars)[None, :]
        return self._memo[key]

    def column(self, name: str, m: int) -> np.ndarray:
        """A column's values at the newest ``m`` positions, ``(m, n_symbols)`` (NaN rows above the window)."""
        values = self.columns.get(name)
        if values is None:  # another node's column: computed once, at the longest tail read of it
            values = self._memo.get(name)
            if values is None or values.shape[0] < m:
                values = self._memo[name] = self.resolve(name)(self, max(m, self.demand.get(name, m)))
        width = values.shape[0]
        if m <= width:
            return values[width - m :]
        out = np.full((m, values.shape[1]), np.nan)
        out[m - width :] = values
        return out


def _windows(x: np.ndarray, window: int) -> np.ndarray:
    """``(m, window, n)`` views of ``(m + window - 1, n)``: the window ending at each of the last ``m`` positions."""
    length, n = x.shape
    return as_strided(x, (length - window + 1, window, n), (x.strides[0], x.strides[0], x.strides[1]), writeable=False)


_sum = np.add.reduce  # the ufunc's own reduction: numpy's ``mean``/``sum`` wrappers cost more than a window here


def _mean(w: np.ndarray) -> np.ndarray:
    return _sum(w, axis=1) / w.shape[1]


def _squares(w: np.ndarray) -> np.ndarray:
    """The sum of squared deviations from each window's mean (two passes, as a variance should be)."""
    d = w - _mean(w)[:, None, :]
    return _sum(d * d, axis=1)


def _skew(w: np.ndarray) -> np.ndarray:
    n = w.shape[1]
    d = w - _mean(w)[:, None, :]
    d2 = d * d
    m2 = _sum(d2, axis=1) / n
    m3 = _sum(d2 * d, axis=1) / n
    return m3 / m2**1.5 * (math.sqrt(n * (n - 1)) / (n - 2))


@functools.lru_cache(maxsize=256)
def _band(weights: tuple[float, ...], m: int) -> np.ndarray:
    """``(m, m + w - 1)``: row ``i`` holds ``weights`` (oldest first) at columns ``i … i + w - 1``, so that
    ``band @ x`` is the weighted sum of the ``w``-window ending at each of the last ``m`` positions of ``x``."""
    w = len(weights)
    band = np.zeros((m, m + w - 1))
    for i in range(m):
        band[i, i : i + w] = weights
    band.flags.writeable = False
    return band


def _window_sums(x: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """The weighted sum of each ``len(weights)``-window of ``x`` ending at its last ``m`` positions (one matrix
    product); NaN where a window holds a NaN (a NaN outside a window cannot reach it)."""
    m = x.shape[0] - len(weights) + 1
    missing = np.isnan(x)
    if not missing.any():
        return _band(weights, m) @ x
    out = _band(weights, m) @ np.where(missing, 0.0, x)
    holes = _band((1.0,) * len(weights), m) @ missing.astype(np.float64)
    return np.where(holes > 0, np.nan, out)


@functools.lru_cache(maxsize=64)
def _ema_weights(span: int, window: int) -> tuple[float, ...]:
    """The truncated EMA's weights over its window, oldest first: ``d^lag`` normalised to sum to 1."""
    decay = 1.0 - 2.0 / (span + 1.0)
    return tuple((decay ** np.arange(window - 1, -1, -1) * ((1.0 - decay) / (1.0 - decay**window))).tolist())


def _complete(x: np.ndarray, window: int) -> np.ndarray:
    """1.0 where the ``window`` values ending at each of the last ``x.shape[0] - window + 1`` positions are all
    present, NaN (null) elsewhere."""
    m = x.shape[0] - window + 1
    holes = _band((1.0,) * window, m) @ np.isnan(x).astype(np.float64)
    return np.where(holes > 0, np.nan, 1.0)


def _clip(x: np.ndarray, lower: float) -> np.ndarray:
    return np.where(x < lower, lower, x)


_ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "neg": np.negative,
    "pow": np.power,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
    "sin": np.sin,
    "cos": np.cos,
    "clip": _clip,
    "is_not_null": lambda x: np.where(np.isnan(x), 0.0, 1.0),  # booleans are 1.0 / 0.0, NaN: null
    "max_horizontal": lambda *a: np.fmax.reduce(np.broadcast_arrays(*a)),  # fmax ignores NaN, as polars nulls
    "min_horizontal": lambda *a: np.fmin.reduce(np.broadcast_arrays(*a)),
}

_ROLLING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rolling_mean": _mean,
    "rolling_std": lambda w: np.sqrt(_squares(w) / (w.shape[1] - 1)),
    "rolling_sum": lambda w: _sum(w, axis=1),
    "rolling_max": lambda w: np.maximum.reduce(w, axis=1),
    "rolling_min": lambda w: np.minimum.reduce(w, axis=1),
    "rolling_skew": _skew,
}
"""Reductions over each window's values (:func:`_windows`, axis 1); NaN anywhere in a window gives NaN (null), as
polars' ``min_samples = window``."""


def compile_tail(node: SeriesExpr) -> TailFn:
    """``node`` as a function of a :class:`TailWindow` and ``m``: its values at every symbol's newest ``m`` bars,
    ``(m, n_symbols)`` (a literal stays a float), NaN where polars' value is null or NaN. Compiled once per node
    (the live engine evaluates the same features every cycle); call inside ``np.errstate(all="ignore")``: 0/0 and
    the log of 0 are values here, as in polars."""
    op, p = node.op, node.params
    if op == "col":
        name = p[0]
        return lambda w, m: w.column(name, m)
    if op == "lit":
        value = p[0]
        return lambda w, m: value
    if op == "tod_angle":
        return lambda w, m: np.fmod(w.column("ts", m), DAY_US) * (2.0 * math.pi / DAY_US)
    args = [compile_tail(a) for a in node.args]
    if op in _ELEMENTWISE:
        f = _ELEMENTWISE[op]
        if len(args) == 1:
            (a,) = args
            return lambda w, m: f(a(w, m), *p)
        if len(args) == 2:
            a, b = args
            return lambda w, m: f(a(w, m), b(w, m), *p)
        return lambda w, m: f(*(a(w, m) for a in args), *p)
    (a, *rest) = args
    extra = extra_bars(node)  # the input is read at the newest m + extra bars
    if op in ("fill_nan", "fill_null"):  # NaN is null here; where no bar is, there is no value to fill
        value = p[0]

        def fill(w: TailWindow, m: int) -> np.ndarray:
            x = a(w, m)
            return np.where(np.isnan(x) & w.present(m), value, x)

        return fill
    if op == "when":
        (then,) = rest
        return lambda w, m: np.where(a(w, m) == 1.0, then(w, m), np.nan)
    if op == "shift":
        return lambda w, m: a(w, m + extra)[:m]
    if op == "diff":

        def diff(w: TailWindow, m: int) -> np.ndarray:
            x = a(w, m + extra)
            return x[1:] - x[:-1]

        return diff
    if op in _ROLLING:
        reduce, width = _ROLLING[op], p[0]
        return lambda w, m: reduce(_windows(a(w, m + extra), width))
    if op == "complete":
        width = p[0]
        return lambda w, m: _complete(a(w, m + extra), width)
    if op == "truncated_ema":
        weights = _ema_weights(*p)

        def ema(w: TailWindow, m: int) -> np.ndarray:
            x = a(w, m + extra)
            x = np.where(np.isnan(x) & w.present(m + extra), 0.0, x)  # fill_null(0); no bar stays NaN
            return _window_sums(x, weights)

        return ema
    raise ValueError(f"no numpy form for operation {op!r}")
