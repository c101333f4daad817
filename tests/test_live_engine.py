"""The live engine on the demo's models and the bars that landed after training: the books balance to the cent,
it trades only bars the models never saw, the stages do what REFERENCE.md says, risk limits hold, controls work."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from foxlake.cli import main
from live.config import EngineConfig, load_engine_config
from live.engine import arbitration, blending, sizing
from live.engine.execution import client_order_id
from live.ledger.reader import LedgerReader
from live.report import report
from live.risk.limits import HALTED, REDUCING, RiskState, assess, pre_trade
from live.runner import InSampleError, run_live
from ml.config import load_run_config
from ml.lake import read_table, table_dir
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY

CYCLES = 156  # two sessions of the 312 live bars
STAGES = ("prediction", "blend", "alpha_bps", "cost_bps", "net_alpha_bps", "sigma_bps", "gate", "z", "risk")


def _trade(results: Path, account: str = "paper", max_cycles: int | None = None, **overrides) -> dict:
    base = load_engine_config(DEMO_CONFIG).model_dump()
    for key, value in overrides.items():
        if isinstance(value, dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    cfg = EngineConfig.model_validate({**base, "account": account})
    summary = run_live(results, cfg, interval_minutes=5.0, max_cycles=max_cycles, install_signals=False)
    return {"summary": summary, "cfg": cfg}


@pytest.fixture(scope="module")
def demo_account(live_results, tmp_path_factory) -> Path:
    """The demo's paper account: every model the default policy picks, over the first two sessions of live bars."""
    import shutil

    results = tmp_path_factory.mktemp("demo_account") / "RESULTS"
    shutil.copytree(live_results, results)
    _trade(results, max_cycles=CYCLES)
    return results


def _ledger(results: Path, query: str, account: str = "paper") -> pl.DataFrame:
    with LedgerReader(results, account) as led:
        return led.frame(query)


# --- the books ---------------------------------------------------------------------------------------------------


def test_cash_positions_and_equity_reconcile_with_the_fills_to_the_cent_at_every_cycle(demo_account: Path) -> None:
    eq = _ledger(demo_account, "select * from equity order by cycle_id")
    fills = _ledger(demo_account, "select * from fills")
    bars = read_table(table_dir(demo_account, "bars", 5)).select(
        pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("ts"), "symbol", "close"
    )
    assert eq.height == CYCLES and fills.height > 0
    initial = 1_000_000.0
    for row in eq.iter_rows(named=True):
        upto = fills.filter(pl.col("cycle_id") <= row["cycle_id"])
        cash = initial - float((upto["qty"] * upto["price"]).sum()) - float(upto["fee"].sum())
        assert abs(cash - row["cash"]) < 0.01, row
        held = upto.group_by("symbol").agg(pl.col("qty").sum()).filter(pl.col("qty") != 0)
        marks = held.join(bars.filter(pl.col("ts") == row["ts"]), on="symbol", how="left")
        assert marks["close"].null_count() == 0
        value = float((marks["qty"] * marks["close"]).sum())
        assert abs(value - row["market_value"]) < 0.01 and abs(cash + value - row["equity"]) < 0.01, row
        assert abs(float(upto["fee"].sum()) - row["fees_cum"]) < 0.01
    last = eq["cycle_id"].max()
    book = fills.group_by("symbol").agg(pl.col("qty").sum()).filter(pl.col("qty") != 0).sort("symbol")
    positions = _ledger(demo_account, "select symbol, qty from positions order by symbol")
    assert book.rows() == positions.rows()  # the ledger's positions are the sum of its fills
    assert last == CYCLES


