"""Live realised figures against the synthetic market's truth: the demo's models, traded on fresh markets of other
seeds (every bar after the models' data), realise the planted cross-sectional IC; on a market without signal the
same engine earns nothing before costs and loses after them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from live.config import BrokerConfig, CostConfig, load_engine_config
from live.ledger.reader import LedgerReader
from live.report import report
from live.runner import run_live
from ml.config import load_run_config
from ml.lake import read_table, table_dir, write_partitions
from ml.synthetic import documented_ics, make_market
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY

SEEDS = (11, 12, 13)
CYCLES = 200
NO_SIGNAL_CYCLES = 100
NO_SIGNAL = {"rho_volume": 0.0, "rho_gap_common": 0.0, "rho_gap_symbol": 0.0, "rho_wick_symbol": 0.0}


def _market(live_results: Path, dst: Path, seed: int, n_symbols: int, **loadings) -> Path:
    """The demo's RESULTS (its models and catalog) over another market: same calendar, another seed and universe."""
    shutil.copytree(live_results, dst, ignore=shutil.ignore_patterns("live"))
    cfg = load_run_config(DEMO_CONFIG).market.model_copy(update={"seed": seed, "n_symbols": n_symbols, **loadings})
    lake = table_dir(dst, "bars", 5)
    shutil.rmtree(lake)
    write_partitions(make_market(cfg), lake)
    return dst


def _gross_pnl(results: Path, account: str) -> float:
    """Net P&L plus what the fills paid in fees and slippage against the bar's open: the P&L before costs."""
    bars = read_table(table_dir(results, "bars", 5)).select(
        pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("ts"), "symbol", "open"
    )
    with LedgerReader(results, account) as led:
        fills = led.frame("select ts, symbol, qty, price, fee from fills")
    f = fills.join(bars, on=["ts", "symbol"])
    assert f.height == fills.height
    slippage = float(((f["price"] - f["open"]) * f["qty"]).sum())
    return report(results, account, 5.0)["net_pnl"] + float(fills["fee"].sum()) + slippage


@pytest.fixture(scope="module")
def planted(live_results, tmp_path_factory) -> list[dict]:
    cfg = load_engine_config(DEMO_CONFIG, policy=LINEAR_POLICY)
    out = []
    for seed in SEEDS:
        results = _market(live_results, tmp_path_factory.mktemp(f"seed{seed}") / "RESULTS", seed, 96)
        run_live(results, cfg, interval_minutes=5.0, max_cycles=CYCLES, install_signals=False)
        out.append(report(results, cfg.account, 5.0))
    return out


def test_the_realised_ic_of_the_planted_target_matches_its_truth(planted) -> None:
    spec = load_run_config(DEMO_CONFIG).target_spec("fwd_ret_5m_from_open")
    truth = documented_ics(load_run_config(DEMO_CONFIG).market, spec.horizon_bars, spec.delay_bars, spec.entry)["cs_ic"]
    blend = [next(r for r in rep["realised_ic"] if r["model"].startswith("<blend>")) for rep in planted]
    ics = [b["realised_ic"] for b in blend]
    print(f"realised IC of the blend over {CYCLES} live bars x 96 symbols: {np.round(ics, 4)}, truth {truth:.4f}")
    assert all(b["cycles"] >= CYCLES - 2 for b in blend)
    assert abs(float(np.mean(ics)) - truth) <= 0.01
    assert all(abs(ic - truth) <= 0.02 for ic in ics)  # each seed, with its own noise (about 0.007)
    assert all(rep["in_sample_cycles"] == 0 for rep in planted)


def test_without_signal_costs_bite_and_nothing_is_earned_before_them(live_results, tmp_path_factory) -> None:
    # the demo's sizing at a typical venue (the engine's defaults: 5 bp slippage, 1 bp fee, 1 bp half-spread)
    demo = load_engine_config(DEMO_CONFIG, policy=LINEAR_POLICY, account="nosignal")
    cfg = demo.model_copy(update={"costs": CostConfig(), "broker": BrokerConfig()})
    nets, grosses, sds = [], [], []
    for seed in SEEDS:
        results = _market(live_results, tmp_path_factory.mktemp(f"flat{seed}") / "RESULTS", seed, 48, **NO_SIGNAL)
        run_live(results, cfg, interval_minutes=5.0, max_cycles=NO_SIGNAL_CYCLES, install_signals=False)
        rep = report(results, cfg.account, 5.0)
        assert rep["fills"] > 50  # it trades: the models still see "signal"
        nets.append(rep["net_pnl"])
        grosses.append(_gross_pnl(results, cfg.account))
        with LedgerReader(results, cfg.account) as led:
            eq = led.frame("select equity from equity order by cycle_id")["equity"].to_numpy()
        sds.append(float(np.diff(eq).std(ddof=1) * np.sqrt(len(eq))))  # the noise of a run's total P&L
    print(f"no signal: net P&L {np.round(nets, 2)}, before costs {np.round(grosses, 2)}, noise {np.round(sds, 2)}")
    assert np.mean(nets) <= 0
    se = float(np.sqrt(np.sum(np.square(sds)))) / len(SEEDS)
    assert abs(float(np.mean(grosses))) <= 3 * se  # before costs: zero within the noise (no look-ahead to earn)
