"""Benchmark the live cost of a raw-sequence model and of a ranking model per cycle, for 500 symbols.

Run from the repository root::

    .venv/bin/python bench/sequence.py                          # 500 symbols, 200 cycles
    .venv/bin/python bench/sequence.py --symbols 50 --cycles 20  # a quick smoke run

Per cycle (one new bar timestamp of every symbol), timed separately:

* **LSTM** (raw OHLCV windows, listwise ranking loss, 16 bars x 5 channels, 16 hidden units): the engine's path is
  the bar pushed once into the per-symbol bar window (``live.bar_window``), every symbol's window cut and
  normalised by training's function, the model's scores and their cross-sectional z-scores
  (``live.inference``). The **naive** baseline cuts the windows from the whole history seen so far with
  training's ``ml.sequences.sequence_inputs`` each cycle (a replay that re-reads the lake each bar).
* **LightGBMRanker** (lambdarank on 12 features, one query per timestamp): the engine's path is the feature rows of
  the newest bar (``live.features.FeatureBuffer``, the features' largest lookback kept), the model's scores and
  their z-scores; the model's share alone is printed too. The **naive** baseline rebuilds every bar's features
  from the whole history with training's ``ml.features.build_features``.

The goal (issue 14) is a p50 at or under 10 ms per model per cycle on 2 cores. Models are fitted on the first bars
with small settings: the bench measures inference.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live.features import FeatureBuffer  # noqa: E402
from live.inference import cross_sectional_z  # noqa: E402
from ml.families import get_family  # noqa: E402
from ml.features import build_features  # noqa: E402
from ml.sequences import SequenceSpec, sequence_inputs  # noqa: E402
from ml.synthetic import SyntheticMarketConfig, make_market  # noqa: E402
from ml.targets import TargetSpec, add_targets  # noqa: E402

TARGET = TargetSpec(kind="cs_percentile", horizon_bars=1, entry="next_open")
FEATURES = sorted(
    [
        "ret_1", "ret_5", "log_ret_1", "rvol_20", "volume_z_20", "open_gap", "range_frac", "rsi_14",
        "macd", "vwap_dev", "wick_log_ratio", "cs_rank_volume_z_20",
    ]
)  # fmt: skip
SPEC = SequenceSpec(length=16)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def _fit(bars: pl.DataFrame, train_bars: int, features: list[str]):
    stamps = bars["ts"].unique().sort()
    train = bars.filter(pl.col("ts") < stamps[train_bars])
    name = TARGET.name(5)
    panel = add_targets(
        build_features(train, features).join(train.drop("close"), on=["ts", "symbol"]), train, [TARGET], 5
    )
    groups = panel["ts"].to_physical().to_numpy()
    y = panel[name].to_numpy()
    lstm = get_family("LSTM")
    windows, complete = sequence_inputs(panel, SPEC)
    ok = complete & np.isfinite(y)
    lstm_model = lstm.fit(
        windows[ok], y[ok], [], lstm.params({"loss": "listwise_softmax", "epochs": 1, "device": "cpu"}), 1, groups[ok]
    )
    ranker = get_family("LightGBMRanker")
    X = panel.select(features).to_numpy()
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    ranker_model = ranker.fit(X[ok], y[ok], features, ranker.params({"num_boost_round": 50}), 1, groups[ok])
    return (lstm, lstm_model), (ranker, ranker_model)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--naive-cycles", type=int, default=20, help="cycles of each naive baseline (it is slow)")
    args = ap.parse_args()
    features = FEATURES
    train_bars, warm = 300, 80
    cfg = SyntheticMarketConfig(n_symbols=args.symbols, n_bars=train_bars + warm + args.cycles, seed=5)
    bars = make_market(cfg)
    t0 = time.perf_counter()
    (lstm, lstm_model), (ranker, ranker_model) = _fit(bars, train_bars, features)
    print(
        f"fitted LSTM and LightGBMRanker on {train_bars} bars x {args.symbols} symbols "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    parts = {k[0]: v for k, v in bars.partition_by("ts", as_dict=True, maintain_order=True).items()}
    stamps = sorted(parts)
    live = stamps[train_bars : train_bars + warm + args.cycles]

    buffer = FeatureBuffer(features, min_bars=SPEC.length, sequence_bars=SPEC.length)
    for ts in live[:warm]:
        buffer.push(parts[ts])
    seq_ms, rank_ms, rank_model_ms, push_ms = [], [], [], []
    for ts in live[warm:]:
        t = time.perf_counter()
        buffer.push(parts[ts])  # the bar, once, into the bar window (features and sequences read it)
        t1 = time.perf_counter()
        symbols = parts[ts].sort("symbol")["symbol"].to_list()
        X, complete = buffer.sequences.windows(symbols, SPEC)
        cross_sectional_z(lstm.predict(lstm_model, X[complete]))
        t2 = time.perf_counter()
        rows = buffer.rows()
        Xf, okf = rows.matrix(features)
        t3 = time.perf_counter()
        cross_sectional_z(ranker.predict(ranker_model, Xf[okf]))
        t4 = time.perf_counter()
        push_ms.append(t1 - t)
        seq_ms.append(t2 - t1 + (t1 - t))  # the ring buffer's push is part of the sequence path
        rank_ms.append(t4 - t2)
        rank_model_ms.append(t4 - t3)

    naive_seq, naive_rank = [], []
    history = bars.filter(pl.col("ts") < live[warm])
    for ts in live[warm : warm + args.naive_cycles]:
        history = pl.concat([history, parts[ts]])
        t = time.perf_counter()
        windows, complete = sequence_inputs(history, SPEC)
        at = (history["ts"] == ts).to_numpy()
        cross_sectional_z(lstm.predict(lstm_model, windows[at & complete]))
        t1 = time.perf_counter()
        rows = build_features(history, features).filter(pl.col("ts") == ts)
        Xf = rows.select(features).to_numpy()
        cross_sectional_z(ranker.predict(ranker_model, Xf[np.isfinite(Xf).all(axis=1)]))
        t2 = time.perf_counter()
        naive_seq.append(t1 - t)
        naive_rank.append(t2 - t1)

    cores = os.cpu_count()
    print(f"{platform.processor() or platform.machine()}, {cores} cores; {args.symbols} symbols, {args.cycles} cycles")
    print("per cycle, ms               p50      p99   naive p50   ratio (naive / engine, p50)")
    for label, ms, naive in (
        ("LSTM (raw sequence)", seq_ms, naive_seq),
        ("LightGBMRanker (ranking)", rank_ms, naive_rank),
    ):
        ratio = _pct(naive, 50) / _pct(ms, 50)
        print(f"{label:26s} {_pct(ms, 50):7.2f}  {_pct(ms, 99):7.2f}   {_pct(naive, 50):9.2f}   {ratio:6.1f}x")
    print(
        f"  of which the bar's push (feature window and ring buffer)  p50 {_pct(push_ms, 50):.2f} ms (every bar, once)"
    )
    print(f"  of which LightGBMRanker's scores and z  p50 {_pct(rank_model_ms, 50):.2f} ms (the rest: feature rows)")
    goal = max(_pct(seq_ms, 50), _pct(rank_ms, 50))
    print(f"goal p50 <= 10 ms per model: {'met' if goal <= 10 else 'NOT met'} (worst p50 {goal:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
