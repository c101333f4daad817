"""Skill metrics, per timestamp first and then averaged (never one pooled correlation).

* ``IC_t`` — Pearson correlation across symbols at one timestamp; ``RankIC_t`` — Spearman.
* ``mean_IC``, ``mean_RankIC`` — averages over timestamps; ``IC_IR = mean(IC_t) / std(IC_t)``, not annualised.
* ``t_stat = IC_IR * sqrt(T)`` over timestamps sampled every ``horizon_bars`` (non-overlapping targets).
* ``hit_rate`` — share of timestamps with ``IC_t > 0``.
* A SYMBOL_SPECIFIC model has one symbol and no cross-section: its IC is the time-series correlation
  over the validation window (``ts_IC``), with the t-stat over non-overlapping samples.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

MIN_SYMBOLS_PER_TIMESTAMP = 3


def per_timestamp_ic(df: pl.DataFrame, score: str = "score", target: str = "y") -> pl.DataFrame:
    """``ts, n, IC, RankIC`` for each timestamp with at least 3 symbols and non-constant inputs."""
    return (
        df.drop_nulls([score, target])
        .group_by("ts")
        .agg(
            pl.len().alias("n"),
            pl.corr(score, target, method="pearson").alias("IC"),
            pl.corr(score, target, method="spearman").alias("RankIC"),
        )
        .filter(pl.col("n") >= MIN_SYMBOLS_PER_TIMESTAMP)
        .with_columns(pl.col("IC").fill_nan(None), pl.col("RankIC").fill_nan(None))
        .drop_nulls(["IC", "RankIC"])
        .sort("ts")
    )


def summarize_ic(ic_t: np.ndarray, rank_ic_t: np.ndarray, horizon_bars: int = 1) -> dict[str, float]:
    """mean_IC, mean_RankIC, IC_IR, RankIC_IR, t_stat (non-overlapping), hit_rate, n_timestamps."""
    ic_t = np.asarray(ic_t, dtype=float)
    rank_ic_t = np.asarray(rank_ic_t, dtype=float)
    n = len(ic_t)
    if n < 2:
        return {
            "mean_IC": 0.0,
            "mean_RankIC": 0.0,
            "IC_IR": 0.0,
            "RankIC_IR": 0.0,
            "t_stat": 0.0,
            "hit_rate": 0.0,
            "n_timestamps": float(n),
        }
    sd = float(ic_t.std(ddof=1))
    rsd = float(rank_ic_t.std(ddof=1))
    ic_ir = float(ic_t.mean()) / sd if sd > 0 else 0.0
    sampled = ic_t[:: max(1, horizon_bars)]
    ssd = float(sampled.std(ddof=1)) if len(sampled) > 1 else 0.0
    t_stat = float(sampled.mean()) / ssd * math.sqrt(len(sampled)) if ssd > 0 else 0.0
    return {
        "mean_IC": float(ic_t.mean()),
        "mean_RankIC": float(rank_ic_t.mean()),
        "IC_IR": ic_ir,
        "RankIC_IR": float(rank_ic_t.mean()) / rsd if rsd > 0 else 0.0,
        "t_stat": t_stat,
        "hit_rate": float((ic_t > 0).mean()),
        "n_timestamps": float(n),
    }


def cross_sectional_metrics(
    df: pl.DataFrame, score: str = "score", target: str = "y", horizon_bars: int = 1
) -> dict[str, float]:
    """Per-timestamp IC metrics of a pooled (CROSS_SECTIONAL) score."""
    per_t = per_timestamp_ic(df, score, target)
    return summarize_ic(per_t["IC"].to_numpy(), per_t["RankIC"].to_numpy(), horizon_bars)


def time_series_metrics(score: np.ndarray, y: np.ndarray, horizon_bars: int = 1) -> dict[str, float]:
    """Time-series IC of one symbol's score over its validation window (SYMBOL_SPECIFIC models).

    ``ts_IC`` is Pearson, ``ts_RankIC`` Spearman; ``t_stat`` uses the non-overlapping samples, via
    the Fisher approximation ``IC * sqrt(n - 2) / sqrt(1 - IC**2)``.
    """
    score = np.asarray(score, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(score) & np.isfinite(y)
    score, y = score[ok], y[ok]
    if len(score) < 10 or score.std() == 0 or y.std() == 0:
        return {"ts_IC": 0.0, "ts_RankIC": 0.0, "t_stat": 0.0, "n_obs": float(len(score))}
    ic = float(np.corrcoef(score, y)[0, 1])
    rank_ic = float(np.corrcoef(_rank(score), _rank(y))[0, 1])
    step = max(1, horizon_bars)
    ss, yy = score[::step], y[::step]
    ic_s = float(np.corrcoef(ss, yy)[0, 1]) if len(ss) > 3 and ss.std() > 0 and yy.std() > 0 else 0.0
    t = ic_s * math.sqrt(max(len(ss) - 2, 1)) / math.sqrt(max(1e-12, 1 - ic_s**2))
    return {"ts_IC": ic, "ts_RankIC": rank_ic, "t_stat": t, "n_obs": float(len(score))}


def _rank(x: np.ndarray) -> np.ndarray:
    return pl.Series(x).rank("average").to_numpy()


def skill01(score: float) -> float:
    """``clamp(0.5 * (score + 1), 0, 1)`` where score is centred so that 0 = no skill (IC here)."""
    return min(1.0, max(0.0, 0.5 * (score + 1.0)))
