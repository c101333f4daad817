"""Skill and cost metrics of out-of-sample predictions, per timestamp first and then averaged.

Cross-sectional (a pooled model scoring every symbol at each timestamp):

* ``IC_t`` — Pearson correlation across symbols at one timestamp; ``RankIC_t`` — Spearman. A timestamp is
  evaluated when at least 3 symbols have a score and a target; one whose scores (or targets) are all equal has no
  defined correlation and counts as ``IC_t = 0`` (no skill shown), never dropped. ``ic_coverage`` is the share
  of evaluated timestamps whose IC is defined.
* ``mean_IC``, ``mean_RankIC`` — averages over evaluated timestamps; ``IC_IR = mean(IC_t) / std(IC_t)``, not
  annualised; ``hit_rate`` — share of evaluated timestamps with ``IC_t > 0``.
* ``t_stat = mean / std * sqrt(T)`` of ``IC_t`` at timestamps sampled every ``horizon_bars`` on the bar grid
  (the sorted timestamps of the evaluation window), so sampled targets never overlap.
* The **quantile portfolio**, rebalanced at those same sampled timestamps: long the top ``quantile_frac`` of
  symbols by score, short the bottom (equal weights, each leg 1 unit of notional; average ranks, so tied scores
  straddling a cut stay out). ``spread_bps`` = mean over rebalances of (long leg's mean return - short leg's),
  in bps per holding period of ``horizon_bars`` bars; ``turnover_frac`` = mean one-way turnover
  ``1/2 * sum|w_t - w_prev|`` per rebalance (a full replacement of both legs is 2.0); ``net_spread_bps =
  spread_bps - cost_bps * 2 * turnover_frac`` (cost per unit traded times two-way turnover);
  ``breakeven_cost_bps`` = the one-way cost at which the net spread is 0.

Time series (a SYMBOL_SPECIFIC model of one symbol: no cross-section):

* ``ts_IC`` / ``ts_RankIC`` — Pearson / Spearman correlation over the evaluation window (0 when the scores are
  constant); ``t_stat`` — the Fisher approximation ``IC * sqrt(n - 2) / sqrt(1 - IC**2)`` on observations
  sampled every ``horizon_bars`` on the bar grid.
* ``IC_IR`` — mean / std of the IC over consecutive windows of ``ts_window_bars`` grid bars (windows with at
  least ``TS_MIN_OBS_PER_WINDOW`` observations); ``None`` with fewer than ``ts_min_windows`` windows, since a
  ratio of 3 fold ICs means nothing. ``hit_rate`` — share of those windows with a positive IC.
* The long/short position ``sign(score - median score of the window)`` (a split point fitted on the window:
  a measurement, not a tradable rule), held ``horizon_bars`` bars between sampled observations;
  ``spread_bps`` = its mean return per holding period, ``turnover_frac`` = mean ``1/2 |w_t - w_prev|``,
  ``net_spread_bps`` and ``breakeven_cost_bps`` as above.

Returns (``ret``) are fractions of price; the spread uses the forward *return* of the target's window even when
the target is a z-score or a percentile of it (``ret`` column), so costs and spreads are always in bps.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from ml.cross_section import rank_pct

MIN_SYMBOLS_PER_TIMESTAMP = 3
TS_MIN_OBS = 10
"""A single symbol's window with fewer observations has no metrics (all 0)."""
TS_MIN_OBS_PER_WINDOW = 20
BPS = 1e4


class EvaluationConfig(BaseModel):
    """How out-of-sample predictions are scored (see the module docstring for every definition).

    Attributes:
        cost_bps: one-way cost of trading one unit of notional, in bps: half the spread plus fees plus impact
            (2.0, a liquid large-cap stock; set your venue's). The net spread charges it on two-way turnover.
        quantile_frac: share of the symbols in each leg of the cross-sectional quantile portfolio (0.2; each leg
            holds at least one symbol).
        ts_window_bars: length, in bars of the grid, of the windows a single symbol's IC_IR and hit rate are
            measured over (50).
        ts_min_windows: with fewer windows a single symbol's IC_IR is null (8).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cost_bps: float = Field(2.0, ge=0)
    quantile_frac: float = Field(0.2, gt=0, le=0.5)
    ts_window_bars: int = Field(50, ge=TS_MIN_OBS_PER_WINDOW)
    ts_min_windows: int = Field(8, ge=2)


DEFAULT_EVALUATION = EvaluationConfig()


# --- the timestamps x symbols layout ------------------------------------------------------------------


def _layout(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Row and column (timestamp, symbol) indices of every row of ``df``, and the matrix shape."""
    t = df["ts"].rank("dense").cast(pl.Int64).to_numpy() - 1
    s = df["symbol"].rank("dense").cast(pl.Int64).to_numpy() - 1
    n_t = int(t.max()) + 1 if len(t) else 0
    n_s = int(s.max()) + 1 if len(s) else 0
    return t, s, n_t, n_s


