"""A seeded synthetic market with planted, documented signal.

Per symbol ``i`` and bar ``t`` three i.i.d. N(0,1) signals are drawn, each visible in one field of bar ``t``:

* ``s_V`` (volume): ``log volume = base_i + intraday shape + 0.5 * (a_V * s_V + sqrt(1 - a_V**2) * u)``;
* ``s_G`` (opening gap): ``log(open_t / close_{t-1}) = gap_scale * (a_G * s_G + sqrt(1 - a_G**2) * u)``;
* ``s_W`` (wick imbalance): ``log(upper wick / lower wick) = 0.5 * (n1 - n2) + 2 * k_W * s_W``.

Each signal moves one later bar's return (``r(t+k)`` is the log return of bar ``t+k``)::

    r(i,t+1) = m(t+1) + sigma(t+1) * ( rho_V * s_V(i,t)
                                      + (rho_Gc + g_i * rho_Gs * [i in GAP_SYMBOLS]) * s_G(i,t-1)
                                      + w_i * rho_W * [i in WICK_SYMBOLS] * s_W(i,t-2)
                                      + remaining unit-variance noise )

``m`` is a market factor common to all symbols and ``sigma`` a volatility common to all symbols that switches
between regimes; both cancel in every per-timestamp correlation. ``g_i, w_i = ±1`` are per-symbol signs,
balanced so that the symbol-specific effects average to zero across the universe (a pooled model cannot use
them, a per-symbol model can).

So, for the targets (see :func:`documented_ics`):

* ``fwd_ret_<1 bar>`` (next bar) — common signal ``s_V``: cross-sectional IC ``rho_V * a_V`` for every symbol;
* ``fwd_ret_<1 bar>_delay<1 bar>`` (the bar after next) — weak common ``rho_Gc * a_G`` plus a strong
  per-symbol effect in GAP_SYMBOLS;
* ``fwd_ret_<1 bar>_delay<2 bars>`` — only a per-symbol effect in WICK_SYMBOLS;
* anything starting 3 or more bars after ``t`` — pure noise.

The opening gap of bar ``t`` is ``GAP_VOL_FRAC * sigma(t)`` times unit noise (plus its signal): a return measured
from the next bar's open (``entry: next_open``) covers the same bars' returns plus two such gaps, so its ICs are
lower by ``sqrt(h / (h + 2 * GAP_VOL_FRAC**2))``.

**A market that drifts** (``drift_at_bar``): from that bar on (0-based, history and live bars counted together)
the volume signal's loading becomes ``rho_V * drift_volume_factor`` (0: the signal is gone; -1: it flips sign), so
the next-bar target's cross-sectional IC changes from ``rho_V * a_V`` to ``rho_V * drift_volume_factor * a_V``
(:func:`volume_signal_ic`, signed). Models trained before the bar then decay or lose money after it: what the
retraining loop has to notice. Without ``drift_at_bar`` the market is the same, bit for bit.

``leak_ic > 0`` plants a **look-ahead leak** for tests of the leak guard: the bar's VWAP then carries the next
bar's idiosyncratic return, ``log(close / vwap) = 0.25 * sigma * (leak_ic * e(t+1) + sqrt(1 - leak_ic**2) * u)``,
so the ``vwap_dev`` feature correlates ``leak_ic`` with ``r(t+1)`` across symbols at every timestamp. No real data
could hold such a field; a pipeline that routes it is broken.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

SESSION_OPEN_UTC = (14, 30)
SESSION_MINUTES = 390
GAP_VOL_FRAC = 0.25
"""Standard deviation of a bar's opening gap (log open / previous close), as a fraction of the bar's volatility."""


class SyntheticMarketConfig(BaseModel):
    """Parameters of the synthetic market (all correlations are per bar, returns are fractions).

    Attributes:
        n_symbols: symbols in the universe (24).
        n_bars: bars per symbol (3000).
        interval_minutes: bar length; intraday values must divide the 390-minute session; 1440 = daily.
        start: first trading day (UTC date, ISO).
        seed: RNG seed; the same config always yields the same bars.
        rho_volume: loading of the next-bar return on the volume signal (0.06).
        volume_loading: correlation of the log-volume shock with its signal (0.8).
        rho_gap_common: loading of the return two bars ahead on the gap signal, all symbols (0.07).
        rho_gap_symbol: extra ± loading in GAP_SYMBOLS (0.25).
        gap_loading: correlation of the opening gap with its signal (0.8).
        rho_wick_symbol: ± loading of the return three bars ahead on the wick signal in WICK_SYMBOLS (0.25).
        wick_signal_scale: ``k_W`` above (0.5; the log wick ratio then correlates 0.82 with its signal).
        frac_gap_symbols, frac_wick_symbols: shares of the universe with a per-symbol effect (0.25 each, disjoint).
        base_vol_per_bar_frac: idiosyncratic volatility of a 5-minute bar (0.002), scaled by sqrt(interval/5).
        regime_vol_multipliers: volatility multipliers of the regimes the market switches between.
        regime_mean_bars: mean regime length in bars.
        leak_ic: correlation of the bar's VWAP deviation with the next bar's return (0 = no leak; tests only).
        drift_at_bar: the bar from which the volume signal's loading is multiplied by ``drift_volume_factor``
            (None: never; module docstring).
        drift_volume_factor: that multiplier (0.0: the signal decays to nothing; -1.0 flips it).
        live_bars: bars generated after the ``n_bars`` of history, withheld from the lake: the market feed
            (``foxlake market play``) lands them one timestamp at a time for paper trading (0). With intraday bars
            and ``live_bars > 0`` the history must end at a session's close (``n_bars`` a whole number of
            sessions), so a day's partition is never split between the history and the feed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_symbols: int = Field(24, ge=2)
    n_bars: int = Field(3000, ge=50)
    interval_minutes: int = Field(5, ge=1, le=1440)
    start: str = "2024-01-02"
    seed: int = 7
    rho_volume: float = Field(0.06, ge=0, lt=1)
    volume_loading: float = Field(0.8, ge=0, le=1)
    rho_gap_common: float = Field(0.07, ge=0, lt=1)
    rho_gap_symbol: float = Field(0.25, ge=0, lt=1)
    gap_loading: float = Field(0.8, ge=0, le=1)
    rho_wick_symbol: float = Field(0.25, ge=0, lt=1)
    wick_signal_scale: float = Field(0.5, ge=0)
    frac_gap_symbols: float = Field(0.25, ge=0, le=0.5)
    frac_wick_symbols: float = Field(0.25, ge=0, le=0.5)
    base_vol_per_bar_frac: float = Field(0.002, gt=0)
    regime_vol_multipliers: tuple[float, ...] = (0.7, 1.0, 1.6)
    regime_mean_bars: int = Field(500, ge=1)
    leak_ic: float = Field(0.0, ge=0, le=1)
    live_bars: int = Field(0, ge=0)
    drift_at_bar: int | None = Field(None, ge=1)
    drift_volume_factor: float = Field(0.0, ge=-1, le=1)

    @model_validator(mode="after")
    def _whole_sessions(self) -> SyntheticMarketConfig:
        per_session = SESSION_MINUTES // self.interval_minutes if self.interval_minutes < 1440 else 1
        if self.live_bars and self.n_bars % per_session:
            raise ValueError(
                f"n_bars={self.n_bars} is not a whole number of {per_session}-bar sessions: with live_bars the "
                f"history must end at a session's close (e.g. n_bars={self.n_bars // per_session * per_session})"
            )
        return self

    @model_validator(mode="after")
    def _drift_inside(self) -> SyntheticMarketConfig:
        if self.drift_at_bar is not None and self.drift_at_bar >= self.n_bars + self.live_bars:
            raise ValueError(
                f"drift_at_bar={self.drift_at_bar} is past the market's last bar ({self.n_bars + self.live_bars - 1})"
            )
        return self

    @model_validator(mode="after")
    def _variance_budget(self) -> SyntheticMarketConfig:
        worst = self.rho_volume**2 + (self.rho_gap_common + self.rho_gap_symbol) ** 2 + self.rho_wick_symbol**2
        if worst >= 1:
            raise ValueError(f"signal loadings explain {worst:.2f} >= 1 of a return's variance")
        return self

    @property
    def wick_loading(self) -> float:
        """Correlation of the log wick ratio with its signal."""
        k = self.wick_signal_scale
        return 2 * k / math.sqrt(0.5 + 4 * k * k)


