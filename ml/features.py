"""The one feature library: polars expressions over each symbol's bars, shared by training and live.

Every feature declares ``lookback_bars``: how many bars before ``t`` it reads (0 = bar ``t`` only).
No feature reads a bar after ``t`` (no negative shifts, no centred windows). Every window is finite —
exponential averages (MACD) are truncated, normalised exponential weightings over a fixed window, never
``ewm_mean`` — so features computed on the last ``lookback + 1`` bars of a symbol equal features computed
on its whole history, and the first ``lookback`` bars of each symbol (warm-up) hold nulls.

A feature may read other features' columns (its ``sources``, computed first, NaN already turned to null):
MACD signal/histogram read ``macd``, the volatility/skew family reads ``log_ret_1``, cross-sectional features
read the time-series feature they rank; the volume z-scores read private helper columns (``__log_volume``, not
features). A feature's ``lookback_bars`` includes its sources' lookbacks.

``vwap`` is optional in the bar schema (:mod:`ml.bars`): when the column is absent, the VWAP features
(``vwap_dev``, ``vwap_dev_20``, ``cs_rank_vwap_dev``) use the typical price ``(high + low + close) / 3``
as the bar's VWAP.

Time-of-day features (``tod_sin``, ``tod_cos``) place the bar's UTC close time on the 24-hour circle;
they are informative for intraday bars only (constant for daily bars).

Cross-sectional features are evaluated per timestamp across symbols: ``cs_rank_<f>`` is ``f``'s rank in
``[0, 1]`` among the symbols with a bar at that timestamp (average ties; nulls stay null), ``cs_demean_<f>`` is
``f`` minus its cross-sectional mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl

TARGET_PREFIXES = ("fwd_ret_", "y_", "cs_percentile_", "cs_zscore_", "vol_scaled_")
KEY_COLUMNS = ("ts", "symbol")


@dataclass(frozen=True)
class FeatureDef:
    """One feature.

    Attributes:
        name: column name.
        lookback_bars: bars before ``t`` the feature reads.
        expr: builds the expression. A time-series expression means "over one symbol's bars sorted by ts"
            (``expr().over("symbol")``); see :func:`build_features` for how it is evaluated.
        cross_sectional: evaluated per timestamp across symbols (the expression carries its ``over("ts")``).
        sources: other features whose columns ``expr`` reads; they are computed first.
    """

    name: str
    lookback_bars: int
    expr: Callable[[], pl.Expr]
    cross_sectional: bool = False
    sources: tuple[str, ...] = ()


def _c(name: str) -> pl.Expr:
    return pl.col(name)


def _ret(k: int) -> pl.Expr:
    return _c("close") / _c("close").shift(k) - 1.0


def _log_ret() -> pl.Expr:
    return (_c("close") / _c("close").shift(1)).log()


def _zscore(expr: pl.Expr, window: int) -> pl.Expr:
    mean = expr.rolling_mean(window)
    std = expr.rolling_std(window)
    return (expr - mean) / std


def _rsi(window: int) -> pl.Expr:
    diff = _c("close").diff()
    gain = diff.clip(lower_bound=0).rolling_mean(window)
    loss = (-diff).clip(lower_bound=0).rolling_mean(window)
    return 100.0 - 100.0 / (1.0 + gain / loss)


_LN2 = 0.6931471805599453


def _parkinson(window: int) -> pl.Expr:
    return ((_c("high") / _c("low")).log().pow(2).rolling_mean(window) / (4.0 * _LN2)).sqrt()


def _garman_klass(window: int) -> pl.Expr:
    """sqrt of the mean of ``0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2`` (per-bar, >= 0 since |ln C/O| <= ln H/L)."""
    hl = (_c("high") / _c("low")).log()
    co = (_c("close") / _c("open")).log()
    per_bar = 0.5 * hl.pow(2) - (2.0 * _LN2 - 1.0) * co.pow(2)
    return per_bar.rolling_mean(window).clip(lower_bound=0.0).sqrt()


def _atr(window: int) -> pl.Expr:
    """Mean true range over ``window`` bars, as a fraction of close; the true range needs the previous close."""
    prev = _c("close").shift(1)
    true_range = pl.max_horizontal(_c("high"), prev) - pl.min_horizontal(_c("low"), prev)
    true_range = pl.when(prev.is_not_null()).then(true_range)
    return true_range.rolling_mean(window) / _c("close")


def _ema_weights(span: int, window: int) -> list[float]:
    """Weights ``(1 - alpha)^lag`` with ``alpha = 2 / (span + 1)``, oldest bar first, truncated at ``window`` bars."""
    decay = 1.0 - 2.0 / (span + 1.0)
    return [decay ** (window - 1 - i) for i in range(window)]


def _ema(expr: pl.Expr, span: int, window: int) -> pl.Expr:
    """A truncated EMA: exponential weights over the last ``window`` bars, normalised (reads ``window - 1`` bars).

    Null when any bar of the window is null, like the other rolling means (polars' weighted rolling mean does not
    take nulls, so they are zero-filled and the windows that held one are masked).
    """
    complete = expr.is_not_null().cast(pl.UInt32).rolling_sum(window) == window
    return pl.when(complete).then(expr.fill_null(0.0).rolling_mean(window, weights=_ema_weights(span, window)))


# MACD (12, 26, 9) with each EMA truncated at 3 spans (dropped weight < 0.3 %).
MACD_FAST = (12, 36)
MACD_SLOW = (26, 78)
MACD_SIGNAL = (9, 27)
_MACD_LOOKBACK = max(MACD_FAST[1], MACD_SLOW[1]) - 1
_MACD_SIGNAL_LOOKBACK = _MACD_LOOKBACK + MACD_SIGNAL[1] - 1


def _macd() -> pl.Expr:
    """(EMA12 - EMA26) of close, divided by close: scale-free."""
    return (_ema(_c("close"), *MACD_FAST) - _ema(_c("close"), *MACD_SLOW)) / _c("close")


def _bollinger_pctb(window: int, width: float = 2.0) -> pl.Expr:
    """Where close sits in the band ``mean ± width·std`` (sample std): 0 = lower band, 1 = upper band.

    Written ``0.5 + (close - mean) / (2·width·std)`` (= ``(close - lower) / (upper - lower)``) to roll the std once.
    """
    return 0.5 + (_c("close") - _c("close").rolling_mean(window)) / (2.0 * width * _c("close").rolling_std(window))


def _vwap_dev_rolling(window: int) -> pl.Expr:
    """close / (volume-weighted mean of the bars' VWAP over ``window`` bars) - 1."""
    rolling_vwap = (_c("vwap") * _c("volume")).rolling_sum(window) / _c("volume").rolling_sum(window)
    return _c("close") / rolling_vwap - 1.0


_DAY_US = 86_400_000_000


def _tod_angle() -> pl.Expr:
    """The bar's UTC time of day as an angle (``epoch`` is the UTC instant whatever the column's time zone)."""
    return (_c("ts").dt.epoch("us") % _DAY_US).cast(pl.Float64) * (2.0 * math.pi / _DAY_US)


def _ts(name: str, lookback: int, fn: Callable[[], pl.Expr], sources: tuple[str, ...] = ()) -> FeatureDef:
    return FeatureDef(name, lookback, fn, sources=sources)


N_AT_TS = "__n_at_ts"
"""Helper column :func:`build_features` provides to cross-sectional features: the number of bars at the timestamp."""


def _cs_rank(source: str) -> FeatureDef:
    def expr() -> pl.Expr:
        # one window for the whole expression: ~1.4x faster than ``rank().over("ts")`` nested in arithmetic
        return ((_c(source).rank("average") - 1) / (_c(N_AT_TS) - 1).clip(lower_bound=1)).over("ts")

    return FeatureDef(
        f"cs_rank_{source}", FEATURES_BY_NAME[source].lookback_bars, expr, cross_sectional=True, sources=(source,)
    )


def _cs_demean(source: str) -> FeatureDef:
    def expr() -> pl.Expr:
        return (_c(source) - _c(source).mean()).over("ts")

    return FeatureDef(
        f"cs_demean_{source}", FEATURES_BY_NAME[source].lookback_bars, expr, cross_sectional=True, sources=(source,)
    )


def _wick_log_ratio() -> pl.Expr:
    """``log(upper wick / lower wick)``, each wick padded by 1 % of the bar's range so flat wicks stay finite."""
    pad = 0.01 * (_c("high") - _c("low"))
    upper = _c("high") - pl.max_horizontal("open", "close") + pad
    lower = pl.min_horizontal("open", "close") - _c("low") + pad
    return (upper / lower).log()


_TS_FEATURES: list[FeatureDef] = [
    # returns
    _ts("ret_1", 1, lambda: _ret(1)),
    _ts("ret_5", 5, lambda: _ret(5)),
    _ts("ret_10", 10, lambda: _ret(10)),
    _ts("ret_20", 20, lambda: _ret(20)),
    _ts("ret_60", 60, lambda: _ret(60)),
    _ts("log_ret_1", 1, _log_ret),
    _ts("mom_gap_20_5", 20, lambda: _c("ret_20") - _c("ret_5"), ("ret_20", "ret_5")),
    # volatility and shape of returns
    _ts("rvol_5", 5, lambda: _c("log_ret_1").rolling_std(5), ("log_ret_1",)),
    _ts("rvol_20", 20, lambda: _c("log_ret_1").rolling_std(20), ("log_ret_1",)),
    _ts("rvol_60", 60, lambda: _c("log_ret_1").rolling_std(60), ("log_ret_1",)),
    _ts("skew_20", 20, lambda: _c("log_ret_1").rolling_skew(20, bias=False), ("log_ret_1",)),
    _ts("parkinson_vol_20", 19, lambda: _parkinson(20)),
    _ts("gk_vol_20", 19, lambda: _garman_klass(20)),
    _ts("atr_14", 14, lambda: _atr(14)),
    # bar shape
    _ts("range_frac", 0, lambda: (_c("high") - _c("low")) / _c("close")),
    _ts("close_location", 0, lambda: ((_c("close") - _c("low")) / (_c("high") - _c("low"))).fill_nan(0.5)),
    # oscillators and trend
    _ts("rsi_6", 6, lambda: _rsi(6)),
    _ts("rsi_14", 14, lambda: _rsi(14)),
    _ts("macd", _MACD_LOOKBACK, _macd),
    _ts("macd_signal", _MACD_SIGNAL_LOOKBACK, lambda: _ema(_c("macd"), *MACD_SIGNAL), ("macd",)),
    _ts("macd_hist", _MACD_SIGNAL_LOOKBACK, lambda: _c("macd") - _c("macd_signal"), ("macd", "macd_signal")),
    _ts("bb_pctb_20", 19, lambda: _bollinger_pctb(20)),
    _ts("dist_high_20", 19, lambda: _c("close") / _c("high").rolling_max(20) - 1.0),
    _ts("dist_low_20", 19, lambda: _c("close") / _c("low").rolling_min(20) - 1.0),
    _ts("dist_high_60", 59, lambda: _c("close") / _c("high").rolling_max(60) - 1.0),
    _ts("dist_low_60", 59, lambda: _c("close") / _c("low").rolling_min(60) - 1.0),
    # volume
    _ts("volume_z_20", 19, lambda: _zscore(_c("__log_volume"), 20), ("__log_volume",)),
    _ts("volume_z_50", 49, lambda: _zscore(_c("__log_volume"), 50), ("__log_volume",)),
    _ts("dollar_volume_z_20", 19, lambda: _zscore(_c("__log_dollar_volume"), 20), ("__log_dollar_volume",)),
    # vwap (typical price when the bars have no vwap column)
    _ts("vwap_dev", 0, lambda: _c("close") / _c("vwap") - 1.0),
    _ts("vwap_dev_20", 19, lambda: _vwap_dev_rolling(20)),
    # time of day (UTC)
    _ts("tod_sin", 0, lambda: _tod_angle().sin()),
    _ts("tod_cos", 0, lambda: _tod_angle().cos()),
    # bar shape: the opening gap against the previous close, and the upper/lower wick imbalance
    _ts("open_gap", 1, lambda: (_c("open") / _c("close").shift(1)).log()),
    _ts("wick_log_ratio", 0, lambda: _wick_log_ratio()),
]
FEATURES_BY_NAME: dict[str, FeatureDef] = {f.name: f for f in _TS_FEATURES}
# Helper columns (not features: not in ALL_FEATURES, never output) that several expressions read, computed once.
_HELPERS: list[FeatureDef] = [
    _ts("__log_volume", 0, lambda: _c("volume").log()),
    _ts("__log_dollar_volume", 0, lambda: (_c("close") * _c("volume")).log1p()),
]
_CS_FEATURES: list[FeatureDef] = [
    # (no cs_rank_dollar_volume_z_20: within 20 bars price barely moves, so it duplicates cs_rank_volume_z_20)
    *(_cs_rank(s) for s in ("ret_1", "ret_5", "ret_20", "rvol_20", "rsi_14", "volume_z_20", "vwap_dev")),
    _cs_demean("ret_1"),
    _cs_demean("ret_5"),
]
FEATURES_BY_NAME.update({f.name: f for f in _CS_FEATURES})
ALL_FEATURES: tuple[str, ...] = tuple(sorted(FEATURES_BY_NAME))
_DEFS: dict[str, FeatureDef] = {**FEATURES_BY_NAME, **{f.name: f for f in _HELPERS}}


def _check_registry() -> None:
    """Every source exists; time-series features read only time-series columns (they are computed first)."""
    for f in _DEFS.values():
        if any(s not in _DEFS for s in f.sources):
            raise ValueError(f"feature {f.name} reads unknown source(s) {f.sources}")
        if not f.cross_sectional and any(_DEFS[s].cross_sectional for s in f.sources):
            raise ValueError(f"time-series feature {f.name} cannot read cross-sectional sources {f.sources}")


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
    """Features grouped so that each group reads only columns of earlier groups.

    Time-series groups come first (by depth of their sources), then the cross-sectional ones, so that the windows
    over ``ts`` run in as few ``with_columns`` as possible (one, today) and share their group-by.
    """
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            f = _DEFS[name]
            same_kind = [s for s in f.sources if _DEFS[s].cross_sectional == f.cross_sectional]
            depth[name] = 1 + max((level(s) for s in same_kind), default=-1)
        return depth[name]

    groups: dict[tuple[bool, int], list[FeatureDef]] = {}
    for name in sorted(names):
        f = _DEFS[name]
        groups.setdefault((f.cross_sectional, level(name)), []).append(f)
    return [groups[key] for key in sorted(groups)]


def _evaluate(f: FeatureDef) -> pl.Expr:
    """The feature's column.

    A time-series feature with a lookback runs ``over("symbol")``: each symbol's bars on their own, so no value
    depends, even by a rounding bit, on another symbol's bars (polars' rolling kernels carry state from row to
    row). One that reads only bar ``t`` (``lookback_bars == 0``) is elementwise and needs no window.
    Cross-sectional expressions carry their own ``over("ts")``.
    """
    expr = f.expr()
    if not f.cross_sectional and f.lookback_bars > 0:
        expr = expr.over("symbol")
    return expr.alias(f.name)


def build_features(bars: pl.DataFrame | pl.LazyFrame, names: Iterable[str] | None = None) -> pl.DataFrame:
    """Compute features for every bar: ``ts``, ``symbol``, ``close`` and the feature columns (sorted).

    Features are computed in stages, each reading only the columns of earlier stages (``sources``): shared
    intermediates such as ``log_ret_1`` or ``macd`` are computed once, and cross-sectional features come after the
    time-series features they rank. Warm-up rows (not enough history) hold nulls; so do NaN results (e.g. 0/0).
    Bars without a ``vwap`` column use the typical price ``(high + low + close) / 3`` as VWAP.
    """
    wanted = resolve(names)
    lf = bars.lazy().sort("symbol", "ts")
    if "vwap" not in lf.collect_schema().names():
        lf = lf.with_columns(((_c("high") + _c("low") + _c("close")) / 3.0).alias("vwap"))
    stages = _stages(_with_sources(wanted))
    if any(f.cross_sectional for stage in stages for f in stage):
        lf = lf.with_columns(pl.len().over("ts").alias(N_AT_TS))
    for stage in stages:
        lf = lf.with_columns([_evaluate(f) for f in stage])
        # NaN -> null on the materialised column (``fill_nan`` on the expression would evaluate it 3 times)
        lf = lf.with_columns([pl.col(f.name).fill_nan(None) for f in stage])
    # the in-memory engine runs this wide, window-heavy plan ~20 % faster than the streaming default (polars 2.1)
    return lf.select(*KEY_COLUMNS, "close", *wanted).collect(engine="in-memory")
