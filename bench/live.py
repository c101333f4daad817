"""Benchmark the live engine's cycle: 500 symbols x 6 models on all 44 features.

Run from the repository root::

    .venv/bin/python bench/live.py                         # 500 symbols, 6 families, 100 engine cycles
    .venv/bin/python bench/live.py --symbols 50 --cycles 20 # a quick smoke run

Both paths run the same ``live.engine.cycle.Engine`` (prediction through execution, the ledger's transaction, the
paper broker) on the same bars and models; only the feature path differs:

* **engine**: the per-symbol bar window (``live.bar_window``: the largest lookback plus the current bar), featurised
  each cycle by ``ml.features.newest_feature_values`` (the features' one definition, evaluated with numpy at the
  newest bar only);
* **naive**: every bar kept, and every cycle rebuilds the features of every bar seen so far with training's
  ``ml.features.build_features`` (polars) over them in (symbol, ts) order, keeping the newest bar's rows (what a
  replay that re-reads the lake each bar does).

Latency is the wall time of a ``Engine.run_cycle`` call: the bar in, the ledger's transaction committed (fsync) and
the orders handed to the broker (the ledger's ``latency_ms`` stops before the commit). The share spent building
features is timed separately. Models are fitted on the first bars (small, fast settings: the bench measures inference).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live.broker.paper import PaperBroker  # noqa: E402
from live.config import EngineConfig  # noqa: E402
from live.engine.cycle import Engine, EngineState, TradedModel, cycle_threads  # noqa: E402
from live.features import BAR_COLUMNS, FeatureBuffer, FeatureRows  # noqa: E402
from live.ledger.writer import LedgerWriter  # noqa: E402
from live.loader import LoadedModel  # noqa: E402
from ml.families import get_family  # noqa: E402
from ml.features import ALL_FEATURES, build_features  # noqa: E402
from ml.synthetic import SyntheticMarketConfig, make_market  # noqa: E402
from ml.targets import TargetSpec, add_targets  # noqa: E402

FAMILIES = ("LightGBM", "XGBoost", "CatBoost", "Ridge", "ElasticNet", "MLP")
FAST_PARAMS = {
    "LightGBM": {"num_boost_round": 50},
    "XGBoost": {"num_boost_round": 50},
    "CatBoost": {"iterations": 50},
    "MLP": {"epochs": 2},
}
TARGET = TargetSpec(horizon_bars=1, entry="next_open")


def _models(bars: pl.DataFrame, train_bars: int, names: list[str]) -> list[TradedModel]:
    stamps = bars["ts"].unique().sort()
    train = bars.filter(pl.col("ts") < stamps[train_bars])
    target = TARGET.name(5)
    panel = add_targets(build_features(train, names), train, [TARGET], 5).drop_nulls(target)
    panel = panel.sample(min(panel.height, 30_000), seed=1)
    X, y = panel.select(names).to_numpy(), panel[target].to_numpy()
    out = []
    for fam in FAMILIES:
        family = get_family(fam)
        params = {**family.default_params, **FAST_PARAMS.get(fam, {})}
        model = family.fit(X, y, names, params, seed=1)
        meta = SimpleNamespace(target=target, view="CROSS_SECTIONAL", family=fam, symbol=None, feature_list=names)
        loaded = LoadedModel(Path("."), meta, model, "ok")  # type: ignore[arg-type]
        data_end = stamps[train_bars - 1]
        out.append(TradedModel(loaded, TARGET, 0.03, data_end, data_end, f"bench/{fam}"))
    return out


class NaiveBuffer(FeatureBuffer):
    """The naive feature path: the engine's buffer (bars, sequences, the realised targets' window), but every bar is
    also kept and each cycle's feature rows come from training's ``build_features`` over all of them, the newest
    timestamp's rows kept."""

    def __init__(self, buffer: FeatureBuffer) -> None:
        super().__init__(buffer.feature_names, min_bars=buffer.history_bars)
        self.chunks: list[pl.DataFrame] = []

    def push(self, bars_at_ts: pl.DataFrame) -> tuple[list[str], np.ndarray]:
        self.chunks.append(bars_at_ts.select(c for c in BAR_COLUMNS if c in bars_at_ts.columns))
        return super().push(bars_at_ts)

    def rows(self) -> FeatureRows:
        bars = pl.concat(self.chunks, rechunk=True).sort("symbol", "ts")  # the lake's order, one chunk a column
        rows = build_features(bars, self.feature_names).filter(pl.col("ts") == bars["ts"].max())
        names = sorted(self.feature_names)
        return FeatureRows(rows["ts"][0], rows["symbol"].to_list(), names, rows.select(names).to_numpy())