def volume_signal_ic(cfg: SyntheticMarketConfig, bar: int) -> float:
    """The signed cross-sectional IC of the volume signal of bar ``bar - 1`` with the return of bar ``bar`` (the
    next-bar target from the close): ``rho_V * a_V``, times ``drift_volume_factor`` from ``drift_at_bar`` on."""
    drifted = cfg.drift_at_bar is not None and bar >= cfg.drift_at_bar
    return cfg.rho_volume * (cfg.drift_volume_factor if drifted else 1.0) * cfg.volume_loading


def symbol_names(n: int) -> list[str]:
    """Deterministic tickers ``SYM000``, ``SYM001``, …"""
    return [f"SYM{i:03d}" for i in range(n)]


def planted_symbols(cfg: SyntheticMarketConfig) -> dict[str, dict[str, int]]:
    """``{"gap": {symbol: sign}, "wick": {symbol: sign}}``: who carries a per-symbol effect, and its sign."""
    rng = np.random.default_rng([cfg.seed, 1])
    order = rng.permutation(cfg.n_symbols)
    # even counts, so that the alternating ± signs cancel exactly across the universe
    n_gap = 2 * int(round(cfg.frac_gap_symbols * cfg.n_symbols / 2))
    n_wick = 2 * int(round(cfg.frac_wick_symbols * cfg.n_symbols / 2))
    names = symbol_names(cfg.n_symbols)
    gap = [names[i] for i in sorted(order[:n_gap])]
    wick = [names[i] for i in sorted(order[n_gap : n_gap + n_wick])]
    return {
        "gap": {s: (1 if k % 2 == 0 else -1) for k, s in enumerate(gap)},
        "wick": {s: (1 if k % 2 == 0 else -1) for k, s in enumerate(wick)},
    }


