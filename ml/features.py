"""The one feature library, shared by training and live: each feature one definition over a symbol's bars
(:mod:`ml.series_expr`), evaluated by polars over every bar (:func:`build_features`, training) or by numpy at each
symbol's newest bar (:func:`newest_feature_values`, the live engine).

Every feature declares ``lookback_bars``: how many bars before ``t`` it reads (0 = bar ``t`` only).
No feature reads a bar after ``t`` (no negative shifts, no centred windows). Every window is finite —
exponential averages (MACD) are truncated, normalised exponential weightings over a fixed window
(:meth:`ml.series_expr.SeriesExpr.truncated_ema`) — so features computed on the
last ``lookback + 1`` bars of a symbol equal features computed on its whole history (to rounding: running sums
carry their last bits), and the first ``lookback`` bars of each symbol (warm-up) hold nulls.

Evaluation (:func:`build_features`): time-series features run per symbol (``over`` a symbol id) on chunks of whole
symbols in parallel; cross-sectional features run after them.

A feature may read other features' columns (its ``sources``, computed first, NaN already turned to null):
MACD signal/histogram read ``macd``, the volatility/skew family reads ``log_ret_1``, cross-sectional features
read the time-series feature they rank; the volume z-scores read private helper columns (``__log_volume``, not
features). A feature's ``lookback_bars`` includes its sources' lookbacks.

``vwap`` is optional in the bar schema (:mod:`ml.bars`): where the column is absent, or a cell of it is empty, the
VWAP features (``vwap_dev``, ``vwap_dev_20``, ``cs_rank_vwap_dev``) use the typical price
``(high + low + close) / 3`` as that bar's VWAP.

Time-of-day features (``tod_sin``, ``tod_cos``) place the bar's UTC close time on the 24-hour circle;
they are informative for intraday bars only (constant for daily bars).

Cross-sectional features are evaluated per timestamp across symbols: ``cs_rank_<f>`` is ``f``'s rank in
``[0, 1]`` among the symbols with a value at that timestamp (average ties; nulls stay null and do not count),
``cs_demean_<f>`` is ``f`` minus its cross-sectional mean. They run after the time-series features, as numpy kernels
over a dense timestamps × symbols matrix (:mod:`ml.cross_section`: one vectorised sort for all timestamps, ~4x faster
than ``rank().over("ts")``, which ranks each timestamp's group on its own).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.cross_section import Kernel, Panel, demean, rank_pct
from ml.series_expr import (
    SeriesExpr,
    TailFn,
    TailWindow,
    col,
    compile_tail,
    max_horizontal,
    min_horizontal,
    tail_demand,
    tod_angle,
    when,
)

TARGET_PREFIXES = ("fwd_ret_", "y_", "cs_percentile_", "cs_zscore_", "vol_scaled_")
KEY_COLUMNS = ("ts", "symbol")
SYMBOL_ID = "__symbol_id"
"""Helper column of the sorted bars: the symbol's number (0, 1, ...) in sort order, the key of every per-symbol
window (``over(SYMBOL_ID)``): windows keyed on this sorted integer run ~10 % faster than on the symbol strings."""


@dataclass(frozen=True)
class FeatureDef:
    """One feature.

    Attributes:
        name: column name.
        lookback_bars: bars before ``t`` the feature reads.
        expr: builds the polars expression of a time-series feature, meaning "over one symbol's bars sorted by
            ts" (``expr().over(SYMBOL_ID)``); see :func:`build_features` for how it is evaluated. ``None`` for a
            cross-sectional feature.
        sources: other features whose columns the feature reads; they are computed first.
        elementwise: the expression only combines bar ``t`` of its sources (``lookback_bars`` is theirs): evaluated
            without a window.
        kernel: a cross-sectional feature's computation (:data:`ml.cross_section.Kernel`): maps its one source as a
            timestamps × symbols matrix to the feature's matrix.
    """

    name: str
    lookback_bars: int
    expr: Callable[[], SeriesExpr] | None
    sources: tuple[str, ...] = ()
    elementwise: bool = False
    kernel: Kernel | None = None

    @property
    def cross_sectional(self) -> bool:
        """Evaluated per timestamp across symbols (after every time-series feature)."""
        return self.kernel is not None


def _ret(k: int) -> SeriesExpr:
    return col("close") / col("close").shift(k) - 1.0


def _log_ret() -> SeriesExpr:
    return (col("close") / col("close").shift(1)).log()


def _zscore(expr: SeriesExpr, window: int) -> SeriesExpr:
    mean = expr.rolling_mean(window)
    std = expr.rolling_std(window)
    return (expr - mean) / std


def _rsi(window: int) -> SeriesExpr:
    diff = col("close").diff()
    gain = diff.clip(lower_bound=0).rolling_mean(window)
    loss = (-diff).clip(lower_bound=0).rolling_mean(window)
    return 100.0 - 100.0 / (1.0 + gain / loss)


_LN2 = 0.6931471805599453


def _parkinson(window: int) -> SeriesExpr:
    return ((col("high") / col("low")).log().pow(2).rolling_mean(window) / (4.0 * _LN2)).sqrt()


def _garman_klass(window: int) -> SeriesExpr:
    """sqrt of the mean of ``0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2`` (per-bar, >= 0 since |ln C/O| <= ln H/L)."""
    hl = (col("high") / col("low")).log()
    co = (col("close") / col("open")).log()
    per_bar = 0.5 * hl.pow(2) - (2.0 * _LN2 - 1.0) * co.pow(2)
    return per_bar.rolling_mean(window).clip(lower_bound=0.0).sqrt()


def _atr(window: int) -> SeriesExpr:
    """Mean true range over ``window`` bars, as a fraction of close; the true range needs the previous close."""
    prev = col("close").shift(1)
    true_range = max_horizontal(col("high"), prev) - min_horizontal(col("low"), prev)
    true_range = when(prev.is_not_null(), true_range)
    return true_range.rolling_mean(window) / col("close")


# MACD (12, 26, 9) with each EMA truncated at 3 spans (dropped weight < 0.3 %): SeriesExpr.truncated_ema.
MACD_FAST = (12, 36)
MACD_SLOW = (26, 78)
MACD_SIGNAL = (9, 27)
_MACD_LOOKBACK = max(MACD_FAST[1], MACD_SLOW[1]) - 1
_MACD_SIGNAL_LOOKBACK = _MACD_LOOKBACK + MACD_SIGNAL[1] - 1


def _macd() -> SeriesExpr:
    """(EMA12 - EMA26) of close, divided by close: scale-free; null when a close of the slow window is missing."""
    close = col("close")
    macd = (close.truncated_ema(*MACD_FAST) - close.truncated_ema(*MACD_SLOW)) / close
    return when(close.complete(max(MACD_FAST[1], MACD_SLOW[1])), macd)


def _macd_signal() -> SeriesExpr:
    """The truncated EMA of ``macd``; null when a ``macd`` of its window is null."""
    return when(col("macd").complete(MACD_SIGNAL[1]), col("macd").truncated_ema(*MACD_SIGNAL))


def _bollinger_pctb(window: int, width: float = 2.0) -> SeriesExpr:
    """Where close sits in the band ``mean ± width·std`` (sample std): 0 = lower band, 1 = upper band.

    Written ``0.5 + (close - mean) / (2·width·std)`` (= ``(close - lower) / (upper - lower)``) to roll the std once.
    """
    return 0.5 + (col("close") - col("close").rolling_mean(window)) / (2.0 * width * col("close").rolling_std(window))


def _vwap_dev_rolling(window: int) -> SeriesExpr:
    """close / (volume-weighted mean of the bars' VWAP over ``window`` bars) - 1."""
    rolling_vwap = (col("vwap") * col("volume")).rolling_sum(window) / col("volume").rolling_sum(window)
    return col("close") / rolling_vwap - 1.0


def _ts(name: str, lookback: int, fn: Callable[[], SeriesExpr], sources: tuple[str, ...] = ()) -> FeatureDef:
    return FeatureDef(name, lookback, fn, sources=sources)


def _combine(name: str, fn: Callable[[], SeriesExpr], sources: tuple[str, ...]) -> FeatureDef:
    """A feature computed from its sources' values at bar ``t`` alone (its lookback is theirs)."""
    return FeatureDef(name, max(FEATURES_BY_NAME[s].lookback_bars for s in sources), fn, sources, elementwise=True)


def _cross_sectional_feature(prefix: str, kernel: Kernel, source: str) -> FeatureDef:
    """``<prefix>_<source>``: ``kernel`` over the time-series feature ``source`` across symbols (its lookback)."""
    return FeatureDef(f"{prefix}_{source}", FEATURES_BY_NAME[source].lookback_bars, None, (source,), kernel=kernel)


def _wick_log_ratio() -> SeriesExpr:
    """``log(upper wick / lower wick)``, each wick padded by 1 % of the bar's range so flat wicks stay finite."""
    pad = 0.01 * (col("high") - col("low"))
    upper = col("high") - max_horizontal("open", "close") + pad
    lower = min_horizontal("open", "close") - col("low") + pad
    return (upper / lower).log()


_TS_FEATURES: list[FeatureDef] = [
    # returns
    _ts("ret_1", 1, lambda: _ret(1)),
    _ts("ret_5", 5, lambda: _ret(5)),
    _ts("ret_10", 10, lambda: _ret(10)),
    _ts("ret_20", 20, lambda: _ret(20)),
    _ts("ret_60", 60, lambda: _ret(60)),
    _ts("log_ret_1", 1, _log_ret),
    # volatility and shape of returns
    _ts("rvol_5", 5, lambda: col("log_ret_1").rolling_std(5), ("log_ret_1",)),
    _ts("rvol_20", 20, lambda: col("log_ret_1").rolling_std(20), ("log_ret_1",)),
    _ts("rvol_60", 60, lambda: col("log_ret_1").rolling_std(60), ("log_ret_1",)),
    _ts("skew_20", 20, lambda: col("log_ret_1").rolling_skew(20), ("log_ret_1",)),
    _ts("parkinson_vol_20", 19, lambda: _parkinson(20)),
    _ts("gk_vol_20", 19, lambda: _garman_klass(20)),
    _ts("atr_14", 14, lambda: _atr(14)),
    # bar shape
    _ts("range_frac", 0, lambda: (col("high") - col("low")) / col("close")),
    _ts("close_location", 0, lambda: ((col("close") - col("low")) / (col("high") - col("low"))).fill_nan(0.5)),
    # oscillators and trend
    _ts("rsi_6", 6, lambda: _rsi(6)),
    _ts("rsi_14", 14, lambda: _rsi(14)),
    _ts("macd", _MACD_LOOKBACK, _macd),
    _ts("macd_signal", _MACD_SIGNAL_LOOKBACK, _macd_signal, ("macd",)),
    _ts("bb_pctb_20", 19, lambda: _bollinger_pctb(20)),
    _ts("dist_high_20", 19, lambda: col("close") / col("high").rolling_max(20) - 1.0),
    _ts("dist_low_20", 19, lambda: col("close") / col("low").rolling_min(20) - 1.0),
    _ts("dist_high_60", 59, lambda: col("close") / col("high").rolling_max(60) - 1.0),
    _ts("dist_low_60", 59, lambda: col("close") / col("low").rolling_min(60) - 1.0),
    # volume
    _ts("volume_z_20", 19, lambda: _zscore(col("__log_volume"), 20), ("__log_volume",)),
    _ts("volume_z_50", 49, lambda: _zscore(col("__log_volume"), 50), ("__log_volume",)),
    _ts("dollar_volume_z_20", 19, lambda: _zscore(col("__log_dollar_volume"), 20), ("__log_dollar_volume",)),
    # vwap (typical price when the bars have no vwap column)
    _ts("vwap_dev", 0, lambda: col("close") / col("vwap") - 1.0),
    _ts("vwap_dev_20", 19, lambda: _vwap_dev_rolling(20)),
    # time of day (UTC)
    _ts("tod_sin", 0, lambda: col("__tod_angle").sin(), ("__tod_angle",)),
    _ts("tod_cos", 0, lambda: col("__tod_angle").cos(), ("__tod_angle",)),
    # bar shape: the opening gap against the previous close, and the upper/lower wick imbalance
    _ts("open_gap", 1, lambda: (col("open") / col("close").shift(1)).log()),
    _ts("wick_log_ratio", 0, lambda: _wick_log_ratio()),
]
FEATURES_BY_NAME: dict[str, FeatureDef] = {f.name: f for f in _TS_FEATURES}
_COMBINED: list[FeatureDef] = [
    _combine("mom_gap_20_5", lambda: col("ret_20") - col("ret_5"), ("ret_20", "ret_5")),
    _combine("macd_hist", lambda: col("macd") - col("macd_signal"), ("macd", "macd_signal")),
]
FEATURES_BY_NAME.update({f.name: f for f in _COMBINED})
# Helper columns (not features: not in ALL_FEATURES, never output) that several expressions read, computed once.
_HELPERS: list[FeatureDef] = [
    # log1p: a zero-volume bar (a halt, an auction-only bar) is a finite, very low value, not a -inf that would
    # turn the whole rolling window's mean and std into NaN
    _ts("__log_volume", 0, lambda: col("volume").log1p()),
    _ts("__log_dollar_volume", 0, lambda: (col("close") * col("volume")).log1p()),
    _ts("__tod_angle", 0, tod_angle),
]
_CS_FEATURES: list[FeatureDef] = [
    # (no cs_rank_dollar_volume_z_20: within 20 bars price barely moves, so it duplicates cs_rank_volume_z_20)
    *(
        _cross_sectional_feature("cs_rank", rank_pct, s)
        for s in ("ret_1", "ret_5", "ret_20", "rvol_20", "rsi_14", "volume_z_20", "vwap_dev")
    ),
    _cross_sectional_feature("cs_demean", demean, "ret_1"),
    _cross_sectional_feature("cs_demean", demean, "ret_5"),
]
FEATURES_BY_NAME.update({f.name: f for f in _CS_FEATURES})
ALL_FEATURES: tuple[str, ...] = tuple(sorted(FEATURES_BY_NAME))
_DEFS: dict[str, FeatureDef] = {**FEATURES_BY_NAME, **{f.name: f for f in _HELPERS}}


def _check_registry() -> None:
    """Every source exists; time-series features have an expression and read only time-series columns (they are
    computed first); a cross-sectional feature's kernel reads exactly one time-series feature."""
    for f in _DEFS.values():
        if any(s not in _DEFS for s in f.sources):
            raise ValueError(f"feature {f.name} reads unknown source(s) {f.sources}")
        if any(_DEFS[s].cross_sectional for s in f.sources):
            raise ValueError(f"feature {f.name} cannot read cross-sectional sources {f.sources}")
        if (f.expr is None) == (f.kernel is None):
            raise ValueError(f"feature {f.name} needs exactly one of an expression (time series) or a kernel")
        if f.cross_sectional and len(f.sources) != 1:
            raise ValueError(f"cross-sectional feature {f.name} reads one source, not {f.sources}")
        if f.elementwise and (not f.sources or f.lookback_bars != max(_DEFS[s].lookback_bars for s in f.sources)):
            raise ValueError(f"elementwise feature {f.name} must have sources and their lookback")


_check_registry()


def is_target_like(column: str) -> bool:
    """Columns named like targets are never features."""
    return column.startswith(TARGET_PREFIXES)


def max_lookback_bars(names: Iterable[str]) -> int:
    """The history a set of features needs, in bars before ``t``."""
    return max((FEATURES_BY_NAME[n].lookback_bars for n in names), default=0)


def resolve(names: Iterable[str] | None) -> list[str]:
    """Sorted feature names, checked against the library (``None`` = all)."""
    chosen = list(ALL_FEATURES) if names is None else sorted(set(names))
    unknown = [n for n in chosen if n not in FEATURES_BY_NAME]
    if unknown:
        raise KeyError(f"unknown feature(s) {unknown}; known: {list(ALL_FEATURES)}")
    bad = [n for n in chosen if is_target_like(n)]
    if bad:
        raise ValueError(f"target-like column(s) {bad} can never be features")
    return chosen


def _with_sources(names: Iterable[str]) -> set[str]:
    """``names`` and every feature they read, transitively."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_DEFS[name].sources)
    return seen


def _stages(names: Iterable[str]) -> list[list[FeatureDef]]:
    """The time-series features among ``names``, grouped so that each group reads only columns of earlier groups
    (by depth of their sources): each group is one ``with_columns``."""
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((level(s) for s in _DEFS[name].sources), default=-1)
        return depth[name]

    groups: dict[int, list[FeatureDef]] = {}
    for name in sorted(names):
        if not _DEFS[name].cross_sectional:
            groups.setdefault(level(name), []).append(_DEFS[name])
    return [groups[key] for key in sorted(groups)]


def _evaluate(f: FeatureDef) -> pl.Expr:
    """A time-series feature's polars column.

    A feature with a lookback runs ``over(SYMBOL_ID)``: each symbol's bars on their own, so no value depends, even
    by a rounding bit, on another symbol's bars (polars' rolling kernels carry state from row to row). One that
    reads only bar ``t`` (``lookback_bars == 0``, or ``elementwise`` over its sources) needs no window.
    """
    expr = f.expr().polars()
    if f.lookback_bars > 0 and not f.elementwise:
        expr = expr.over(SYMBOL_ID)
    return expr.alias(f.name)


_THREADED_ROWS = 100_000
"""Frames with fewer rows compute their cross-sectional features in the calling thread (threads cost more there)."""


def _cross_sectional(frame: pl.DataFrame, features: list[FeatureDef]) -> list[pl.Series]:
    """The cross-sectional features' columns for ``frame`` (sorted by symbol, ts; holding their sources)."""
    panel = Panel.of(frame["ts"], frame["symbol"])

    def one(f: FeatureDef) -> pl.Series:
        return panel.apply(f.kernel, frame[f.sources[0]], f.name)

    if len(features) == 1 or frame.height < _THREADED_ROWS:
        return [one(f) for f in features]
    # numpy releases the GIL in its sorts and array loops: the kernels share polars' cores
    with ThreadPoolExecutor(max_workers=pl.thread_pool_size()) as pool:
        return list(pool.map(one, features))