def test_the_engine_holds_longs_and_shorts_and_the_broker_agrees(demo_account: Path) -> None:
    from live.broker.paper import PaperBroker
    from live.config import BrokerConfig

    counts = _ledger(
        demo_account,
        "select max(n_long) as longs, max(n_short) as shorts from (select cycle_id, sum(qty > 0) as n_long, "
        "sum(qty < 0) as n_short from (select f.cycle_id, f.symbol, sum(g.qty) as qty from "
        "(select distinct cycle_id, symbol from fills) f join fills g "
        "on g.symbol = f.symbol and g.cycle_id <= f.cycle_id "
        "group by 1, 2) group by 1)",
    )
    assert counts["longs"][0] >= 3 and counts["shorts"][0] >= 3
    broker = PaperBroker(demo_account / "live" / "paper" / "broker.sqlite", BrokerConfig())
    try:
        positions = _ledger(demo_account, "select symbol, qty from positions")
        assert broker.positions() == dict(positions.rows())
        cash = _ledger(demo_account, "select cash from equity order by cycle_id desc limit 1")["cash"][0]
        assert abs(broker.cash() - cash) < 0.005
    finally:
        broker.close()


def test_every_symbol_of_every_cycle_gets_a_decision_with_the_trace_of_every_stage(demo_account: Path) -> None:
    d = _ledger(demo_account, "select cycle_id, symbol, action, reason, trace_json, order_qty from decisions")
    assert d.height == CYCLES * 24
    assert set(d["action"]) <= {"TRADE", "HOLD", "BLOCKED"} and "TRADE" in set(d["action"])
    for trace in d["trace_json"].head(200):
        t = json.loads(trace)
        assert set(STAGES) <= set(t) and t["in_sample"] is False
    trades = d.filter(pl.col("action") == "TRADE")
    orders = _ledger(demo_account, "select client_order_id, cycle_id, symbol, qty from orders")
    assert trades.height == orders.height and orders["client_order_id"].n_unique() == orders.height
    cycles = _ledger(demo_account, "select cycle_id, ts from cycles")
    ts = dict(cycles.rows())
    assert all(
        r["client_order_id"] == client_order_id("paper", ts[r["cycle_id"]], r["symbol"]) for r in orders.to_dicts()
    )


def test_the_report_measures_the_traded_bars(demo_account: Path) -> None:
    rep = report(demo_account, "paper", 5.0)
    assert rep["cycles"] == CYCLES and rep["in_sample_cycles"] == 0
    assert rep["measured_on"].startswith("live realised")
    assert rep["fees_paid"] > 0 and rep["fills"] > 0 and 0 < rep["turnover_frac_per_bar"] < 1
    assert rep["max_long_positions"] > 0 and rep["max_short_positions"] > 0
    blend = [r for r in rep["realised_ic"] if r["model"].startswith("<blend>")]
    assert blend and blend[0]["cycles"] == CYCLES - 2  # the last bars' returns are not in yet
    picked = [r for r in rep["realised_ic"] if not r["model"].startswith("<blend>")]
    assert all(r["holdout_ic"] is not None for r in picked)  # shown beside, never mixed in


# --- out of sample -----------------------------------------------------------------------------------------------


def test_the_engine_trades_only_bars_after_everything_the_models_run_saw(demo_account: Path, live_copy: Path) -> None:
    models = _ledger(demo_account, "select model, data_end, first_tradable_ts from models")
    first = _ledger(demo_account, "select min(ts) as ts from cycles")["ts"][0]
    assert all(first >= t for t in models["first_tradable_ts"])
    hist_end = max(models["data_end"])
    assert first > hist_end
    early = datetime.fromisoformat(hist_end) - timedelta(hours=1)
    with pytest.raises(InSampleError, match=r"refusing to trade from .* was trained and picked on bars up to"):
        run_live(
            live_copy, EngineConfig(policy=LINEAR_POLICY), interval_minutes=5.0, start=early, install_signals=False
        )
    assert (
        not (live_copy / "live" / "paper" / "ledger.sqlite").exists()
        or not _ledger(live_copy, "select * from cycles").height
    )
    s = run_live(
        live_copy,
        EngineConfig(policy=LINEAR_POLICY, allow_in_sample=True, account="debug"),
        interval_minutes=5.0,
        start=early,
        max_cycles=5,
        install_signals=False,
    )
    assert s.cycles == s.in_sample_cycles == 5
    traces = _ledger(live_copy, "select trace_json from decisions", "debug")["trace_json"]
    assert all(json.loads(t)["in_sample"] for t in traces)
    assert report(live_copy, "debug", 5.0)["in_sample_cycles"] == 5


# --- the stages on known inputs ---------------------------------------------------------------------------------