def documented_ics(
    cfg: SyntheticMarketConfig, horizon_bars: int = 1, delay_bars: int = 0, entry: str = "close"
) -> dict[str, float]:
    """The planted truth for a forward return over ``horizon_bars`` bars starting ``delay_bars`` after ``t``
    (from the close, or with ``entry="next_open"`` from the next bar's open: ``ml.targets``).

    Returns:
        ``cs_ic``: per-timestamp IC of the best pooled predictor that sees the bars;
        ``gap_symbol_ic`` / ``wick_symbol_ic``: time-series IC of the best per-symbol predictor in a symbol
        carrying the gap (sign +1) / wick effect; ``gap_symbol_ic_negative``: in a gap symbol of sign -1 (the
        common and the per-symbol loadings then partly cancel); ``plain_symbol_ic``: in a symbol with neither.
    The per-bar return variance inside the window is 1 per bar (a forward return over ``h`` bars divides by
    ``sqrt(h)``). Volatility regimes and the market factor cancel in the per-timestamp (cross-sectional) ICs;
    within one symbol over time the market factor adds variance, so measured per-symbol ICs come out about
    11 % lower than these (``sqrt(1 / (1 + var(m) / E[sigma**2]))``).
    """
    bars = range(delay_bars + 1, delay_bars + horizon_bars + 1)  # r(t+k) for k in bars
    # open to open covers the same bars' returns plus the gap at each end (variance GAP_VOL_FRAC**2 each)
    norm = math.sqrt(horizon_bars + (2 * GAP_VOL_FRAC**2 if entry == "next_open" else 0.0))
    cs = sym_gap = sym_wick = plain = 0.0
    if 1 in bars:
        v = cfg.rho_volume * cfg.volume_loading
        cs += v**2
        sym_gap += v**2
        sym_wick += v**2
        plain += v**2
    sym_gap_neg = sym_gap
    if 2 in bars:
        c = cfg.rho_gap_common * cfg.gap_loading
        cs += c**2
        plain += c**2
        sym_wick += c**2
        sym_gap += ((cfg.rho_gap_common + cfg.rho_gap_symbol) * cfg.gap_loading) ** 2  # the g_i = +1 symbols
        sym_gap_neg += ((cfg.rho_gap_common - cfg.rho_gap_symbol) * cfg.gap_loading) ** 2  # the g_i = -1 symbols
    if 3 in bars:
        sym_wick += (cfg.rho_wick_symbol * cfg.wick_loading) ** 2
    return {
        "cs_ic": math.sqrt(cs) / norm,
        "gap_symbol_ic": math.sqrt(sym_gap) / norm,
        "gap_symbol_ic_negative": math.sqrt(sym_gap_neg) / norm,
        "wick_symbol_ic": math.sqrt(sym_wick) / norm,
        "plain_symbol_ic": math.sqrt(plain) / norm,
    }


