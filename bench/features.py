"""Benchmark ``ml.features.build_features`` (polars) against a plain pandas groupby/rolling implementation.

Run from the repository root::

    .venv/bin/python bench/features.py                          # 200 symbols x 20,000 bars = 4M rows
    .venv/bin/python bench/features.py --symbols 20 --bars 2000   # a quick smoke run

The pandas implementation below is written independently from ``ml/features.py`` (same definitions, idiomatic
pandas: ``groupby("symbol")`` + ``shift`` / ``diff`` / ``rolling``, ``groupby("ts").rank`` / ``transform``; no numba,
no polars). Both sides start from the same bars in their own frame type (the polars -> pandas conversion is not
timed) and both sort by (symbol, ts) only when the bars are not in that order already. The numbers are checked to
agree feature by feature.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.features import ALL_FEATURES, FEATURES_BY_NAME, build_features  # noqa: E402
from ml.synthetic import SyntheticMarketConfig, make_market  # noqa: E402

LN2 = math.log(2.0)
DAY_SECONDS = 86_400.0
# (span, truncation window) of the MACD EMAs: 12/26/9, each truncated at 3 spans.
MACD_FAST, MACD_SLOW, MACD_SIGNAL = (12, 36), (26, 78), (9, 27)
CS_RANK_SOURCES = ("ret_1", "ret_5", "ret_20", "rvol_20", "rsi_14", "volume_z_20", "vwap_dev")
CS_DEMEAN_SOURCES = ("ret_1", "ret_5")
# Agreement is checked on |pandas - polars| / max(1, |pandas|). Most features agree to ~1e-12; the loosest is
# bb_pctb_20, where pandas' online rolling variance loses ~1e-9 of relative precision on price-level inputs
# (close ~ 100, std ~ 0.1; polars stays within ~1e-13 of a two-pass reference) and %b amplifies it to ~1e-8.
TOL = 1e-6


# ----------------------------------------------------------------------------------------------------------------------
# pandas reference implementation
# ----------------------------------------------------------------------------------------------------------------------


def pandas_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Every feature of ``ml.features`` with pandas: ``ts``, ``symbol``, ``close`` and the features (sorted)."""
    sym, ts = bars["symbol"].to_numpy(), bars["ts"].values  # (tz-aware ts: .values is datetime64 in UTC)
    in_order = ((sym[1:] > sym[:-1]) | ((sym[1:] == sym[:-1]) & (ts[1:] > ts[:-1]))).all()
    df = (bars if in_order else bars.sort_values(["symbol", "ts"], kind="stable")).reset_index(drop=True)
    typical = (df["high"] + df["low"] + df["close"]) / 3.0
    df["vwap"] = df["vwap"].fillna(typical) if "vwap" in df.columns else typical
    sym = df["symbol"]
    o, h, lo, c, v, vw = (df[k] for k in ("open", "high", "low", "close", "volume", "vwap"))

    def by_symbol(s: pd.Series):
        return s.groupby(sym, sort=False)

    def roll(s: pd.Series, window: int, how: str) -> pd.Series:
        """``groupby(symbol).rolling(window).<how>()`` back on the frame's index."""
        return getattr(by_symbol(s).rolling(window), how)().droplevel(0)

    def ema(s: pd.Series, span: int, window: int) -> pd.Series:
        """Truncated, normalised exponential weights over ``window`` bars (scipy's exponential window)."""
        tau = -1.0 / math.log(1.0 - 2.0 / (span + 1.0))
        return by_symbol(s).transform(
            lambda x: x.rolling(window, win_type="exponential").mean(center=window - 1, tau=tau, sym=False)
        )

    def zscore(s: pd.Series, window: int) -> pd.Series:
        return (s - roll(s, window, "mean")) / roll(s, window, "std")

    def rsi(window: int) -> pd.Series:
        diff = by_symbol(c).diff()
        gain = roll(diff.clip(lower=0), window, "mean")
        loss = roll((-diff).clip(lower=0), window, "mean")
        return 100.0 - 100.0 / (1.0 + gain / loss)

    f: dict[str, pd.Series] = {}
    prev = by_symbol(c).shift(1)
    for k in (1, 5, 10, 20, 60):
        f[f"ret_{k}"] = c / by_symbol(c).shift(k) - 1.0
    log_ret = np.log(c / prev)
    f["log_ret_1"] = log_ret
    f["mom_gap_20_5"] = f["ret_20"] - f["ret_5"]
    for w in (5, 20, 60):
        f[f"rvol_{w}"] = roll(log_ret, w, "std")
    f["skew_20"] = roll(log_ret, 20, "skew")
    log_hl = np.log(h / lo)
    f["parkinson_vol_20"] = np.sqrt(roll(log_hl**2, 20, "mean") / (4.0 * LN2))
    gk_bar = 0.5 * log_hl**2 - (2.0 * LN2 - 1.0) * np.log(c / o) ** 2
    f["gk_vol_20"] = np.sqrt(roll(gk_bar, 20, "mean").clip(lower=0.0))
    true_range = np.maximum(h, prev) - np.minimum(lo, prev)  # NaN on a symbol's first bar
    f["atr_14"] = roll(true_range, 14, "mean") / c
    f["range_frac"] = (h - lo) / c
    f["open_gap"] = np.log(o / prev)
    pad = 0.01 * (h - lo)
    upper_wick = h - np.maximum(o, c) + pad
    lower_wick = np.minimum(o, c) - lo + pad
    f["wick_log_ratio"] = np.log(upper_wick / lower_wick)
    f["close_location"] = ((c - lo) / (h - lo)).fillna(0.5)
    f["rsi_6"] = rsi(6)
    f["rsi_14"] = rsi(14)
    macd = (ema(c, *MACD_FAST) - ema(c, *MACD_SLOW)) / c
    f["macd"] = macd
    f["macd_signal"] = ema(macd, *MACD_SIGNAL)
    f["macd_hist"] = macd - f["macd_signal"]
    mean20, std20 = roll(c, 20, "mean"), roll(c, 20, "std")
    f["bb_pctb_20"] = (c - mean20 + 2.0 * std20) / (4.0 * std20)
    for w in (20, 60):
        f[f"dist_high_{w}"] = c / roll(h, w, "max") - 1.0
        f[f"dist_low_{w}"] = c / roll(lo, w, "min") - 1.0
    log_vol = np.log1p(v)
    f["volume_z_20"] = zscore(log_vol, 20)
    f["volume_z_50"] = zscore(log_vol, 50)
    f["dollar_volume_z_20"] = zscore(np.log1p(c * v), 20)
    f["vwap_dev"] = c / vw - 1.0
    f["vwap_dev_20"] = c / (roll(vw * v, 20, "sum") / roll(v, 20, "sum")) - 1.0
    ts_utc = df["ts"].dt.tz_convert("UTC") if df["ts"].dt.tz is not None else df["ts"]
    angle = (ts_utc - ts_utc.dt.normalize()).dt.total_seconds() * (2.0 * math.pi / DAY_SECONDS)
    f["tod_sin"] = np.sin(angle)
    f["tod_cos"] = np.cos(angle)

    by_ts = df["ts"]
    for s in CS_RANK_SOURCES:
        x = f[s]
        rank = x.groupby(by_ts).rank(method="average")
        count = x.groupby(by_ts).transform("count")  # values present (nulls not counted)
        f[f"cs_rank_{s}"] = (rank - 1.0) / (count - 1).clip(lower=1)
    for s in CS_DEMEAN_SOURCES:
        f[f"cs_demean_{s}"] = f[s] - f[s].groupby(by_ts).transform("mean")

    # assign adds one block per column; pd.DataFrame(f)[sorted(f)] would copy all 4M x 44 values twice (~6 s)
    return df[["ts", "symbol", "close"]].assign(**{name: f[name] for name in sorted(f)})


