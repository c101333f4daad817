"""A seeded synthetic market with planted, documented signal.

Model of one bar step, for symbol ``i`` from bar ``t`` to ``t+1``::

    r(i,t+1) = m(t+1) + sigma(t+1) * (rho * s(i,t) + sqrt(1 - rho**2) * e(i,t+1))

* ``m`` is a market factor common to all symbols (it cancels in every per-timestamp correlation);
* ``sigma`` is the idiosyncratic volatility, common across symbols, switching between regimes;
* ``s(i,t) ~ N(0,1)``, i.i.d., is the planted signal: it shows in bar ``t``'s volume,
  ``log volume = base_i + intraday shape + a*s + sqrt(1-a**2)*u`` with ``a = volume_signal_loading``;
* ``e, u ~ N(0,1)`` are noise.

So the next-bar return has a true per-timestamp IC of ``rho`` with the signal and
``rho * a`` with what a model can see (:func:`documented_ics`). A forward return measured over
``h`` bars starting right after ``t`` keeps IC ``rho * a / sqrt(h)``; one that starts ``g >= 1`` bars
later (``fwd_ret_*_delay*``) is pure noise: nothing at ``t`` predicts it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

SESSION_OPEN_UTC = (14, 30)
SESSION_MINUTES = 390


class SyntheticMarketConfig(BaseModel):
    """Parameters of the synthetic market.

    Attributes:
        n_symbols: symbols in the universe (default 24).
        n_bars: bars per symbol (default 3000).
        interval_minutes: bar length; intraday values must divide the 390-minute session, 1440 = daily.
        start: first trading day (UTC date, ISO).
        seed: RNG seed; the same config always yields the same bars.
        signal_rho: true IC of the planted signal with the next-bar return (default 0.15).
        volume_signal_loading: correlation of the log-volume shock with the signal (default 0.8).
        base_vol_per_bar_frac: idiosyncratic volatility per bar of a 5-minute bar, as a fraction
            (default 0.002); scaled by sqrt(interval/5).
        regime_vol_multipliers: volatility multipliers of the regimes the market switches between.
        regime_mean_bars: mean regime length in bars.
    """

    model_config = ConfigDict(frozen=True)

    n_symbols: int = Field(24, ge=2)
    n_bars: int = Field(3000, ge=50)
    interval_minutes: int = Field(5, ge=1, le=1440)
    start: str = "2024-01-02"
    seed: int = 7
    signal_rho: float = Field(0.15, ge=0, lt=1)
    volume_signal_loading: float = Field(0.8, ge=0, le=1)
    base_vol_per_bar_frac: float = Field(0.002, gt=0)
    regime_vol_multipliers: tuple[float, ...] = (0.7, 1.0, 1.6)
    regime_mean_bars: int = Field(500, ge=1)


def documented_ics(cfg: SyntheticMarketConfig, horizon_bars: int = 1, delay_bars: int = 0) -> dict[str, float]:
    """The planted truth for a forward-return target: IC with the signal and IC reachable from the bars."""
    if delay_bars > 0:
        return {"signal_ic": 0.0, "observable_ic": 0.0}
    signal_ic = cfg.signal_rho / math.sqrt(horizon_bars)
    return {"signal_ic": signal_ic, "observable_ic": signal_ic * cfg.volume_signal_loading}


def trading_timestamps(start: str, n_bars: int, interval_minutes: int) -> list[datetime]:
    """Bar close times (UTC) on weekdays: intraday bars within 14:30–21:00, daily bars at 21:00."""
    if interval_minutes < 1440 and SESSION_MINUTES % interval_minutes:
        raise ValueError(f"interval_minutes={interval_minutes} must divide the {SESSION_MINUTES}-minute session")
    day = datetime.fromisoformat(start).replace(tzinfo=UTC)
    out: list[datetime] = []
    while len(out) < n_bars:
        if day.weekday() < 5:
            opened = day.replace(hour=SESSION_OPEN_UTC[0], minute=SESSION_OPEN_UTC[1])
            if interval_minutes >= 1440:
                out.append(opened + timedelta(minutes=SESSION_MINUTES))
            else:
                for k in range(1, SESSION_MINUTES // interval_minutes + 1):
                    out.append(opened + timedelta(minutes=k * interval_minutes))
        day += timedelta(days=1)
    return out[:n_bars]


def symbol_names(n: int) -> list[str]:
    """Deterministic tickers ``SYM000``, ``SYM001``, …"""
    return [f"SYM{i:03d}" for i in range(n)]


def make_market(cfg: SyntheticMarketConfig) -> pl.DataFrame:
    """Generate OHLCV bars (plus vwap and trades) for the configured universe, sorted by (symbol, ts)."""
    rng = np.random.default_rng(cfg.seed)
    n, t_len = cfg.n_symbols, cfg.n_bars
    ts = trading_timestamps(cfg.start, t_len, cfg.interval_minutes)
    scale = math.sqrt(cfg.interval_minutes / 5.0)

    # volatility regimes (common to all symbols)
    regimes = np.empty(t_len, dtype=np.int64)
    k, state = 0, 1 % len(cfg.regime_vol_multipliers)
    while k < t_len:
        length = int(rng.geometric(1.0 / cfg.regime_mean_bars))
        regimes[k : k + length] = state
        k += length
        state = int(rng.integers(len(cfg.regime_vol_multipliers)))
    sigma = cfg.base_vol_per_bar_frac * scale * np.asarray(cfg.regime_vol_multipliers)[regimes]

    signal = rng.standard_normal((n, t_len))
    noise = rng.standard_normal((n, t_len))
    market = rng.standard_normal(t_len) * 0.6 * cfg.base_vol_per_bar_frac * scale
    rho = cfg.signal_rho
    ret = np.empty((n, t_len))
    ret[:, 0] = sigma[0] * noise[:, 0]
    ret[:, 1:] = market[1:] + sigma[1:] * (rho * signal[:, :-1] + math.sqrt(1 - rho**2) * noise[:, 1:])

    log_close = np.log(rng.uniform(20, 200, size=(n, 1))) + np.cumsum(ret, axis=1)
    close = np.exp(log_close)
    prev_close = np.concatenate([close[:, :1] * np.exp(-ret[:, :1]), close[:, :-1]], axis=1)
    open_ = prev_close * np.exp(rng.standard_normal((n, t_len)) * 0.1 * sigma)
    wick = np.abs(rng.standard_normal((n, t_len, 2))) * 0.5 * sigma[None, :, None]
    high = np.maximum(open_, close) * np.exp(wick[..., 0])
    low = np.minimum(open_, close) * np.exp(-wick[..., 1])

    minutes = np.array([(x.hour * 60 + x.minute) for x in ts], dtype=float)
    intraday = 0.3 * np.cos(2 * np.pi * (minutes - 14.5 * 60) / SESSION_MINUTES) if cfg.interval_minutes < 1440 else 0
    a = cfg.volume_signal_loading
    log_vol = (
        np.log(rng.uniform(2e4, 5e5, size=(n, 1)) * scale**2)
        + intraday
        + 0.5 * (a * signal + math.sqrt(1 - a**2) * rng.standard_normal((n, t_len)))
    )
    volume = np.round(np.exp(log_vol))
    vwap = np.clip((high + low + 2 * close) / 4, low, high)
    trades = np.maximum(1, np.round(volume / rng.uniform(80, 150, size=(n, 1)))).astype(np.int64)

    syms = symbol_names(n)
    return pl.DataFrame(
        {
            "ts": pl.Series(
                np.tile(np.array([x.replace(tzinfo=None) for x in ts], dtype="datetime64[us]"), n)
            ).dt.replace_time_zone("UTC"),
            "symbol": np.repeat(syms, t_len),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "vwap": vwap.ravel(),
            "trades": trades.ravel(),
        }
    )
