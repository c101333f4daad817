"""Arbitration: one expected return per symbol, in bps over the holding horizon, net of costs.

* A return forecast (a ``fwd_ret`` target: a fraction) is ``1e4 * forecast`` bps; a cross-sectional model's
  forecasts are demeaned across symbols first (its information is relative; the market's move is not traded).
* A score (z, rank: ``cs_zscore`` / ``cs_percentile`` / ``vol_scaled`` targets, and the cross-sectional z-scores
  of every ranking model, ``live.inference``) is not a return: it becomes ``alpha = IC * sigma_bps * z`` with
  ``IC`` the blend's IC estimate and ``sigma_bps`` the symbol's volatility over the horizon.
* Targets whose return windows lie in the holding horizon add up; views of one target (pooled and per symbol)
  are averaged.
* ``cost_bps = half_spread_bps + impact_coef * sigma_bps * sqrt(participation)`` with participation the share of
  the bar's volume the order would trade; the net alpha is ``sign(alpha) * max(|alpha| - cost, 0)``: |alpha| is
  compared with the cost, so shorts and exits work.
"""

from __future__ import annotations

import numpy as np

from live.config import CostConfig

BPS = 1e4


def alpha_from_returns(forecast_frac: np.ndarray, cross_sectional: bool) -> np.ndarray:
    """A return forecast (fraction) in bps; demeaned across the symbols that have one when cross-sectional."""
    out = np.asarray(forecast_frac, dtype=float) * BPS
    if cross_sectional and np.isfinite(out).sum() >= 2:
        out = out - np.nanmean(out)
    return out


def alpha_from_score(ic: float, sigma_bps: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``IC * sigma * z`` in bps: the expected return of a unit-variance score with that IC."""
    return ic * np.asarray(sigma_bps, dtype=float) * np.asarray(z, dtype=float)


def cost_bps(cfg: CostConfig, sigma_bps: np.ndarray, participation_frac: np.ndarray) -> np.ndarray:
    """The one-way cost of trading ``participation_frac`` of a bar's volume, bps."""
    return cfg.half_spread_bps + cfg.impact_coef * sigma_bps * np.sqrt(np.clip(participation_frac, 0.0, None))


def net_alpha(alpha_bps: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """``sign(alpha) * max(|alpha| - cost, 0)``."""
    return np.sign(alpha_bps) * np.clip(np.abs(alpha_bps) - cost, 0.0, None)
