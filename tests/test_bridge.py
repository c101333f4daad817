"""The bridge over a real paper-trading ledger, served by uvicorn on loopback: every payload against the contract
models and the ledger, the controls' token, the websocket feeds' resume, the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import websockets

from bridge.auth import BridgeToken, resolve_token, token_file
from contracts.bridge import EngineEvent, EngineState, PositionsPayload, RiskStatus, TrainingEvent
from live.config import load_engine_config
from live.ledger.writer import append_command
from live.runner import run_live
from tests.conftest import BRIDGE_TOKEN as TOKEN
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY, TRADED_CYCLES, serve_bridge

CYCLES = TRADED_CYCLES


@pytest.fixture(scope="module")
def bridge(traded) -> Iterator[str]:
    with serve_bridge(traded) as base:
        yield base


def _ledger(results: Path, query: str) -> list[tuple]:
    con = sqlite3.connect(results / "live" / "bridge" / "ledger.sqlite")
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_positions_are_the_ledgers_with_entry_prices_from_its_fills(bridge, traded) -> None:
    doc = httpx.get(f"{bridge}/api/positions").json()
    payload = PositionsPayload.model_validate(doc)
    (equity,) = _ledger(traded, "select equity from equity order by cycle_id desc limit 1")[0]
    held = dict(_ledger(traded, "select symbol, qty from positions"))
    assert payload.total_positions == len(held) > 0 and payload.long_count > 0 and payload.short_count > 0
    assert [p.symbol for p in payload.positions] == sorted(held)
    # the average entry price, recomputed from the fills alone (average cost; a flip or a close starts afresh)
    book: dict[str, tuple[float, float, str]] = {}
    for sym, qty, price, ts in _ledger(traded, "select symbol, qty, price, ts from fills order by ts, symbol"):
        q, avg, since = book.get(sym, (0.0, 0.0, ""))
        new = q + qty
        if q == 0 or q * new < 0:
            avg, since = price, ts
        elif q * qty > 0:
            avg = (abs(q) * avg + abs(qty) * price) / abs(new)
        book[sym] = (new, avg if new else 0.0, since if new else "")
    closes = dict(
        _ledger(traded, "select symbol, mark_price from positions")
    )  # the mark: the last cycle's close (checked against the lake below)
    for p in payload.positions:
        q, avg, since = book[p.symbol]
        assert p.shares == q == held[p.symbol] and p.side == ("long" if q > 0 else "short")
        assert p.entry_price == pytest.approx(avg, rel=1e-12) and p.entry_time == since
        assert p.market_value == pytest.approx(q * closes[p.symbol], rel=1e-12)
        assert p.weight == pytest.approx(p.market_value / equity, rel=1e-12)
        assert p.unrealized_pnl == pytest.approx(q * (closes[p.symbol] - avg), rel=1e-9, abs=1e-9)
    assert payload.total_market_value == pytest.approx(sum(p.market_value for p in payload.positions))
    (cash,) = _ledger(traded, "select cash from equity order by cycle_id desc limit 1")[0]
    assert cash + payload.total_market_value == pytest.approx(equity, abs=0.005)  # to the cent


def test_risk_status_reads_the_last_cycle_and_the_engines_limits(bridge, traded) -> None:
    risk = RiskStatus.model_validate(httpx.get(f"{bridge}/api/risk/status").json())
    eq, gross, net, peak, day0, ts = _ledger(
        traded,
        "select equity, gross_frac, net_frac, peak_equity, day_start_equity, ts from equity "
        "order by cycle_id desc limit 1",
    )[0]
    cfg = load_engine_config(DEMO_CONFIG, account="bridge", policy=LINEAR_POLICY)
    assert risk.trading_allowed and not risk.kill_switch_active and risk.kill_switch_reason is None
    assert risk.daily_pnl_pct == pytest.approx(eq / day0 - 1) and risk.drawdown_pct == pytest.approx(1 - eq / peak)
    assert (risk.gross_exposure, risk.net_exposure) == (gross, net) and risk.last_check == ts
    assert risk.daily_loss_limit_pct == cfg.risk.daily_loss_frac
    assert risk.max_drawdown_limit_pct == cfg.risk.max_drawdown_frac
    assert risk.max_gross_exposure == cfg.risk.max_gross_frac


def test_the_dashboards_views_follow_the_ledger(bridge, traded) -> None:
    curve = httpx.get(f"{bridge}/api/equity").json()
    assert [p["cycle_id"] for p in curve["points"]] == list(range(1, CYCLES + 1))
    equities = [p["equity"] for p in curve["points"]]
    peaks = [max([curve["initial_cash"], *equities[: i + 1]]) for i in range(len(equities))]
    want = [1 - e / k for e, k in zip(equities, peaks, strict=True)]
    assert [p["drawdown_frac"] for p in curve["points"]] == pytest.approx(want)
    thin = httpx.get(f"{bridge}/api/equity", params={"max_points": 10}).json()
    assert len(thin["points"]) == 10 and thin["downsampled_from"] == CYCLES and thin["points"][-1]["cycle_id"] == CYCLES

    orders = httpx.get(f"{bridge}/api/orders", params={"limit": 500}).json()
    assert orders and orders[0]["cycle_id"] == CYCLES and {o["status"] for o in orders} <= {
        "open", "filled", "partial", "cancelled"}  # fmt: skip
    assert all(o["status"] == "open" for o in orders if o["cycle_id"] == CYCLES)
    filled = {coid: qty for coid, qty in _ledger(traded, "select client_order_id, sum(qty) from fills group by 1")}
    for o in orders:
        assert o["filled_qty"] == filled.get(o["client_order_id"], 0.0)
    fills = httpx.get(f"{bridge}/api/fills", params={"limit": 5, "symbol": orders[-1]["symbol"]}).json()
    assert fills and all(f["symbol"] == orders[-1]["symbol"] for f in fills)

    last = httpx.get(f"{bridge}/api/decisions").json()
    assert last["cycle"]["cycle_id"] == CYCLES and len(last["decisions"]) == 24
    stages = {"prediction", "blend", "alpha_bps", "cost_bps", "net_alpha_bps", "gate", "risk", "order_qty"}
    assert all(stages <= set(d["trace"]) for d in last["decisions"])
    trades = httpx.get(f"{bridge}/api/decisions", params={"cycle_id": 5, "action": "TRADE"}).json()
    assert all(d["action"] == "TRADE" for d in trades["decisions"]) and trades["cycle"]["cycle_id"] == 5
    assert httpx.get(f"{bridge}/api/decisions", params={"cycle_id": 10_000}).status_code == 404

    models = httpx.get(f"{bridge}/api/models").json()
    assert {m["family"] for m in models} == {"Ridge", "ElasticNet"} and {m["policy"] for m in models} == {LINEAR_POLICY}
    for m in models:
        (ic,) = _ledger(traded, f"select avg(ic) from realised_ic where model = '{m['model']}'")[0]
        assert m["realised_ic"] == pytest.approx(ic) and m["holdout_ic"] is not None and not m["quarantined"]
    runs = httpx.get(f"{bridge}/api/training/runs").json()
    assert runs and runs[0]["n_models"] > 0 and runs[0]["best_holdout_ic"] is not None


def test_controls_need_the_token_and_the_engine_acknowledges_them(traded, tmp_path) -> None:
    results = tmp_path / "RESULTS"
    shutil.copytree(traded, results)
    with serve_bridge(results) as base:
        body = {"reason": "lunch", "wait_s": 0}
        assert httpx.post(f"{base}/api/control/pause", json=body).status_code == 401
        wrong = httpx.post(f"{base}/api/control/pause", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        assert httpx.post(f"{base}/api/control/dance", json=body, headers=_auth()).status_code in (403, 422)
        assert httpx.post(f"{base}/api/control/pause", json={"reason": ""}, headers=_auth()).status_code == 422
        queued = httpx.post(f"{base}/api/control/pause", json=body, headers=_auth()).json()
        assert queued["command"] == "pause" and not queued["acknowledged"] and queued["applied_cycle"] is None

        cfg = load_engine_config(DEMO_CONFIG, account="bridge", policy=LINEAR_POLICY)
        run_live(results, cfg, interval_minutes=5.0, max_cycles=2, install_signals=False)  # resumes: applies it
        (row,) = httpx.get(f"{base}/api/commands").json()
        assert row["acknowledged"] and row["applied_cycle"] == CYCLES + 1 and row["result"].startswith("paused")
        risk = httpx.get(f"{base}/api/risk/status").json()
        assert not risk["trading_allowed"] and any(w["type"] == "paused" for w in risk["warnings"])
        last = httpx.get(f"{base}/api/cycles", params={"limit": 1}).json()[0]
        assert last["paused"] and last["n_trade"] == 0 and last["cycle_id"] == CYCLES + 2


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN.value}"}


def test_the_token_file_is_made_once_private_and_an_exposed_one_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FOXLAKE_BRIDGE_TOKEN", raising=False)
    first = resolve_token(tmp_path)
    assert first.source == "generated" and len(first.value) >= 32
    assert token_file(tmp_path).stat().st_mode & 0o777 == 0o600
    again = resolve_token(tmp_path)
    assert again.source == "file" and again.value == first.value
    token_file(tmp_path).chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        resolve_token(tmp_path)
    monkeypatch.setenv("FOXLAKE_BRIDGE_TOKEN", "from-the-environment")
    assert resolve_token(tmp_path) == BridgeToken("from-the-environment", "env")


async def _receive(url: str, n: int, timeout_s: float = 10.0) -> list[dict]:
    out = []
    async with websockets.connect(url) as ws:
        while len(out) < n:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
    return out


def test_ws_events_sends_the_recent_first_and_resumes_without_loss_or_repeat(traded, tmp_path) -> None:
    results = tmp_path / "RESULTS"
    shutil.copytree(traded, results)
    ids = [r[0] for r in _ledger(results, "select event_id from events order by event_id")]
    with serve_bridge(results) as base:
        ws = base.replace("http", "ws") + "/ws/events"
        recent = asyncio.run(_receive(f"{ws}?recent=5", 5))
        assert [e["event_id"] for e in recent] == ids[-5:]
        for e in recent:
            EngineEvent.model_validate(e)
        head = asyncio.run(_receive(f"{ws}?after=0", 10))
        rest = asyncio.run(_receive(f"{ws}?after={head[-1]['event_id']}", len(ids) - 10))
        assert [e["event_id"] for e in head + rest] == ids  # none lost, none twice
        assert {e["event_type"] for e in head} >= {"engine_start", "cycle_complete"}

        async def live() -> list[dict]:
            async with websockets.connect(f"{ws}?after={ids[-1]}") as sock:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(append_command, results, "bridge", "kill", "test")
                cfg = load_engine_config(DEMO_CONFIG, account="bridge", policy=LINEAR_POLICY)
                await asyncio.to_thread(
                    run_live, results, cfg, interval_minutes=5.0, max_cycles=1, install_signals=False
                )
                got = []
                while len(got) < 3:  # resume, command, kill switch, cycle
                    got.append(json.loads(await asyncio.wait_for(sock.recv(), 10)))
                return got

        new = asyncio.run(live())
        assert new[0]["event_id"] == ids[-1] + 1 and new[0]["event_type"] == "engine_resume"
        assert [e["event_id"] for e in new] == list(range(ids[-1] + 1, ids[-1] + 4))


def test_a_resume_from_further_back_than_the_feeds_memory_loses_nothing(traded, monkeypatch) -> None:
    """A feed keeps its newest ``KEEP`` messages; a resume from before them reads the source in pieces."""
    import bridge.streams

    monkeypatch.setattr(bridge.streams, "KEEP", 7)  # the ledger holds many times more events than that
    ids = [r[0] for r in _ledger(traded, "select event_id from events order by event_id")]
    lines = (traded / "training" / "events.jsonl").read_text().splitlines()
    assert len(ids) > 3 * 7 and len(lines) > 3 * 7
    with serve_bridge(traded) as base:
        ws = base.replace("http", "ws")
        for after in (0, ids[2]):
            got = asyncio.run(_receive(f"{ws}/ws/events?after={after}", len([i for i in ids if i > after])))
            assert [e["event_id"] for e in got] == [i for i in ids if i > after]  # none lost, none twice
        got = asyncio.run(_receive(f"{ws}/ws/training?after=1", len(lines) - 1))
        assert [e["seq"] for e in got] == list(range(2, len(lines) + 1))


def test_ws_training_replays_the_newest_run_and_resumes(traded) -> None:
    lines = (traded / "training" / "events.jsonl").read_text().splitlines()
    with serve_bridge(traded) as base:
        ws = base.replace("http", "ws") + "/ws/training"
        got = asyncio.run(_receive(ws, len(lines)))
        for ev in got:
            TrainingEvent.model_validate(ev)
        assert [e["seq"] for e in got] == list(range(1, len(lines) + 1))  # the fixture holds one run
        assert got[0]["event_type"] == "stage_change" and got[-1]["event_type"] == "run_complete"
        manifest = json.loads(next((traded / "runs").glob("*/*/manifest.json")).read_text())
        assert {e["run_id"] for e in got} == {manifest["run_id"]}
        tail = asyncio.run(_receive(f"{ws}?after={len(lines) - 2}", 2))
        assert [e["seq"] for e in tail] == [len(lines) - 1, len(lines)]


def test_openapi_documents_the_contract_models(bridge) -> None:
    from pydantic.json_schema import models_json_schema

    EngineState.model_validate(httpx.get(f"{bridge}/api/state").json())
    spec = httpx.get(f"{bridge}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    _, defs = models_json_schema(
        [(m, "serialization") for m in (EngineState, PositionsPayload, RiskStatus)],
        ref_template="#/components/schemas/{model}",
    )
    want = defs["$defs"]  # the three and the models they nest (Position, RiskWarning)
    assert set(want) == {"EngineState", "Position", "PositionsPayload", "RiskStatus", "RiskWarning"}
    for name, schema in want.items():
        for prop in schema["properties"].values():
            if prop.get("default", 0) is None:  # FastAPI leaves out a `default: null`; nothing else may differ
                del prop["default"]
        assert schemas[name] == schema, name  # every property's type, format, bounds, enum, nullability, required
    paths = spec["paths"]
    for path, model in (
        ("/api/state", EngineState),
        ("/api/positions", PositionsPayload),
        ("/api/risk/status", RiskStatus),
    ):
        assert paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model.__name__}"
        }, path
    docs = httpx.get(f"{bridge}/docs").text
    assert "cdn" not in docs.lower() and "/static-offline-docs/swagger-ui-bundle.js" in docs
    assert httpx.get(f"{bridge}/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_no_cors_and_static_paths_stay_in_the_static_folder(bridge) -> None:
    pre = httpx.options(
        f"{bridge}/api/state", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in pre.headers
    got = httpx.get(f"{bridge}/api/state", headers={"Origin": "http://evil.example"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static//etc/passwd"):
        r = httpx.get(f"{bridge}{path}")
        assert r.status_code == 404 and "create_app" not in r.text, path


def test_ws_training_follows_a_real_materialize_to_run_complete(tmp_path) -> None:
    """``foxlake materialize`` (smoke config, its own process and Dagster instance) while a client listens."""
    import os
    import sys

    from tests.conftest import REPO

    results, home = tmp_path / "RESULTS", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "configs" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home)}
    cmd = [sys.executable, "-m", "foxlake.cli", "--results", str(results), "materialize", "--config",
           str(REPO / "configs" / "smoke.yaml")]  # fmt: skip
    with serve_bridge(results) as base:

        async def follow() -> list[dict]:
            got: list[dict] = []
            async with websockets.connect(base.replace("http", "ws") + "/ws/training") as ws:
                proc = await asyncio.create_subprocess_exec(*cmd, env=env, cwd=REPO, stdout=-3, stderr=-3)
                try:
                    while not got or got[-1]["event_type"] != "run_complete":
                        got.append(json.loads(await asyncio.wait_for(ws.recv(), 300)))
                finally:
                    assert await asyncio.wait_for(proc.wait(), 300) == 0
            return got

        events = asyncio.run(follow())
    for ev in events:
        TrainingEvent.model_validate(ev)
    stages = [e["stage"] for e in events if e["event_type"] == "stage_change"]
    assert stages == ["ranking", "feature_selection", "training"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    manifest = json.loads(next((results / "runs").glob("*/*/manifest.json")).read_text())
    assert {e["run_id"] for e in events} == {manifest["run_id"]}
    assert {e["run_instance_id"] for e in events} == {Path(manifest["run_instance_id"]).name}
    assert events[-1]["progress_pct"] == 100.0


def test_a_long_stage_emits_heartbeats(tmp_path) -> None:
    from ml.progress import TrainingProgress, read_training_events

    progress = TrainingProgress(tmp_path, "hb", "20260101T000000Z_deadbeef", heartbeat_seconds=0.2)
    progress.stage("training", 4)
    with progress.heartbeat("training"):
        time.sleep(0.9)  # a fit that reports nothing for a while
    progress.progress("training", 1, 4)
    time.sleep(0.5)  # no heartbeat after the block
    events = read_training_events(tmp_path)
    beats = [e for e in events if e.get("message", "").startswith("heartbeat")]
    assert 3 <= len(beats) <= 5 and events[-1]["event_type"] == "progress" and "message" not in events[-1]
    assert all(b["stage"] == "training" and b["targets_total"] == 4 and b["progress_pct"] == 0 for b in beats)
    stamps = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in events[:-1]]
    assert max(b - a for a, b in zip(stamps, stamps[1:], strict=False)) < 0.45


def test_live_report_html_is_one_static_page_with_the_ledgers_numbers(traded, tmp_path) -> None:
    import re

    from foxlake.cli import main

    out = tmp_path / "report" / "account.html"
    assert main(["--results", str(traded), "live", "report", "--account", "bridge", "--html", str(out)]) == 0
    page = out.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert [p["cycle_id"] for p in data["equity"]["points"]] == list(range(1, CYCLES + 1))
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loaded from elsewhere: uPlot is inlined
    assert "uPlot" in page and f"{len(_ledger(traded, 'select * from positions'))} open" in page