def _matrix(values: np.ndarray, t: np.ndarray, s: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.full(shape, np.nan)
    out[t, s] = values
    return out


def _row_corr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Pearson correlation over ``mask``; ``(corr, defined)`` with ``corr = 0`` where a side is constant."""
    n = mask.sum(axis=1)
    safe_n = np.maximum(n, 1)
    a0 = np.where(mask, a, 0.0)
    b0 = np.where(mask, b, 0.0)
    da = np.where(mask, a - (a0.sum(axis=1) / safe_n)[:, None], 0.0)
    db = np.where(mask, b - (b0.sum(axis=1) / safe_n)[:, None], 0.0)
    # constant = every masked value equal (exact: a tree's tied leaves are bit-identical)
    const_a = np.where(mask, a, -np.inf).max(axis=1) <= np.where(mask, a, np.inf).min(axis=1)
    const_b = np.where(mask, b, -np.inf).max(axis=1) <= np.where(mask, b, np.inf).min(axis=1)
    defined = (n >= 2) & ~const_a & ~const_b
    denom = np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(defined, (da * db).sum(axis=1) / np.where(defined, denom, 1.0), 0.0)
    return np.clip(corr, -1.0, 1.0), defined


def _sampled(n_rows: int, horizon_bars: int) -> np.ndarray:
    """Grid rows 0, h, 2h, …: rebalances whose h-bar targets never overlap."""
    return np.arange(0, n_rows, max(1, int(horizon_bars)))


def _t_stat(x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    sd = float(x.std(ddof=1))
    return float(x.mean()) / sd * math.sqrt(len(x)) if sd > 0 else 0.0


def _ratio(mean: float, sd: float) -> float:
    return mean / sd if sd > 0 else 0.0


def _cost_summary(gross: np.ndarray, turnover: np.ndarray, cfg: EvaluationConfig) -> dict[str, float | None]:
    """spread/turnover/net spread/breakeven from per-rebalance gross returns (fractions) and one-way turnovers."""
    spread = float(gross.mean()) * BPS if len(gross) else 0.0
    to = float(turnover.mean()) if len(turnover) else 0.0
    return {
        "spread_bps": spread,
        "turnover_frac": to,
        "net_spread_bps": spread - cfg.cost_bps * 2.0 * to,
        "breakeven_cost_bps": spread / (2.0 * to) if to > 0 else None,
        "cost_bps": cfg.cost_bps,
    }


# --- cross-sectional ------------------------------------------------------------------------------------


def _per_timestamp(S: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of the timestamps x symbols matrices: symbols with both values, IC, RankIC, IC defined."""
    mask = ~np.isnan(S) & ~np.isnan(Y)
    ic, defined = _row_corr(S, Y, mask)
    ric, _ = _row_corr(rank_pct(np.where(mask, S, np.nan)), rank_pct(np.where(mask, Y, np.nan)), mask)
    return mask.sum(axis=1).astype(np.int64), ic, ric, defined


def _finite_rows(df: pl.DataFrame, columns: list[str], required: list[str]) -> pl.DataFrame:
    df = df.select(list(dict.fromkeys(["ts", "symbol", *columns]))).drop_nulls(required)
    return df.filter(pl.all_horizontal(pl.col(c).is_finite() for c in required))


def per_timestamp_ic(df: pl.DataFrame, score: str = "score", target: str = "y") -> pl.DataFrame:
    """``ts, n, IC, RankIC, defined`` for each timestamp with at least 3 symbols holding a score and a target.

    A timestamp whose scores (or targets) are all equal has ``defined = False`` and ``IC = RankIC = 0``.
    """
    df = _finite_rows(df, [score, target], [score, target])
    if df.is_empty():
        return pl.DataFrame(
            schema={"ts": df.schema["ts"], "n": pl.Int64, "IC": pl.Float64, "RankIC": pl.Float64, "defined": pl.Boolean}
        )
    t, s, n_t, n_s = _layout(df)
    S = _matrix(df[score].to_numpy().astype(float), t, s, (n_t, n_s))
    Y = _matrix(df[target].to_numpy().astype(float), t, s, (n_t, n_s))
    n, ic, ric, defined = _per_timestamp(S, Y)
    keep = n >= MIN_SYMBOLS_PER_TIMESTAMP
    grid = df["ts"].unique().sort()
    return pl.DataFrame(
        {
            "ts": grid.filter(pl.Series(keep)),
            "n": n[keep],
            "IC": ic[keep],
            "RankIC": ric[keep],
            "defined": defined[keep],
        }
    )


def summarize_ic(
    ic_t: np.ndarray, rank_ic_t: np.ndarray, horizon_bars: int = 1, grid_rows: np.ndarray | None = None
) -> dict[str, float]:
    """mean_IC, mean_RankIC, IC_IR, RankIC_IR, t_stat, hit_rate, n_timestamps of per-timestamp ICs.

    ``grid_rows`` are the positions of the timestamps on the bar grid (default ``0..T-1``): the t-stat samples
    the timestamps whose position is a multiple of ``horizon_bars``.
    """
    ic_t = np.asarray(ic_t, dtype=float)
    rank_ic_t = np.asarray(rank_ic_t, dtype=float)
    n = len(ic_t)
    if n < 2:
        return {
            "mean_IC": float(ic_t.mean()) if n else 0.0,
            "mean_RankIC": float(rank_ic_t.mean()) if n else 0.0,
            "IC_IR": 0.0,
            "RankIC_IR": 0.0,
            "t_stat": 0.0,
            "hit_rate": float((ic_t > 0).mean()) if n else 0.0,
            "n_timestamps": float(n),
        }
    rows = np.arange(n) if grid_rows is None else np.asarray(grid_rows)
    sampled = ic_t[rows % max(1, int(horizon_bars)) == 0]
    return {
        "mean_IC": float(ic_t.mean()),
        "mean_RankIC": float(rank_ic_t.mean()),
        "IC_IR": _ratio(float(ic_t.mean()), float(ic_t.std(ddof=1))),
        "RankIC_IR": _ratio(float(rank_ic_t.mean()), float(rank_ic_t.std(ddof=1))),
        "t_stat": _t_stat(sampled),
        "hit_rate": float((ic_t > 0).mean()),
        "n_timestamps": float(n),
    }


def _quantile_weights(S: np.ndarray, R: np.ndarray, q: float) -> np.ndarray:
    """Per row: +1/k_long on the top ``q`` of symbols by score, -1/k_short on the bottom, 0 elsewhere."""
    mask = ~np.isnan(S) & ~np.isnan(R)
    n = mask.sum(axis=1)
    pct = rank_pct(np.where(mask, S, np.nan))  # (rank - 1) / (n - 1), ties averaged
    k = np.maximum(1, np.floor(n * q))
    rank = pct * np.maximum(n - 1, 1)[:, None] + 1.0
    long = mask & (rank > (n - k)[:, None])
    short = mask & (rank <= k[:, None])
    n_long, n_short = long.sum(axis=1), short.sum(axis=1)
    active = (n >= MIN_SYMBOLS_PER_TIMESTAMP) & (n_long > 0) & (n_short > 0)
    w = np.where(long, 1.0 / np.maximum(n_long, 1)[:, None], 0.0) - np.where(
        short, 1.0 / np.maximum(n_short, 1)[:, None], 0.0
    )
    return np.where(active[:, None], w, 0.0)


def cross_sectional_metrics(
    df: pl.DataFrame,
    score: str = "score",
    target: str = "y",
    horizon_bars: int = 1,
    cfg: EvaluationConfig = DEFAULT_EVALUATION,
    ret: str | None = None,
) -> dict[str, float | None]:
    """IC and quantile-portfolio metrics of a pooled (CROSS_SECTIONAL) score (module docstring).

    ``ret`` names the forward-return column the spread is measured in (default: ``target`` itself, which must then
    be a return).
    """
    ret = ret or target
    df = _finite_rows(df, [score, target, ret], [score, target])
    if df.is_empty():
        out: dict[str, float | None] = summarize_ic(np.array([]), np.array([]), horizon_bars)
        return {**out, "ic_coverage": 0.0, **_cost_summary(np.array([]), np.array([]), cfg)}
    t, s, n_t, n_s = _layout(df)
    shape = (n_t, n_s)
    S = _matrix(df[score].to_numpy().astype(float), t, s, shape)
    Y = _matrix(df[target].to_numpy().astype(float), t, s, shape)
    R = _matrix(df[ret].fill_null(np.nan).to_numpy().astype(float), t, s, shape)
    n, ic, ric, defined = _per_timestamp(S, Y)
    evaluated = n >= MIN_SYMBOLS_PER_TIMESTAMP
    rows = np.flatnonzero(evaluated)
    out = summarize_ic(ic[evaluated], ric[evaluated], horizon_bars, grid_rows=rows)
    out["ic_coverage"] = float(defined[evaluated].mean()) if rows.size else 0.0
    sampled = _sampled(n_t, horizon_bars)
    sampled = sampled[evaluated[sampled]]
    W = _quantile_weights(S[sampled], R[sampled], cfg.quantile_frac)
    gross = np.nansum(W * np.nan_to_num(R[sampled]), axis=1)
    turnover = 0.5 * np.abs(np.diff(W, axis=0)).sum(axis=1)
    return {**out, **_cost_summary(gross, turnover, cfg)}


# --- time series (one symbol) ---------------------------------------------------------------------------


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    corr, _ = _row_corr(a[None, :], b[None, :], np.ones((1, len(a)), dtype=bool))
    return float(corr[0])


def _rank(x: np.ndarray) -> np.ndarray:
    return pl.Series(x).rank("average").to_numpy().astype(float)


def time_series_metrics(
    score: np.ndarray,
    y: np.ndarray,
    horizon_bars: int = 1,
    cfg: EvaluationConfig = DEFAULT_EVALUATION,
    ret: np.ndarray | None = None,
    grid_rows: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Time-series metrics of one symbol's score over its evaluation window (SYMBOL_SPECIFIC; module docstring).

    Args:
        score, y: the model's scores and the target, in time order.
        ret: the forward return of the target's window (default ``y``).
        grid_rows: each observation's position on the bar grid (default ``0..n-1``), for non-overlapping samples
            and windows.
    """
    score = np.asarray(score, dtype=float)
    y = np.asarray(y, dtype=float)
    ret = y if ret is None else np.asarray(ret, dtype=float)
    rows = np.arange(len(score)) if grid_rows is None else np.asarray(grid_rows, dtype=np.int64)
    ok = np.isfinite(score) & np.isfinite(y)
    score, y, ret, rows = score[ok], y[ok], ret[ok], rows[ok]
    n = len(score)
    empty = {
        "ts_IC": 0.0,
        "ts_RankIC": 0.0,
        "IC_IR": None,
        "hit_rate": None,
        "t_stat": 0.0,
        "n_obs": float(n),
        "n_windows": 0.0,
        "ic_coverage": 0.0,
    }
    if n < TS_MIN_OBS:
        return {**empty, **_cost_summary(np.array([]), np.array([]), cfg)}
    ic = _corr(score, y)
    constant = score.max() <= score.min()
    step = max(1, int(horizon_bars))
    on_grid = rows % step == 0
    ss, yy = score[on_grid], y[on_grid]
    ic_s = _corr(ss, yy) if len(ss) > 3 else 0.0
    t = ic_s * math.sqrt(max(len(ss) - 2, 1)) / math.sqrt(max(1e-12, 1 - ic_s**2))
    window = (rows - rows[0]) // cfg.ts_window_bars
    window_ics = [
        _corr(score[window == w], y[window == w])
        for w in np.unique(window)
        if (window == w).sum() >= TS_MIN_OBS_PER_WINDOW
    ]
    wics = np.asarray(window_ics)
    enough = len(wics) >= cfg.ts_min_windows
    position = np.sign(score[on_grid] - np.median(score))
    gross = position * np.nan_to_num(ret[on_grid])
    turnover = 0.5 * np.abs(np.diff(position))
    return {
        "ts_IC": ic,
        "ts_RankIC": _corr(_rank(score), _rank(y)),
        "IC_IR": _ratio(float(wics.mean()), float(wics.std(ddof=1))) if enough else None,
        "hit_rate": float((wics > 0).mean()) if len(wics) else None,
        "t_stat": float(t),
        "n_obs": float(n),
        "n_windows": float(len(wics)),
        "ic_coverage": 0.0 if constant else 1.0,
        **_cost_summary(gross, turnover, cfg),
    }


def skill01(score: float) -> float:
    """``clamp(0.5 * (score + 1), 0, 1)`` where score is centred so that 0 = no skill (IC here)."""
    return min(1.0, max(0.0, 0.5 * (score + 1.0)))


def row_ic(S: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of score and target matrices (NaN = absent): ``(IC, n)`` by the per-timestamp rule above; IC is NaN
    where fewer than ``MIN_SYMBOLS_PER_TIMESTAMP`` pairs exist, 0 where a side is constant. Live trading scores
    its realised IC with this, so it is the holdout's measure."""
    S, Y = np.atleast_2d(S).astype(float), np.atleast_2d(Y).astype(float)
    mask = ~np.isnan(S) & ~np.isnan(Y)
    ic, _defined = _row_corr(S, Y, mask)  # the IC of _per_timestamp, without its RankIC
    n = mask.sum(axis=1).astype(np.int64)
    return np.where(n >= MIN_SYMBOLS_PER_TIMESTAMP, ic, np.nan), n
