"""Sizing: ``z = clip(alpha / sigma, ±z_clip)``, target weight ``z * weight_per_z_frac``, gross normalised to
``max_gross_frac``; an order only when the weight moves by more than the no-trade band; whole shares."""

from __future__ import annotations

import numpy as np

from live.config import SizingConfig


def target_weights(alpha_bps: np.ndarray, sigma_bps: np.ndarray, cfg: SizingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(z, target weight) per symbol; NaN alpha or sigma gives weight 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.clip(np.where(sigma_bps > 0, alpha_bps / sigma_bps, 0.0), -cfg.z_clip, cfg.z_clip)
    z = np.nan_to_num(z)
    w = z * cfg.weight_per_z_frac
    gross = np.abs(w).sum()
    if gross > cfg.max_gross_frac:
        w = w * (cfg.max_gross_frac / gross)
    return z, w


def order_shares(
    target_w: np.ndarray, current_w: np.ndarray, current_qty: np.ndarray, price: np.ndarray, equity: float, band: float
) -> np.ndarray:
    """Signed whole shares to trade per symbol: 0 inside the no-trade band (a full exit always trades)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        wanted = np.where(price > 0, np.round(target_w * equity / price), 0.0)
    qty = wanted - current_qty
    inside = np.abs(target_w - current_w) < band
    exit_all = (target_w == 0) & (current_qty != 0)
    return np.where(inside & ~exit_all, 0.0, qty)