def _run(
    bars, models, universe, start: int, cycles: int, keep_all: bool, root: Path
) -> tuple[list[float], list[float]]:
    cfg = EngineConfig(account="naive" if keep_all else "engine")
    ledger = LedgerWriter(root, cfg.account)
    broker = PaperBroker(root / "live" / cfg.account / "broker.sqlite", cfg.broker)
    engine = Engine(cfg, models, universe, 5.0, ledger, broker, EngineState(cash=cfg.broker.initial_cash), {}, set())
    if keep_all:  # never forget a bar: the features of the whole history every cycle
        engine.buffer = NaiveBuffer(engine.buffer)
    stamps = bars["ts"].unique().sort().to_list()
    by_ts = {k[0]: v for k, v in bars.partition_by("ts", as_dict=True).items()}
    first = 0 if keep_all else max(0, start - engine.buffer.history_bars)
    for ts in stamps[first:start]:
        engine.warm(by_ts[ts])
    rows_ms: list[float] = []
    inner = engine.buffer.rows

    def timed_rows():
        t0 = time.perf_counter()
        out = inner()
        rows_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    engine.buffer.rows = timed_rows  # type: ignore[method-assign]
    latency = []
    with cycle_threads():  # as live.runner runs the cycles
        for i, ts in enumerate(stamps[start : start + cycles], start=1):
            t0 = time.perf_counter()
            engine.run_cycle(i, ts, by_ts[ts])
            latency.append((time.perf_counter() - t0) * 1e3)
    ledger.close()
    broker.close()
    return latency, rows_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--history-bars", type=int, default=1000, help="bars before the first cycle")
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--naive-cycles", type=int, default=10)
    args = parser.parse_args()

    names = sorted(ALL_FEATURES)
    total = args.history_bars + args.cycles
    bars = make_market(SyntheticMarketConfig(n_symbols=args.symbols, n_bars=total, seed=5))
    universe = sorted(bars["symbol"].unique().to_list())
    t0 = time.perf_counter()
    models = _models(bars, args.history_bars // 2, names)
    print(f"fitted {len(models)} models on {len(names)} features in {time.perf_counter() - t0:.1f}s")
    with tempfile.TemporaryDirectory(prefix="foxlake-bench-live-") as tmp:
        lat, rows = _run(bars, models, universe, args.history_bars, args.cycles, False, Path(tmp))
        naive, naive_rows = _run(bars, models, universe, args.history_bars, args.naive_cycles, True, Path(tmp))
    p = lambda x, q: float(np.percentile(x, q))  # noqa: E731
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, polars {pl.__version__}, "
        f"polars threads {pl.thread_pool_size()}"
    )
    print(f"{args.symbols} symbols x {len(models)} models x {len(names)} features, {args.history_bars} bars of history")
    print(
        f"engine ({args.cycles} cycles): p50 {p(lat, 50):.1f} ms, p99 {p(lat, 99):.1f} ms; "
        f"features p50 {p(rows, 50):.1f} ms, the rest p50 {p(np.subtract(lat, rows), 50):.1f} ms"
    )
    print(
        f"naive  ({args.naive_cycles} cycles, features of the whole history): p50 {p(naive, 50):.1f} ms, "
        f"p99 {p(naive, 99):.1f} ms; features p50 {p(naive_rows, 50):.1f} ms"
    )
    print(f"ratio naive / engine at p50: {p(naive, 50) / p(lat, 50):.1f}x")


if __name__ == "__main__":
    main()