# ----------------------------------------------------------------------------------------------------------------------
# harness
# ----------------------------------------------------------------------------------------------------------------------


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """The fastest of ``repeats`` runs: wall seconds, CPU seconds of that run (all threads), its result."""
    best, result = (math.inf, math.inf), None
    for _ in range(max(1, repeats)):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], result


def compare(pandas_out: pd.DataFrame, polars_out: pl.DataFrame) -> list[tuple[str, float, float, int]]:
    """Per feature: max abs diff, max relative diff (over ``max(1, |x|)``) and count of null-pattern mismatches."""
    assert list(pandas_out["symbol"]) == polars_out["symbol"].to_list(), "row order differs"
    rows = []
    for name in ALL_FEATURES:
        a = pandas_out[name].to_numpy(dtype=float)
        b = polars_out[name].to_numpy().astype(float)  # nulls -> NaN
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        mismatched = int((nan_a != nan_b).sum())
        both = ~nan_a & ~nan_b
        same_inf = both & np.isinf(a) & (a == b)
        ok = both & ~same_inf
        diff = np.abs(a[ok] - b[ok])
        abs_diff = float(diff.max()) if diff.size else 0.0
        rel_diff = float((diff / np.maximum(1.0, np.abs(a[ok]))).max()) if diff.size else 0.0
        rows.append((name, abs_diff, rel_diff, mismatched))
    return rows


