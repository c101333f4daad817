"""The one feature library: polars expressions over each symbol's bars, shared by training and live.

Every feature declares ``lookback_bars``: how many bars before ``t`` it reads (0 = bar ``t`` only).
No feature reads a bar after ``t``. Rolling features are finite windows, so features computed on the
last ``max_lookback + 1`` bars equal features computed on the whole history.
"""

from __future__ import annotations

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
        expr: builds the expression; time-series features are evaluated ``over("symbol")`` on bars sorted by ts.
        cross_sectional: evaluated per timestamp across symbols, after the time-series features.
    """

    name: str
    lookback_bars: int
    expr: Callable[[], pl.Expr]
    cross_sectional: bool = False


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


def _parkinson(window: int) -> pl.Expr:
    return ((_c("high") / _c("low")).log().pow(2).rolling_mean(window) / (4.0 * 0.6931471805599453)).sqrt()


def _ts(name: str, lookback: int, fn: Callable[[], pl.Expr]) -> FeatureDef:
    return FeatureDef(name, lookback, fn)


def _cs_rank(source: str) -> FeatureDef:
    def expr() -> pl.Expr:
        return (_c(source).rank("average").over("ts") - 1) / (pl.len().over("ts") - 1).clip(lower_bound=1)

    return FeatureDef(f"cs_rank_{source}", FEATURES_BY_NAME[source].lookback_bars, expr, cross_sectional=True)


_TS_FEATURES: list[FeatureDef] = [
    _ts("ret_1", 1, lambda: _ret(1)),
    _ts("ret_5", 5, lambda: _ret(5)),
    _ts("ret_20", 20, lambda: _ret(20)),
    _ts("rvol_20", 20, lambda: _log_ret().rolling_std(20)),
    _ts("parkinson_vol_20", 19, lambda: _parkinson(20)),
    _ts("range_frac", 0, lambda: (_c("high") - _c("low")) / _c("close")),
    _ts("close_location", 0, lambda: ((_c("close") - _c("low")) / (_c("high") - _c("low"))).fill_nan(0.5)),
    _ts("volume_z_20", 19, lambda: _zscore(_c("volume").log(), 20)),
    _ts("volume_z_50", 49, lambda: _zscore(_c("volume").log(), 50)),
    _ts("rsi_14", 14, lambda: _rsi(14)),
]
FEATURES_BY_NAME: dict[str, FeatureDef] = {f.name: f for f in _TS_FEATURES}
_CS_FEATURES: list[FeatureDef] = [_cs_rank("ret_1"), _cs_rank("volume_z_20")]
FEATURES_BY_NAME.update({f.name: f for f in _CS_FEATURES})
ALL_FEATURES: tuple[str, ...] = tuple(sorted(FEATURES_BY_NAME))


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


def build_features(bars: pl.DataFrame | pl.LazyFrame, names: Iterable[str] | None = None) -> pl.DataFrame:
    """Compute features for every bar: ``ts``, ``symbol``, ``close`` and the feature columns (sorted).

    Cross-sectional features need the time-series features they rank, which are computed first.
    Warm-up rows (not enough history) hold nulls.
    """
    wanted = resolve(names)
    cs = [FEATURES_BY_NAME[n] for n in wanted if FEATURES_BY_NAME[n].cross_sectional]
    needed_ts = {n for n in wanted if not FEATURES_BY_NAME[n].cross_sectional}
    needed_ts |= {f.name.removeprefix("cs_rank_") for f in cs}
    ts_defs = [FEATURES_BY_NAME[n] for n in sorted(needed_ts)]
    lf = bars.lazy().sort("symbol", "ts")
    lf = lf.with_columns([f.expr().over("symbol").alias(f.name) for f in ts_defs])
    if cs:
        lf = lf.with_columns([f.expr().alias(f.name) for f in cs])
    out = lf.select(*KEY_COLUMNS, "close", *wanted).collect()
    return out.with_columns([pl.col(n).fill_nan(None) for n in wanted])