_CHUNK_ROWS = 1 << 18
"""Time-series features are evaluated on chunks of whole symbols of at most this many rows (a longer symbol is a
chunk of its own), in parallel. Columns of 2 MB stay in cache and polars' allocator reuses their memory, where the
32 MB columns of one 4M-row plan are handed back to the OS and page-faulted in again: ~15 % faster on 200 symbols
× 20,000 bars (``bench/features.py``). The values are identical: every window runs per symbol anyway."""


def _symbol_chunks(symbols: pl.Series, max_rows: int) -> list[tuple[int, int]]:
    """``(offset, length)`` row slices of a symbol-sorted column (names or :data:`SYMBOL_ID`), each holding whole
    symbols and at most ``max_rows`` rows unless one symbol alone has more."""
    chunks, start, size = [], 0, 0
    for n in symbols.rle().struct.field("len").to_list():
        if size and size + n > max_rows:
            chunks.append((start, size))
            start, size = start + size, 0
        size += n
    chunks.append((start, size))
    return chunks


def _series_plan(lf: pl.LazyFrame, needed: set[str]) -> pl.LazyFrame:
    """The plan of ``ts``, ``symbol``, ``close`` and the time-series features in ``needed`` (sources computed on the
    way) over symbol-sorted bars, stage by stage."""
    series, stages = _stage_exprs(frozenset(needed))
    for exprs, nan_to_null in stages:
        lf = lf.with_columns(exprs).with_columns(nan_to_null)
    return lf.select(*KEY_COLUMNS, "close", *series)