def test_ridge_blending_weights_on_known_inputs() -> None:
    # (C + 0.1 I)^-1 mu with C = [[1, .5], [.5, 1]], mu = [.04, .02]: [0.0354167, 0.0020833] -> [17/18, 1/18]
    w = blending.ridge_weights(np.array([0.04, 0.02]), np.array([[1.0, 0.5], [0.5, 1.0]]), 0.1)
    assert np.allclose(w, [17 / 18, 1 / 18])
    # a family whose solution is negative gets 0; all negative: no weight at all
    w = blending.ridge_weights(np.array([0.04, 0.0]), np.array([[1.0, 0.9], [0.9, 1.0]]), 0.1)
    assert w[1] == 0 and w[0] == 1
    assert not blending.ridge_weights(np.array([-0.01, -0.02]), np.eye(2), 0.1).any()
    # the holdout IC is the prior; realised IC takes over as cycles accrue
    assert blending.prior_ic(0.04, 0.0, 0, 200) == 0.04
    assert blending.prior_ic(0.04, 0.0 * 200, 200, 200) == pytest.approx(0.02)
    score, ic = blending.blend(
        np.array([[1.0, -1.0, np.nan], [1.0, -1.0, 2.0]]), np.array([0.5, 0.5]), np.array([0.04, 0.04]), np.eye(2)
    )
    assert np.allclose(score, [1.0, -1.0, 2.0]) and ic == pytest.approx(0.04 / np.sqrt(0.5))


def test_arbitration_converts_units_and_nets_costs_on_absolute_alpha() -> None:
    assert np.allclose(arbitration.alpha_from_returns(np.array([0.0002, -0.0002]), False), [2.0, -2.0])
    assert np.allclose(arbitration.alpha_from_returns(np.array([0.0003, 0.0001]), True), [1.0, -1.0])  # demeaned
    assert np.allclose(arbitration.alpha_from_score(0.05, np.array([20.0]), np.array([-1.5])), [-1.5])  # not ×1e4
    from live.config import CostConfig

    cost = arbitration.cost_bps(
        CostConfig(half_spread_bps=1.0, impact_coef=0.5), np.array([20.0, 20.0]), np.array([0.04, 0.0])
    )
    assert np.allclose(cost, [1.0 + 0.5 * 20 * 0.2, 1.0])
    assert np.allclose(arbitration.net_alpha(np.array([5.0, -5.0, 0.5]), np.array([3.0, 3.0, 1.0])), [2.0, -2.0, 0.0])


def test_sizing_clips_z_normalises_gross_and_respects_the_band() -> None:
    from live.config import SizingConfig

    cfg = SizingConfig(z_clip=3, weight_per_z_frac=0.1, no_trade_band_frac=0.01, max_gross_frac=0.3)
    z, w = sizing.target_weights(np.array([100.0, -10.0, 0.0]), np.array([10.0, 10.0, 10.0]), cfg)
    assert np.allclose(z, [3.0, -1.0, 0.0])
    assert np.isclose(np.abs(w).sum(), 0.3) and np.allclose(w / w[0], [1, -1 / 3, 0])  # 0.4 scaled to 0.3
    qty = sizing.order_shares(
        np.array([0.105, 0.2, 0.0]),
        np.array([0.1, 0.0, 0.004]),
        np.array([100.0, 0, 4]),
        np.array([100.0, 50.0, 100.0]),
        100_000.0,
        0.01,
    )
    assert qty.tolist() == [0.0, 400.0, -4.0]  # inside the band; a new position; a full exit always trades


# --- risk ---------------------------------------------------------------------------------------------------------