def symbol_truth(
    cfg: SyntheticMarketConfig, symbol: str, horizon_bars: int = 1, delay_bars: int = 0, entry: str = "close"
) -> float:
    """The documented time-series IC of the best predictor of ``symbol``'s own target (:func:`documented_ics`, by
    which effect and sign the symbol carries)."""
    truth = documented_ics(cfg, horizon_bars, delay_bars, entry)
    planted = planted_symbols(cfg)
    if symbol in planted["gap"]:
        return truth["gap_symbol_ic"] if planted["gap"][symbol] > 0 else truth["gap_symbol_ic_negative"]
    if symbol in planted["wick"]:
        return truth["wick_symbol_ic"]
    return truth["plain_symbol_ic"]


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


def _regime_sigma(cfg: SyntheticMarketConfig, rng: np.random.Generator, scale: float, t_len: int) -> np.ndarray:
    regimes = np.empty(t_len, dtype=np.int64)
    k, state = 0, 1 % len(cfg.regime_vol_multipliers)
    while k < t_len:
        length = int(rng.geometric(1.0 / cfg.regime_mean_bars))
        regimes[k : k + length] = state
        k += length
        state = int(rng.integers(len(cfg.regime_vol_multipliers)))
    return cfg.base_vol_per_bar_frac * scale * np.asarray(cfg.regime_vol_multipliers)[regimes]


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` shifted ``k`` bars later along time (zeros before the start)."""
    out = np.zeros_like(x)
    out[:, k:] = x[:, :-k]
    return out


def make_market(cfg: SyntheticMarketConfig) -> pl.DataFrame:
    """Generate OHLCV bars (plus vwap and trades) for the configured universe, sorted by (symbol, ts): the
    ``n_bars`` of history followed by the ``live_bars`` (see :func:`split_history`)."""
    rng = np.random.default_rng(cfg.seed)
    n, t_len = cfg.n_symbols, cfg.n_bars + cfg.live_bars
    ts = trading_timestamps(cfg.start, t_len, cfg.interval_minutes)
    scale = math.sqrt(cfg.interval_minutes / 5.0)
    sigma = _regime_sigma(cfg, rng, scale, t_len)
    names = symbol_names(n)
    planted = planted_symbols(cfg)
    g = np.array([planted["gap"].get(s, 0) for s in names], dtype=float)[:, None]
    w = np.array([planted["wick"].get(s, 0) for s in names], dtype=float)[:, None]

    s_v, s_g, s_w = (rng.standard_normal((n, t_len)) for _ in range(3))
    gap_coef = cfg.rho_gap_common + g * cfg.rho_gap_symbol
    wick_coef = w * cfg.rho_wick_symbol
    rho_v = np.full(t_len, cfg.rho_volume)  # the volume signal's loading on the return of each bar
    if cfg.drift_at_bar is not None:
        rho_v[cfg.drift_at_bar :] *= cfg.drift_volume_factor
    loading = rho_v * _lag(s_v, 1) + gap_coef * _lag(s_g, 2) + wick_coef * _lag(s_w, 3)
    explained = rho_v**2 + gap_coef**2 + wick_coef**2
    noise = rng.standard_normal((n, t_len)) * np.sqrt(1.0 - explained)
    market = rng.standard_normal(t_len) * 0.6 * cfg.base_vol_per_bar_frac * scale
    ret = market[None, :] + sigma[None, :] * (loading + noise)
    idiosyncratic = loading + noise  # unit variance: what a cross-sectional correlation sees of r(t)

    log_close = np.log(rng.uniform(20, 200, size=(n, 1))) + np.cumsum(ret, axis=1)
    close = np.exp(log_close)
    prev_close = np.concatenate([close[:, :1] * np.exp(-ret[:, :1]), close[:, :-1]], axis=1)
    a_g = cfg.gap_loading
    gap = GAP_VOL_FRAC * sigma * (a_g * s_g + math.sqrt(1 - a_g**2) * rng.standard_normal((n, t_len)))
    open_ = prev_close * np.exp(gap)
    k = cfg.wick_signal_scale
    upper = 0.5 * sigma * np.exp(0.5 * rng.standard_normal((n, t_len)) + k * s_w)
    lower = 0.5 * sigma * np.exp(0.5 * rng.standard_normal((n, t_len)) - k * s_w)
    high = np.maximum(open_, close) * np.exp(upper)
    low = np.minimum(open_, close) * np.exp(-lower)

    minutes = np.array([(x.hour * 60 + x.minute) for x in ts], dtype=float)
    intraday = (
        0.05 * np.cos(2 * np.pi * (minutes - 14.5 * 60) / SESSION_MINUTES) if cfg.interval_minutes < 1440 else 0.0
    )
    a_v = cfg.volume_loading
    log_vol = (
        np.log(rng.uniform(2e4, 5e5, size=(n, 1)) * scale**2)
        + intraday
        + 0.5 * (a_v * s_v + math.sqrt(1 - a_v**2) * rng.standard_normal((n, t_len)))
    )
    volume = np.round(np.exp(log_vol))
    vwap = np.clip((high + low + 2 * close) / 4, low, high)
    if cfg.leak_ic > 0:  # the VWAP of bar t carries r(t+1): a look-ahead leak (module docstring)
        nxt = np.concatenate([idiosyncratic[:, 1:], np.zeros((n, 1))], axis=1)
        u = rng.standard_normal((n, t_len))
        vwap = close * np.exp(-0.25 * sigma * (cfg.leak_ic * nxt + math.sqrt(1 - cfg.leak_ic**2) * u))
    trades = np.maximum(1, np.round(volume / rng.uniform(80, 150, size=(n, 1)))).astype(np.int64)

    naive = np.array([x.replace(tzinfo=None) for x in ts], dtype="datetime64[us]")
    return pl.DataFrame(
        {
            "ts": pl.Series(np.tile(naive, n)).dt.replace_time_zone("UTC"),
            "symbol": np.repeat(names, t_len),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "vwap": vwap.ravel(),
            "trades": trades.ravel(),
        }
    )


def split_history(bars: pl.DataFrame, cfg: SyntheticMarketConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the history the lake starts with, the live bars the feed lands later) of :func:`make_market`'s bars."""
    stamps = bars["ts"].unique().sort()
    if stamps.len() != cfg.n_bars + cfg.live_bars:
        raise ValueError(f"{stamps.len()} bar timestamps, expected n_bars + live_bars = {cfg.n_bars + cfg.live_bars}")
    if not cfg.live_bars:
        return bars, bars.clear()
    cut = stamps[cfg.n_bars]
    return bars.filter(pl.col("ts") < cut), bars.filter(pl.col("ts") >= cut)