@functools.lru_cache(maxsize=256)
def _stage_exprs(
    needed: frozenset[str],
) -> tuple[tuple[str, ...], tuple[tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...]], ...]]:
    """The time-series features among ``needed`` and, per stage, their expressions and the NaN -> null pass on the
    materialised columns (``fill_nan`` on the expression would evaluate it 3 times). Built once per feature set."""
    series = tuple(sorted(n for n in needed if n in FEATURES_BY_NAME and not _DEFS[n].cross_sectional))
    stages = tuple(
        (tuple(_evaluate(f) for f in stage), tuple(pl.col(f.name).fill_nan(None) for f in stage))
        for stage in _stages(needed)
    )
    return series, stages


def _time_series(bars: pl.DataFrame, needed: set[str]) -> pl.DataFrame:
    """:func:`_series_plan` on symbol-sorted bars, evaluated by chunks of whole symbols (:data:`_CHUNK_ROWS`) in
    parallel."""
    plans = [
        _series_plan(bars.slice(offset, n).lazy(), needed) for offset, n in _symbol_chunks(bars[SYMBOL_ID], _CHUNK_ROWS)
    ]
    # the in-memory engine runs these wide, window-heavy plans ~20 % faster than the streaming default (polars 2.1)
    return pl.concat(pl.collect_all(plans, engine="in-memory"), rechunk=False)