def test_risk_states_and_the_sticky_kill_switch_on_known_equity() -> None:
    from live.config import RiskConfig

    cfg = RiskConfig(daily_loss_frac=0.02, max_drawdown_frac=0.10, reduce_at_frac_of_limit=0.5)
    r = RiskState()
    assert assess(r, 100.0, 100.0, "2024-01-02", cfg) == [] and r.state == "ACTIVE"
    assess(r, 98.9, 100.0, "2024-01-02", cfg)
    assert r.state == REDUCING  # 1.1 % down: past half the 2 % limit
    events = assess(r, 97.9, 98.9, "2024-01-02", cfg)
    assert r.state == HALTED and "daily loss 2.10% reached the 2.00% limit" in r.kill_reason
    assert ("kill_switch", r.kill_reason) in events
    assess(r, 101.0, 97.9, "2024-01-02", cfg)
    assert r.state == HALTED  # sticky for the day even after a recovery
    events = assess(r, 101.0, 101.0, "2024-01-03", cfg)
    assert r.state == "ACTIVE" and events[0][0] == "kill_switch_cleared"
    assess(r, 90.0, 101.0, "2024-01-03", RiskConfig(daily_loss_frac=0.5, max_drawdown_frac=0.10))
    assert r.state == HALTED and r.kill_reason.startswith("drawdown 10.89%")


def test_pre_trade_checks_hold_every_limit() -> None:
    from live.config import RiskConfig

    cfg = RiskConfig(
        max_position_frac=0.2, max_gross_frac=0.5, max_order_notional_frac=0.15, max_participation_frac=0.1
    )
    price = np.array([100.0, 100.0, 100.0])
    cur = np.array([0.0, 100.0, -50.0])
    qty, notes = pre_trade(
        np.array([300.0, 200.0, 100.0]), cur, price, np.array([1e6, 1e6, 500.0]), 100_000.0, "ACTIVE", cfg
    )
    after = cur + qty
    assert np.all(np.abs(after * price) <= 0.2 * 100_000 + 1e-9)
    assert np.all(np.abs(qty * price) <= 0.15 * 100_000 + 1e-9) and abs(qty[2]) <= 50
    assert np.abs(after * price).sum() <= 0.5 * 100_000 + 1e-9
    assert "max_participation" in notes[2]
    qty, _ = pre_trade(np.array([50.0, -300.0, 100.0]), cur, price, np.full(3, 1e6), 100_000.0, REDUCING, cfg)
    assert qty.tolist() == [0.0, -100.0, 50.0]  # only towards zero, never through it


def test_a_daily_loss_breach_halts_with_its_reason_and_only_reducing_orders_follow(live_copy: Path) -> None:
    # a limit a normal day's noise breaches: the kill switch must trip and flatten the book, and stay on that day
    _trade(
        live_copy,
        max_cycles=120,
        policy=LINEAR_POLICY,
        risk={"daily_loss_frac": 0.0001, "reduce_at_frac_of_limit": 1.0},
    )
    cyc = _ledger(live_copy, "select cycle_id, ts, trading_state from cycles order by cycle_id")
    halted = cyc.filter(pl.col("trading_state") == HALTED)
    assert halted.height > 0
    first = halted.row(0, named=True)
    ev = _ledger(live_copy, "select cycle_id, message from events where event_type = 'kill_switch'")
    assert ev["cycle_id"][0] == first["cycle_id"] and "daily loss" in ev["message"][0]
    day = first["ts"][:10]
    same_day = cyc.filter((pl.col("cycle_id") >= first["cycle_id"]) & pl.col("ts").str.starts_with(day))
    assert set(same_day["trading_state"]) == {HALTED}  # sticky for the trading day
    orders = _ledger(live_copy, "select o.cycle_id, o.symbol, o.qty, o.reduce_only from orders o")
    after = orders.filter(pl.col("cycle_id").is_in(same_day["cycle_id"].to_list()))
    assert (after["reduce_only"] == 1).all()
    pos = _positions_before(live_copy)
    for r in after.to_dicts():
        held = pos.get((r["cycle_id"], r["symbol"]), 0.0)
        assert held * r["qty"] < 0 and abs(r["qty"]) <= abs(held)  # closes, never opens or flips


def _positions_before(results: Path) -> dict[tuple[int, str], float]:
    """(cycle, symbol) -> shares held when that cycle decided (fills up to and including its own bar)."""
    fills = _ledger(results, "select cycle_id, symbol, qty from fills")
    cycles = _ledger(results, "select cycle_id from cycles")["cycle_id"].to_list()
    out: dict[tuple[int, str], float] = {}
    running: dict[str, float] = {}
    by_cycle = {k[0]: v for k, v in fills.partition_by("cycle_id", as_dict=True).items()}
    for c in cycles:
        for s, q in by_cycle.get(c, pl.DataFrame({"symbol": [], "qty": []})).select("symbol", "qty").rows():
            running[s] = running.get(s, 0.0) + q
        for s, q in running.items():
            out[(c, s)] = q
    return out


