"""Targets: forward returns and their cross-sectional variants. A target at ``t`` only reads bars after ``t``
(``vol_scaled`` also divides by the volatility known at ``t``).

Names (``interval``-dependent units: ``5m``, ``1h``, ``1d``):

* ``fwd_ret_<h>`` — ``close[t+h] / close[t] - 1`` (a fraction);
* ``fwd_ret_<h>_delay<g>`` — the return from ``t+g`` to ``t+g+h``;
* ``fwd_ret_<h>[_delay<g>]_from_open`` — the return from the open of bar ``t+1+g`` to the open of bar
  ``t+1+g+h``: what a position decided at ``t``'s close and filled at the next bar's open earns;
* ``cs_zscore_<fwd>`` — the forward return z-scored across symbols at each timestamp;
* ``cs_percentile_<fwd>`` — its cross-sectional percentile rank in [0, 1];
* ``vol_scaled_<fwd>`` — the forward return divided by ``rvol_20 * sqrt(h)`` (trailing 20-bar stdev of 1-bar
  log returns, known at ``t``).

**Tradable or research-only.** A broker cannot fill at the close the features were computed from: a target that
starts there (close-to-close at delay 0) measures a return no order can earn, so it is *research-only* (its
model_meta says so and no built-in live policy picks it). Targets from the next bar's open, or starting one bar
or more later (``delay >= 1 bar``), are *tradable*.

``add_targets`` also adds, per target, ``<target>__end_ts`` (the timestamp of the last bar the target reads: what
the purge compares, :mod:`ml.cv`) and, for the cross-sectional variants, the forward return itself
(``<fwd>`` column, the unit the cost metrics are measured in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

TargetKind = Literal["fwd_ret", "cs_zscore", "cs_percentile", "vol_scaled"]
TargetEntry = Literal["close", "next_open"]
_NAME_RE = re.compile(
    r"^(?:(cs_zscore|cs_percentile|vol_scaled)_)?fwd_ret_(\d+)([mhd])(?:_delay(\d+)([mhd]))?(_from_open)?$"
)
END_SUFFIX = "__end_ts"
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
VOL_WINDOW_BARS = 20


def format_minutes(minutes: float) -> str:
    """``5`` → ``5m``, ``60`` → ``1h``, ``1440`` → ``1d``."""
    minutes = int(minutes)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


class TargetSpec(BaseModel):
    """A forward return over ``horizon_bars`` bars, starting ``delay_bars`` bars after ``t``, of some kind.

    Attributes:
        kind: ``fwd_ret`` (raw fraction) or a cross-sectional variant.
        horizon_bars: bars the return spans (>= 1).
        delay_bars: bars between ``t`` and the start of the return (0 = starts at ``t``'s close, or at the next
            bar's open with ``entry: next_open``).
        entry: ``close`` (from the close of bar ``t + delay``) or ``next_open`` (from the open of bar
            ``t + 1 + delay`` to the open ``horizon_bars`` bars later).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TargetKind = "fwd_ret"
    horizon_bars: int = Field(ge=1)
    delay_bars: int = Field(0, ge=0)
    entry: TargetEntry = "close"

    def base_name(self, interval_minutes: float) -> str:
        base = f"fwd_ret_{format_minutes(self.horizon_bars * interval_minutes)}"
        base += f"_delay{format_minutes(self.delay_bars * interval_minutes)}" if self.delay_bars else ""
        return base + ("_from_open" if self.entry == "next_open" else "")

    def name(self, interval_minutes: float) -> str:
        """The target's column name for bars of ``interval_minutes``."""
        base = self.base_name(interval_minutes)
        return base if self.kind == "fwd_ret" else f"{self.kind}_{base}"

    @property
    def reach_bars(self) -> int:
        """How many bars past ``t`` the target reads (its last bar is ``t + reach_bars``)."""
        return self.delay_bars + self.horizon_bars + (1 if self.entry == "next_open" else 0)

    @property
    def tradable(self) -> bool:
        """A broker can earn this return: it starts at the next bar's open or at least one bar after ``t``."""
        return self.entry == "next_open" or self.delay_bars >= 1

    @classmethod
    def from_name(cls, name: str, interval_minutes: float) -> TargetSpec:
        """Inverse of :meth:`name` for a given bar interval."""
        m = _NAME_RE.match(name)
        if not m:
            raise ValueError(
                f"target {name!r} is not [cs_zscore_|cs_percentile_|vol_scaled_]fwd_ret_<n><m|h|d>[_delay…]"
            )
        h_min = int(m.group(2)) * _UNIT_MINUTES[m.group(3)]
        d_min = int(m.group(4)) * _UNIT_MINUTES[m.group(5)] if m.group(4) else 0
        if h_min % interval_minutes or d_min % interval_minutes:
            raise ValueError(f"target {name!r} is not a whole number of {interval_minutes}-minute bars")
        return cls(
            kind=m.group(1) or "fwd_ret",
            horizon_bars=int(h_min // interval_minutes),
            delay_bars=int(d_min // interval_minutes),
            entry="next_open" if m.group(6) else "close",
        )


def target_end_column(target: str) -> str:
    """The column holding the timestamp of the last bar ``target`` reads (the purge's key)."""
    return target + END_SUFFIX


def price_path(spec: TargetSpec) -> tuple[str, int, int]:
    """``(price column, entry bar, exit bar)`` of ``spec``'s forward return at bar ``t``: it is
    ``price[t + exit] / price[t + entry] - 1``, the bars counted along the symbol's own bars; ``exit`` is the
    target's :attr:`TargetSpec.reach_bars`."""
    if spec.entry == "next_open":
        start = spec.delay_bars + 1
        return "open", start, start + spec.horizon_bars
    return "close", spec.delay_bars, spec.delay_bars + spec.horizon_bars


def forward_return(spec: TargetSpec) -> pl.Expr:
    """The raw forward return (a fraction) of ``spec`` at each bar of bars in time order per symbol
    (:func:`price_path`): ``fwd_ret`` targets are exactly this; the other kinds transform it (:func:`add_targets`)."""
    column, start, end = price_path(spec)
    price = pl.col(column)
    return (price.shift(-end) / price.shift(-start) - 1.0).over("symbol")


def realised_forward_return(spec: TargetSpec, prices: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    """The forward return of ``spec`` at bar time ``t``, realised now, per symbol: live trading's form of
    :func:`forward_return` (the same :func:`price_path`), read from each symbol's newest bars.

    Args:
        prices: the path's price column, ``(width, n_symbols)``: each symbol's own bars down its column, its newest
            bar in the last row.
        times: the bars' times in the same layout (any number type, e.g. epoch µs).
        t: the bar time the return starts from, ``exit`` bars before the newest.

    NaN where the symbol has no bar at ``t`` ``exit`` bars before its newest (no bar then, or a bar missing since:
    its return is not complete yet), as in training, where the symbol's later bars decide.
    """
    _, start, end = price_path(spec)
    at = prices.shape[0] - 1 - end
    if at < 0:
        raise ValueError(f"{prices.shape[0]} bars cannot hold a return {end} bars long")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(times[at] == t, prices[at + end] / prices[at + start] - 1.0, np.nan)


def add_targets(
    frame: pl.DataFrame, bars: pl.DataFrame, specs: Iterable[TargetSpec], interval_minutes: float
) -> pl.DataFrame:
    """Join target columns onto ``frame`` (keyed by ts, symbol); the last bars of each symbol get nulls.

    Per target, ``<target>__end_ts`` is added too (null where the target is), and for a cross-sectional variant
    its forward return ``<fwd>`` (see the module docstring).
    """
    specs = list(specs)
    raw_cols = {s.base_name(interval_minutes): forward_return(s) for s in specs}
    reaches = sorted({s.reach_bars for s in specs})
    lf = (
        bars.lazy()
        .sort("symbol", "ts")
        .select(
            "ts",
            "symbol",
            *[e.alias(f"_raw_{n}") for n, e in raw_cols.items()],
            *[pl.col("ts").shift(-r).over("symbol").alias(f"_end_{r}") for r in reaches],
            (pl.col("close") / pl.col("close").shift(1))
            .log()
            .rolling_std(VOL_WINDOW_BARS)
            .over("symbol")
            .alias("_vol"),
        )
    )
    out = []
    for s in specs:
        raw = pl.col(f"_raw_{s.base_name(interval_minutes)}")
        if s.kind == "fwd_ret":
            expr = raw
        elif s.kind == "cs_zscore":
            expr = ((raw - raw.mean().over("ts")) / raw.std().over("ts")).fill_nan(None)
        elif s.kind == "cs_percentile":
            expr = (raw.rank("average").over("ts") - 1) / (raw.count().over("ts") - 1).clip(lower_bound=1)
            expr = pl.when(raw.is_null()).then(None).otherwise(expr)
        else:
            expr = raw / (pl.col("_vol") * (s.horizon_bars**0.5))
        name = s.name(interval_minutes)
        out.append(expr.alias(name))
        out.append(pl.when(expr.is_not_null()).then(pl.col(f"_end_{s.reach_bars}")).alias(target_end_column(name)))
    returns = {s.base_name(interval_minutes) for s in specs} - {s.name(interval_minutes) for s in specs}
    out.extend(pl.col(f"_raw_{n}").alias(n) for n in sorted(returns))
    tgt = lf.select("ts", "symbol", *out).collect()
    return frame.join(tgt, on=["ts", "symbol"], how="left")