def _sorted_bars(bars: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The bars sorted by (symbol, ts) with a ``vwap`` column (the typical price where they have none, column or
    cell) and :data:`SYMBOL_ID`.

    Bars already in order (the lake's and the synthetic market's are) are not copied: checking costs ~13 ms on
    4M rows, sorting ~50 ms plus fresh memory for every column.
    """
    df = bars.lazy().collect(engine="in-memory") if isinstance(bars, pl.LazyFrame) else bars
    symbol, ts = pl.col("symbol"), pl.col("ts")
    in_order = (symbol > symbol.shift(1)) | ((symbol == symbol.shift(1)) & (ts > ts.shift(1)))
    if df.height > 1 and not df.select(in_order.slice(1).all()).item():
        df = df.sort("symbol", "ts")
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3.0
    if "vwap" not in df.columns:
        df = df.with_columns(typical.alias("vwap"))
    elif df["vwap"].null_count():
        df = df.with_columns(pl.col("vwap").fill_nan(None).fill_null(typical))  # row by row: empty cells only
    return df.with_columns(symbol.rle_id().set_sorted().alias(SYMBOL_ID))


def build_features(bars: pl.DataFrame | pl.LazyFrame, names: Iterable[str] | None = None) -> pl.DataFrame:
    """Compute features for every bar: ``ts``, ``symbol``, ``close`` and the feature columns (sorted).

    Time-series features are computed in stages, each reading only the columns of earlier stages (``sources``):
    shared intermediates such as ``log_ret_1`` or ``macd`` are computed once. Cross-sectional features come after
    the time-series features they read. Warm-up rows (not enough history) hold nulls; so do NaN results (e.g. 0/0).
    Bars without a ``vwap`` column use the typical price ``(high + low + close) / 3`` as VWAP. Cross-sectional
    features need one bar per (symbol, ts): repeated pairs are a ``ValueError``.
    """
    wanted = resolve(names)
    needed = _with_sources(wanted)
    bars = _sorted_bars(bars)
    columns = [*KEY_COLUMNS, "close", *wanted]
    frame = _time_series(bars, needed)
    cross = [_DEFS[n] for n in sorted(needed) if _DEFS[n].cross_sectional]
    if cross:
        frame = frame.with_columns(_cross_sectional(frame, cross))
    # column selection without ``select``, which would copy the chunked columns into one chunk each (~0.4 s at 4M rows)
    return frame[columns]


BAR_WINDOW_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "ts")
"""The bar columns :func:`newest_feature_values` reads, ``ts`` as float epoch microseconds."""


@functools.lru_cache(maxsize=64)
def _newest_plan(
    names: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[FeatureDef, ...], dict[str, TailFn], dict[str, int]]:
    """For a feature set: the features (:func:`resolve`), the time-series features to evaluate (sources included),
    the cross-sectional ones, every time-series node (features and helper columns) by name compiled for numpy, and
    the tail each is computed at (:func:`ml.series_expr.tail_demand`); built once."""
    wanted = tuple(resolve(names))
    needed = _with_sources(wanted)
    series = tuple(sorted(n for n in needed if not _DEFS[n].cross_sectional))
    cross = tuple(_DEFS[n] for n in sorted(needed) if _DEFS[n].cross_sectional)
    nodes = {n: _DEFS[n].expr() for n in series}
    demand = tail_demand(nodes, [n for n in series if n in FEATURES_BY_NAME])
    return wanted, series, cross, {n: compile_tail(node) for n, node in nodes.items()}, demand


def newest_feature_values(columns: dict[str, np.ndarray], n_bars: np.ndarray, names: Iterable[str]) -> np.ndarray:
    """The features of each symbol's newest bar, ``(n_symbols, len(names))`` in ``names`` order (NaN: null), from a
    window of every symbol's last bars: the values :func:`build_features` gives at those bars, from the same
    definitions (:mod:`ml.series_expr` evaluates them with numpy at the newest bar instead of polars over every bar).

    Args:
        columns: :data:`BAR_WINDOW_COLUMNS`, each ``(width, n_symbols)``: a symbol's bars down its column, oldest
            first, its newest bar in the last row, NaN above its first bar in the window. ``vwap`` NaN where a bar
            has none: it reads the typical price there, as in training. The window must hold
            ``max_lookback_bars(names) + 1`` rows for a symbol's features to be complete.
        n_bars: bars of each symbol in the window.
        names: features (resolved and checked by :func:`resolve`).

    The symbols are those of one timestamp (the cross-sectional features rank across them all). A symbol with
    ``n_bars <= lookback_bars`` of a feature has it null, as in training's warm-up. Equal to :func:`build_features`
    to rounding (polars' running sums carry their last bits; ``tests/test_features.py`` checks 1e-9).
    """
    wanted, series, cross, nodes, demand = _newest_plan(tuple(names))
    # row-major, whatever the caller's layout: numpy reduces a window the same way (the same bits) only then
    columns = {k: np.ascontiguousarray(v) for k, v in columns.items()}
    width = columns["close"].shape[0]
    n_bars = np.minimum(np.asarray(n_bars), width)
    read = min(demand.get("vwap", 0), width)  # the newest bars any feature reads of vwap
    if read:
        vwap = columns["vwap"][width - read :]
        no_vwap = np.isnan(vwap) & (np.arange(width - read, width)[:, None] >= (width - n_bars)[None, :])
        if no_vwap.any():  # a bar without vwap reads its typical price, as in training
            tail = slice(width - read, width)
            typical = (columns["high"][tail] + columns["low"][tail] + columns["close"][tail]) / 3.0
            filled = np.full_like(columns["vwap"], np.nan)
            filled[tail] = np.where(no_vwap, typical, vwap)
            columns = {**columns, "vwap": filled}
    window = TailWindow(columns, n_bars, nodes.__getitem__, demand)
    out = np.empty((len(n_bars), len(wanted)))
    at = {name: j for j, name in enumerate(wanted)}
    values: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for name in series:
            if name in FEATURES_BY_NAME:
                v = np.asarray(window.column(name, 1), dtype=np.float64)[0]
                values[name] = np.where(n_bars > _DEFS[name].lookback_bars, v, np.nan)
        n_rows = np.array([len(n_bars)])
        for f in cross:
            values[f.name] = f.kernel(values[f.sources[0]][None, :], n_rows)[0]
    for name, j in at.items():
        out[:, j] = values[name]
    return out


def right_aligned(bars: pl.DataFrame, width: int) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The last ``width`` bars of each symbol of (any-order) bars as :func:`newest_feature_values` reads them
    (``(width, n_symbols)``, newest last): ``(symbols, columns, n_bars, newest ts of each symbol)``, symbols
    sorted."""
    bars = _sorted_bars(bars)
    symbols = bars["symbol"].unique(maintain_order=True).to_list()
    counts = bars[SYMBOL_ID].rle().struct.field("len").to_numpy().astype(np.int64)
    ends = np.cumsum(counts)
    from_end = np.repeat(ends, counts) - 1 - np.arange(bars.height)  # 0 at each symbol's last bar
    keep = from_end < width
    cols = np.repeat(np.arange(len(symbols)), counts)[keep]
    rows = width - 1 - from_end[keep]
    ts_us = bars["ts"].dt.epoch("us").to_numpy().astype(np.float64)
    columns = {}
    for name in BAR_WINDOW_COLUMNS:
        values = ts_us if name == "ts" else bars[name].cast(pl.Float64).to_numpy()
        grid = np.full((width, len(symbols)), np.nan)
        grid[rows, cols] = values[keep]
        columns[name] = grid
    return symbols, columns, np.minimum(counts, width), ts_us[ends - 1]


def latest_features(window: pl.DataFrame, names: Iterable[str] | None = None) -> pl.DataFrame:
    """The feature rows of the newest bar timestamp of ``window`` (bars of any order), one per symbol with a bar
    there (sorted by symbol): the rows :func:`build_features` gives at that timestamp, computed by
    :func:`newest_feature_values` from each symbol's last ``max_lookback_bars + 1`` bars."""
    wanted = resolve(names)
    if window.is_empty():
        raise ValueError("latest_features needs at least one bar")
    symbols, columns, n_bars, newest = right_aligned(window, max_lookback_bars(wanted) + 1)
    at = newest == newest.max()
    picked = {k: v[:, at] for k, v in columns.items()}
    values = newest_feature_values(picked, n_bars[at], wanted)
    ts = window["ts"].max()
    keys = pl.DataFrame(
        {
            "ts": pl.Series("ts", [ts] * int(at.sum()), dtype=window.schema["ts"]),
            "symbol": [s for s, keep in zip(symbols, at, strict=True) if keep],
            "close": picked["close"][-1],
        }
    )
    features = pl.DataFrame({n: values[:, j] for j, n in enumerate(wanted)}, nan_to_null=True)
    return pl.concat([keys, features], how="horizontal")