@pytest.mark.parametrize(
    "limit",
    [
        {"max_drawdown_frac": 0.0004, "reduce_at_frac_of_limit": 1.0},
        {"max_position_frac": 0.02},
        {"max_gross_frac": 0.1},
    ],
    ids=["drawdown", "position", "gross"],
)
def test_drawdown_position_and_gross_limits_hold(live_copy: Path, limit: dict) -> None:
    sizing_cfg = {"max_gross_frac": 0.1} if "max_gross_frac" in limit else {}
    _trade(live_copy, max_cycles=100, policy=LINEAR_POLICY, risk=limit, sizing=sizing_cfg)
    d = _ledger(
        live_copy,
        "select d.cycle_id, d.symbol, d.order_qty, e.equity, d.trace_json "
        "from decisions d join equity e using (cycle_id)",
    )
    if "max_drawdown_frac" in limit:
        ev = _ledger(live_copy, "select message from events where event_type = 'kill_switch'")
        assert ev.height >= 1 and ev["message"][0].startswith("drawdown")
        return
    bars = read_table(table_dir(live_copy, "bars", 5)).select(
        pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("ts"), "symbol", "close"
    )
    cyc = _ledger(live_copy, "select cycle_id, ts from cycles")
    held = _positions_before(live_copy)
    px = {(r["ts"], r["symbol"]): r["close"] for r in bars.filter(pl.col("ts").is_in(cyc["ts"].to_list())).to_dicts()}
    ts = dict(cyc.rows())
    gross: dict[int, float] = {}
    for r in d.to_dicts():
        after = held.get((r["cycle_id"], r["symbol"]), 0.0) + r["order_qty"]
        value = abs(after * px[(ts[r["cycle_id"]], r["symbol"])])
        gross[r["cycle_id"]] = gross.get(r["cycle_id"], 0.0) + value
        if "max_position_frac" in limit:
            assert value <= 0.02 * r["equity"] + 1e-6 or r["order_qty"] == 0 or abs(after) < abs(after - r["order_qty"])
    if "max_gross_frac" in limit:
        eq = dict(_ledger(live_copy, "select cycle_id, equity from equity").rows())
        worst = max(gross, key=lambda c: gross[c] / eq[c])
        assert gross[worst] <= 0.1 * eq[worst] * (1 + 1e-9), (worst, gross[worst] / eq[worst])
        assert max(g / eq[c] for c, g in gross.items()) > 0.08  # the limit binds, it is not idle


# --- controls -----------------------------------------------------------------------------------------------------


def test_pause_resume_and_kill_through_the_cli(live_copy: Path, capsys) -> None:
    args = ["--results", str(live_copy), "live", "run", "--config", DEMO_CONFIG, "--policy", LINEAR_POLICY]
    assert main([*args, "--max-cycles", "10"]) == 0
    assert main(["--results", str(live_copy), "live", "control", "pause", "--reason", "news at 15:00"]) == 0
    assert main([*args, "--max-cycles", "5"]) == 0
    paused = _ledger(live_copy, "select action, reason from decisions where cycle_id > 10")
    assert set(paused["action"]) == {"BLOCKED"} and set(paused["reason"]) == {"paused"}
    assert _ledger(live_copy, "select count(*) as n from orders where cycle_id > 10")["n"][0] == 0
    assert main(["--results", str(live_copy), "live", "control", "resume", "--reason", "done"]) == 0
    assert main(["--results", str(live_copy), "live", "control", "kill", "--reason", "fat finger"]) == 0
    assert main([*args, "--max-cycles", "5"]) == 0
    cmds = _ledger(live_copy, "select command, applied_cycle, result from commands order by command_id")
    assert cmds["command"].to_list() == ["pause", "resume", "kill"] and cmds["applied_cycle"].to_list() == [11, 16, 16]
    state = _ledger(live_copy, "select trading_state from cycles where cycle_id = 16")["trading_state"][0]
    assert state == HALTED
    capsys.readouterr()
    assert main(["--results", str(live_copy), "live", "status"]) == 0
    out = capsys.readouterr().out
    assert "state HALTED" in out and "kill switch: manual kill: fat finger" in out
    assert main(["--results", str(live_copy), "live", "control", "reset", "--reason", "checked"]) == 0
    assert main([*args, "--max-cycles", "1"]) == 0
    assert _ledger(live_copy, "select trading_state from cycles where cycle_id = 21")["trading_state"][0] != HALTED
    with pytest.raises(SystemExit):  # argparse refuses an unknown command
        main(["--results", str(live_copy), "live", "control", "flatten", "--reason", "x"])


