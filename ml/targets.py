"""Targets: forward returns and their cross-sectional variants. A target at ``t`` only reads bars after ``t``
(``vol_scaled`` also divides by the volatility known at ``t``).

Names (``interval``-dependent units: ``5m``, ``1h``, ``1d``):

* ``fwd_ret_<h>`` — ``close[t+h] / close[t] - 1`` (a fraction);
* ``fwd_ret_<h>_delay<g>`` — the return from ``t+g`` to ``t+g+h``;
* ``cs_zscore_<fwd>`` — the forward return z-scored across symbols at each timestamp;
* ``cs_percentile_<fwd>`` — its cross-sectional percentile rank in [0, 1];
* ``vol_scaled_<fwd>`` — the forward return divided by ``rvol_20 * sqrt(h)`` (trailing 20-bar stdev of 1-bar
  log returns, known at ``t``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

TargetKind = Literal["fwd_ret", "cs_zscore", "cs_percentile", "vol_scaled"]
_NAME_RE = re.compile(r"^(?:(cs_zscore|cs_percentile|vol_scaled)_)?fwd_ret_(\d+)([mhd])(?:_delay(\d+)([mhd]))?$")
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
        delay_bars: bars between ``t`` and the start of the return (0 = starts at ``t``'s close).
    """

    model_config = ConfigDict(frozen=True)

    kind: TargetKind = "fwd_ret"
    horizon_bars: int = Field(ge=1)
    delay_bars: int = Field(0, ge=0)

    def base_name(self, interval_minutes: float) -> str:
        base = f"fwd_ret_{format_minutes(self.horizon_bars * interval_minutes)}"
        return base + (f"_delay{format_minutes(self.delay_bars * interval_minutes)}" if self.delay_bars else "")

    def name(self, interval_minutes: float) -> str:
        """The target's column name for bars of ``interval_minutes``."""
        base = self.base_name(interval_minutes)
        return base if self.kind == "fwd_ret" else f"{self.kind}_{base}"

    @property
    def reach_bars(self) -> int:
        """How far past ``t`` the target reads: the purge a CV split needs."""
        return self.delay_bars + self.horizon_bars

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
        )


def _raw(spec: TargetSpec) -> pl.Expr:
    close = pl.col("close")
    return (close.shift(-spec.reach_bars) / close.shift(-spec.delay_bars) - 1.0).over("symbol")


def add_targets(
    frame: pl.DataFrame, bars: pl.DataFrame, specs: Iterable[TargetSpec], interval_minutes: float
) -> pl.DataFrame:
    """Join target columns onto ``frame`` (keyed by ts, symbol); the last bars of each symbol get nulls."""
    specs = list(specs)
    raw_cols = {s.base_name(interval_minutes): _raw(s) for s in specs}
    lf = (
        bars.lazy()
        .sort("symbol", "ts")
        .select(
            "ts",
            "symbol",
            *[e.alias(f"_raw_{n}") for n, e in raw_cols.items()],
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
        out.append(expr.alias(s.name(interval_minutes)))
    tgt = lf.select("ts", "symbol", *out).collect()
    return frame.join(tgt, on=["ts", "symbol"], how="left")
