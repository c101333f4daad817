"""Crash safety: the engine killed with SIGKILL at 30 random moments of a replay and resumed each time ends with the
fills, positions, cash and equity of an uninterrupted run of the same bars; no client order id twice; fills the
broker made while the engine was dead are reconciled; a reader polling /api/state and the ledger every 10 ms all
the while sees no error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from live.broker.paper import PaperBroker
from live.config import load_engine_config
from live.ledger.reader import LedgerReader
from live.runner import run_live
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY, REPO, free_port, wait_for_http
from tests.live_crash_driver import TOTAL_CYCLES, last_bar

KILLS = 30

_READER = r"""
import json, sys, time, httpx
from pathlib import Path
from live.ledger.reader import LedgerReader
base, results, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ok = errors = ledger_reads = 0
first_error = None
while not stop.exists():
    try:
        r = httpx.get(base + "/api/state", timeout=5)
        if r.status_code != 200:
            raise RuntimeError(f"/api/state {r.status_code}: {r.text[:200]}")
        ok += 1
        if (Path(results) / "live" / "crash" / "ledger.sqlite").exists():
            with LedgerReader(results, "crash") as led:
                led.one("select count(*) as n, max(cycle_id) as last from cycles")
                led.frame("select * from equity order by cycle_id desc limit 5")
            ledger_reads += 1
    except Exception as exc:
        errors += 1
        first_error = first_error or repr(exc)
    time.sleep(0.01)
print(json.dumps({"ok": ok, "errors": errors, "ledger_reads": ledger_reads, "first_error": first_error}))
"""


def _book(results: Path) -> dict[str, pl.DataFrame]:
    with LedgerReader(results, "crash") as led:
        return {
            "fills": led.frame(
                "select fill_id, client_order_id, cycle_id, symbol, ts, qty, price, fee from fills order by fill_id"
            ),
            "orders": led.frame("select * from orders order by client_order_id"),
            "positions": led.frame("select * from positions order by symbol"),
            "equity": led.frame("select * from equity order by cycle_id"),
            "decisions": led.frame(
                "select cycle_id, symbol, action, order_qty, target_weight_frac from decisions order by 1, 2"
            ),
            "realised": led.frame("select cycle_id, model, ic, n_symbols from realised_ic order by 1, 2"),
        }


def test_sigkill_at_random_moments_and_resume_equals_an_uninterrupted_run(live_results, tmp_path, cli_env) -> None:
    cfg = load_engine_config(DEMO_CONFIG, account="crash", policy=LINEAR_POLICY)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for d in (reference, crashed):
        shutil.copytree(live_results, d)
    run_live(reference, cfg, interval_minutes=5.0, until=last_bar(reference), install_signals=False)

    port = free_port()
    bridge = subprocess.Popen(
        [sys.executable, "-m", "foxlake.cli", "--results", str(crashed), "bridge", "serve", "--port", str(port)],
        env=cli_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = tmp_path / "stop-reader"
    reader = None
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", bridge, timeout_s=60)
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, f"http://127.0.0.1:{port}", str(crashed), str(stop)],
            env=cli_env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        cmd = [sys.executable, "-m", "tests.live_crash_driver", str(crashed), cfg.model_dump_json(), str(KILLS), "7"]
        driver = subprocess.run(cmd, env=cli_env, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert driver.returncode == 0, driver.stderr[-3000:]
        done = json.loads(driver.stdout.strip().splitlines()[-1])
    finally:
        stop.touch()
        polled = json.loads(reader.communicate(timeout=60)[0]) if reader is not None else None
        bridge.terminate()
        bridge.wait(timeout=10)

    assert done["kills"] == KILLS and done["broker_fills"] >= 3 and done["exitcode"] == 0
    want, got = _book(reference), _book(crashed)
    assert want["equity"].height == got["equity"].height == TOTAL_CYCLES
    for name in want:
        assert want[name].equals(got[name]), name  # fills, orders, positions, cash and equity identical
    assert got["orders"]["client_order_id"].n_unique() == got["orders"].height
    with LedgerReader(crashed, "crash") as led:
        resumes = led.one("select count(*) as n from events where event_type = 'engine_resume'")["n"]
    assert resumes >= KILLS // 2  # most kills came after a committed cycle
    broker = PaperBroker(crashed / "live" / "crash" / "broker.sqlite", cfg.broker)
    try:
        ids = [r[0] for r in broker.con.execute("select client_order_id from orders")]
        assert len(ids) == len(set(ids)) == got["orders"].height  # the broker saw each order once
    finally:
        broker.close()
    assert polled["errors"] == 0, polled
    assert polled["ok"] > 100 and polled["ledger_reads"] > 100, polled