def per_feature_times(bars: pl.DataFrame) -> None:
    """polars seconds of each feature built alone (with the sources it reads): where the time goes."""
    rows = []
    for name in ALL_FEATURES:
        wall, cpu, _ = best_time(lambda name=name: build_features(bars, [name]), 2)
        rows.append((wall, cpu, name))
    print(f"\n{'feature (built alone)':28s} {'wall s':>8s} {'cpu s':>8s}")
    for wall, cpu, name in sorted(rows, reverse=True):
        print(f"{name:28s} {wall:8.3f} {cpu:8.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--interval-minutes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pandas-repeats", type=int, default=2, help="pandas runs (best is reported)")
    ap.add_argument("--polars-repeats", type=int, default=3, help="polars runs (best is reported)")
    ap.add_argument("--no-vwap", action="store_true", help="drop the vwap column (typical-price fallback)")
    ap.add_argument(
        "--drop-bars",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="drop this fraction of bars at random (ragged panel)",
    )
    ap.add_argument("--show-all", action="store_true", help="print every feature's diff, not only the worst")
    ap.add_argument("--per-feature", action="store_true", help="also time each polars feature built alone")
    args = ap.parse_args(argv)

    cfg = SyntheticMarketConfig(
        n_symbols=args.symbols, n_bars=args.bars, interval_minutes=args.interval_minutes, seed=args.seed
    )
    start = time.perf_counter()
    bars = make_market(cfg)
    if args.no_vwap:
        bars = bars.drop("vwap")
    if args.drop_bars:
        bars = bars.filter(pl.Series(np.random.default_rng(args.seed).random(bars.height) >= args.drop_bars))
    bars_pd = bars.to_pandas()
    made_s = time.perf_counter() - start
    print(f"market: {args.symbols} symbols x {args.bars} bars = {bars.height:,} rows (made in {made_s:.1f} s)")
    print(
        f"python {platform.python_version()}, polars {pl.__version__} ({pl.thread_pool_size()} threads), "
        f"pandas {pd.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    pandas_s, pandas_cpu, pandas_out = best_time(lambda: pandas_features(bars_pd), args.pandas_repeats)
    print(f"pandas: {pandas_s:.2f} s wall, {pandas_cpu:.2f} s CPU (best of {max(1, args.pandas_repeats)})")
    polars_s, polars_cpu, polars_out = best_time(lambda: build_features(bars), args.polars_repeats)
    print(f"polars: {polars_s:.2f} s wall, {polars_cpu:.2f} s CPU (best of {max(1, args.polars_repeats)})")

    covered = sorted(c for c in pandas_out.columns if c not in ("ts", "symbol", "close"))
    if covered != list(ALL_FEATURES):
        print(f"pandas implementation does not cover the library: {sorted(set(ALL_FEATURES) ^ set(covered))}")
        return 2

    rows = compare(pandas_out, polars_out)
    worst = max(rows, key=lambda r: r[2])
    bad = [r for r in rows if r[3] or r[2] > TOL]
    if args.show_all:
        print(f"\n{'feature':28s} {'max |diff|':>12s} {'max rel':>12s} {'null mismatch':>14s}")
        for name, a, r, m in rows:
            print(f"{name:28s} {a:12.3e} {r:12.3e} {m:14d}")
    if args.per_feature:
        per_feature_times(bars)

    n_cs = sum(FEATURES_BY_NAME[n].cross_sectional for n in ALL_FEATURES)
    print()
    print(
        "| features | rows | pandas s | polars s | speed-up (pandas/polars) | pandas CPU s | polars CPU s "
        "| worst diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {len(ALL_FEATURES)} ({len(ALL_FEATURES) - n_cs} ts + {n_cs} cs) | {bars.height:,} | {pandas_s:.2f} "
        f"| {polars_s:.2f} | **{pandas_s / polars_s:.1f}x** | {pandas_cpu:.2f} | {polars_cpu:.2f} "
        f"| {worst[1]:.1e} abs, {worst[2]:.1e} rel ({worst[0]}) |"
    )
    if bad:
        print(f"\nMISMATCH (|diff| / max(1, |x|) > {TOL:g}, or null pattern differs):")
        for name, a, r, m in bad:
            print(f"  {name}: max |diff| {a:.3e}, rel {r:.3e}, null mismatches {m}")
        return 1
    print(f"\nall {len(rows)} features agree (|diff| / max(1, |x|) <= {TOL:g}; identical null patterns)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
