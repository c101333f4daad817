"""Forward-return targets. A target at ``t`` only reads bars after ``t``."""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

_NAME_RE = re.compile(r"^fwd_ret_(\d+)([mhd])(?:_delay(\d+)([mhd]))?$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}


def format_minutes(minutes: float) -> str:
    """``5`` → ``5m``, ``60`` → ``1h``, ``1440`` → ``1d``."""
    minutes = int(minutes)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


class TargetSpec(BaseModel):
    """A forward return over ``horizon_bars`` bars, starting ``delay_bars`` bars after ``t``.

    Attributes:
        horizon_bars: bars the return spans (>= 1).
        delay_bars: bars between ``t`` and the start of the return (0 = starts at ``t``'s close).
    """

    model_config = ConfigDict(frozen=True)

    horizon_bars: int = Field(ge=1)
    delay_bars: int = Field(0, ge=0)

    def name(self, interval_minutes: float) -> str:
        """``fwd_ret_<horizon>`` with ``_delay<gap>`` when delayed, in time units of the bars."""
        base = f"fwd_ret_{format_minutes(self.horizon_bars * interval_minutes)}"
        return base + (f"_delay{format_minutes(self.delay_bars * interval_minutes)}" if self.delay_bars else "")

    @property
    def reach_bars(self) -> int:
        """How far past ``t`` the target reads: the purge a CV split needs."""
        return self.delay_bars + self.horizon_bars

    @classmethod
    def from_name(cls, name: str, interval_minutes: float) -> TargetSpec:
        """Inverse of :meth:`name` for a given bar interval."""
        m = _NAME_RE.match(name)
        if not m:
            raise ValueError(f"target {name!r} is not fwd_ret_<n><m|h|d>[_delay<n><m|h|d>]")
        h_min = int(m.group(1)) * _UNIT_MINUTES[m.group(2)]
        d_min = int(m.group(3)) * _UNIT_MINUTES[m.group(4)] if m.group(3) else 0
        if h_min % interval_minutes or d_min % interval_minutes:
            raise ValueError(f"target {name!r} is not a whole number of {interval_minutes}-minute bars")
        return cls(horizon_bars=int(h_min // interval_minutes), delay_bars=int(d_min // interval_minutes))


def add_targets(
    frame: pl.DataFrame, bars: pl.DataFrame, specs: Iterable[TargetSpec], interval_minutes: float
) -> pl.DataFrame:
    """Join forward-return columns onto ``frame`` (keyed by ts, symbol); the last bars get nulls."""
    close = pl.col("close")
    exprs = [
        (close.shift(-s.reach_bars) / close.shift(-s.delay_bars) - 1.0).over("symbol").alias(s.name(interval_minutes))
        for s in specs
    ]
    tgt = bars.lazy().sort("symbol", "ts").select("ts", "symbol", *exprs).collect()
    return frame.join(tgt, on=["ts", "symbol"], how="left")
