"""Blending: per target, one score per symbol from the families' predictions.

The families' predictions are z-scored across symbols (a cross-sectional target; a per-symbol model's prediction
is kept as is). With ``mu`` the families' IC estimates and ``C`` the correlation matrix of their z-scores, the
weights are the ridge solution

    w = clip((C + lambda * I)^-1 mu, 0, inf) / sum(...)

(zero weights if every entry clips). ``mu_f = (n0 * holdout_IC_f + n_f * realised_mean_IC_f) / (n0 + n_f)`` where
``n0 = prior_cycles`` and ``n_f`` the cycles whose IC has been realised: the holdout IC at load, the realised IC as
it accrues. ``C`` starts at the identity and is updated every cycle as an exponentially weighted mean of the
per-cycle correlation (half-life ``cov_halflife_cycles``). The blended score is ``sum_f w_f * z_f`` and its IC
estimate ``w . mu / sqrt(w' C w)``. For a target whose forecasts are returns (fractions) the blended *forecast*
``sum_f w_f * pred_f`` is kept too: arbitration turns that into bps.
"""

from __future__ import annotations

import numpy as np


def ridge_weights(mu: np.ndarray, cov: np.ndarray, ridge_lambda: float) -> np.ndarray:
    """``clip((C + lambda I)^-1 mu, 0)`` normalised to sum 1 (all zeros when nothing is positive)."""
    mu = np.asarray(mu, dtype=float)
    raw = np.linalg.solve(np.asarray(cov, dtype=float) + ridge_lambda * np.eye(len(mu)), mu)
    raw = np.clip(raw, 0.0, None)
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def prior_ic(holdout_ic: float, realised_sum: float, realised_n: int, prior_cycles: float) -> float:
    """The IC estimate a family is weighted by: its holdout IC shrunk towards its realised IC as cycles realise."""
    return (prior_cycles * holdout_ic + realised_sum) / (prior_cycles + realised_n)


def zscore(x: np.ndarray) -> np.ndarray:
    """Across the finite entries (NaN elsewhere); all zeros where they are constant."""
    out = np.full_like(x, np.nan, dtype=float)
    ok = np.isfinite(x)
    if ok.sum() >= 2:
        v = x[ok]
        sd = v.std()
        out[ok] = (v - v.mean()) / sd if sd > 0 else 0.0
    return out


def update_corr(cov: np.ndarray, Z: np.ndarray, halflife_cycles: float) -> np.ndarray:
    """One exponentially weighted step of the families' z-score correlation (rows of ``Z``: families)."""
    ok = np.isfinite(Z).all(axis=0)
    if ok.sum() < 3 or Z.shape[0] < 2:
        return cov
    zs = Z[:, ok]
    corr = np.corrcoef(zs) if zs.std(axis=1).min() > 0 else np.eye(Z.shape[0])
    decay = 0.5 ** (1.0 / halflife_cycles)
    return decay * cov + (1 - decay) * np.nan_to_num(corr)


def blend(Z: np.ndarray, weights: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, float]:
    """(blended score per symbol, its IC estimate) from the families' z-scores ``Z`` (families x symbols).

    A symbol lacking a family's score is blended over the families it has (weights renormalised)."""
    present = np.isfinite(Z)
    w = np.where(present, weights[:, None], 0.0)
    total = w.sum(axis=0)
    score = np.where(total > 0, (np.nan_to_num(Z) * w).sum(axis=0) / np.where(total > 0, total, 1.0), np.nan)
    spread = float(np.sqrt(max(weights @ cov @ weights, 1e-12)))
    return score, float(weights @ mu) / spread if weights.any() else 0.0