# --- following the lake as the feed lands bars --------------------------------------------------------------------


def test_follow_mode_trades_each_bar_the_feed_lands(results_copy: Path, cli_env: dict) -> None:
    import subprocess
    import sys
    import time

    from live.feed import play
    from tests.conftest import REPO

    engine = subprocess.Popen(
        [sys.executable, "-m", "foxlake.cli", "--results", str(results_copy), "live", "run", "--config", DEMO_CONFIG,
         "--policy", LINEAR_POLICY, "--follow", "--poll-seconds", "0.2", "--idle-exit-seconds", "3.5",
         "--stale-after-seconds", "1.5", "--json"],
        env=cli_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ledger = results_copy / "live" / "paper" / "ledger.sqlite"
    deadline = time.monotonic() + 60
    while not ledger.exists() and engine.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the engine has loaded its models and waits for bars
    assert engine.poll() is None, engine.communicate()[1][-2000:]
    landed = []
    fed = play(results_copy, load_run_config(DEMO_CONFIG), n_bars=6, seconds_per_bar=0.4, on_bar=landed.append)
    assert fed.landed == 6 and fed.remaining == 306
    out, err = engine.communicate(timeout=120)
    assert engine.returncode == 0, err[-2000:]
    run = json.loads(out.strip().splitlines()[-1])["run"]
    assert run["cycles"] == 6 and run["in_sample_cycles"] == 0
    cycles = _ledger(results_copy, "select ts from cycles order by cycle_id")["ts"].to_list()
    assert cycles == landed  # every bar the feed landed, in order, each once
    stale = _ledger(results_copy, "select message from events where event_type = 'stale_data'")
    assert stale.height == 1  # the feed stopped: said once, then the engine left after the idle limit


def test_the_feature_buffer_keeps_each_symbols_bars_in_order_with_or_without_gaps() -> None:
    from live.features import FeatureBuffer
    from ml.features import ALL_FEATURES, latest_features
    from ml.synthetic import SyntheticMarketConfig, make_market

    bars = make_market(SyntheticMarketConfig(n_symbols=5, n_bars=130, seed=3))
    stamps = bars["ts"].unique().sort()
    odd = stamps[len(stamps) - 20]
    # a grid of timestamps x symbols (built from arrays), one bar missing or one empty vwap cell (sorted)
    for case in ("grid", "missing bar", "empty vwap"):
        window = bars.filter(pl.col("ts").is_in(stamps[-110:].implode()))
        at_odd = (pl.col("symbol") == "SYM002") & (pl.col("ts") == odd)
        if case == "missing bar":
            window = window.filter(~at_odd)
        if case == "empty vwap":
            window = window.with_columns(pl.when(at_odd).then(None).otherwise(pl.col("vwap")).alias("vwap"))
        buffer = FeatureBuffer(ALL_FEATURES)
        for i, t in enumerate(stamps[-110:]):
            buffer.push(window.filter(pl.col("ts") == t).sample(fraction=1.0, shuffle=True, seed=i))  # any order
        # each symbol's own last history_bars bars (a symbol that missed a bar keeps one older bar)
        kept = window.filter(
            pl.int_range(pl.len()).over("symbol", order_by="ts") >= pl.len().over("symbol") - buffer.history_bars
        )
        assert buffer.bars.equals(kept.select(buffer.bars.columns).sort("symbol", "ts")), case
        assert buffer.rows().frame().equals(latest_features(kept, ALL_FEATURES).drop("close")), case
