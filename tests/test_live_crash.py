"""Crash safety: the engine killed with SIGKILL at 30 random moments of a replay and resumed each time ends with the
fills, positions, cash and equity of an uninterrupted run of the same bars; no client order id twice; fills the
broker made while the engine was dead are reconciled; a reader polling /api/state and the ledger every 10 ms all
the while sees no error."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from live.broker.paper import PaperBroker
from live.config import EngineConfig, load_engine_config
from live.ledger.reader import LedgerReader
from live.runner import run_live
from ml.lake import read_table, table_dir
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY, REPO, free_port, wait_for_http

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


def _engine(ctx, results: Path, cfg: EngineConfig, max_cycles: int | None = None):
    """Start an engine process (forked from a server that has the libraries imported: a restart costs no import)."""
    kwargs = {"interval_minutes": 5.0, "max_cycles": max_cycles}
    proc = ctx.Process(target=run_live, args=(str(results), cfg), kwargs=kwargs)
    proc.start()
    return proc


def _cycles(results: Path) -> int:
    path = results / "live" / "crash" / "ledger.sqlite"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from cycles").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


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


def _broker_fills_while_dead(results: Path, cfg: EngineConfig, rng: random.Random) -> bool:
    """When the engine died after its cycle and its orders reached the broker, let the broker fill them at the
    next bar (as a venue does while the engine is down). Whether it did."""
    with LedgerReader(results, "crash") as led:
        last = led.one("select cycle_id, ts from cycles order by cycle_id desc limit 1")
        if last is None:
            return False
        ids = led.frame("select client_order_id from orders where cycle_id = ?", (last["cycle_id"],))
        universe = json.loads(led.meta()["universe"])
    broker = PaperBroker(results / "live" / "crash" / "broker.sqlite", cfg.broker)
    try:
        ids = ids["client_order_id"].to_list() if ids.height else []
        if not ids or broker.last_bar() != last["ts"] or broker.known_orders(ids) != set(ids):
            return False
        bars = read_table(table_dir(results, "bars", 5)).with_columns(
            pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("iso")
        )
        later = bars.filter((pl.col("iso") > last["ts"]) & pl.col("symbol").is_in(universe))
        if later.is_empty():
            return False
        nxt = later.filter(pl.col("iso") == later["iso"].min())
        broker.process_bar(
            nxt["iso"][0],
            dict(zip(nxt["symbol"], nxt["open"], strict=True)),
            dict(zip(nxt["symbol"], nxt["volume"], strict=True)),
        )
        return True
    finally:
        broker.close()


def test_sigkill_at_random_moments_and_resume_equals_an_uninterrupted_run(live_results, tmp_path, cli_env) -> None:
    cfg = load_engine_config(DEMO_CONFIG, account="crash", policy=LINEAR_POLICY)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for d in (reference, crashed):
        shutil.copytree(live_results, d)
    run_live(reference, cfg, interval_minutes=5.0, install_signals=False)

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
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the fork server forks no BLAS threads
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["live.runner", "live.report", "ml.families.linear_family", "sklearn.linear_model"])
        rng = random.Random(20261202)
        kills = broker_fills = 0
        stopped_cleanly: dict[int, bool] = {}
        while kills < KILLS:
            before = _cycles(crashed)
            clean = kills % 5 == 4 and not stopped_cleanly.get(kills)  # now and then: stop at a cycle boundary
            stopped_cleanly[kills] = clean
            proc = _engine(ctx, crashed, cfg, max_cycles=rng.randint(1, 4) if clean else None)
            if clean:
                proc.join(60)
                assert proc.exitcode == 0
                broker_fills += _broker_fills_while_dead(crashed, cfg, rng)
                continue
            target = before + rng.randint(0, 5)  # a random cycle of the replay, then a random moment in it
            deadline = time.monotonic() + 60
            while proc.is_alive() and _cycles(crashed) < target and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.06))
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.join(30)
            assert _cycles(crashed) < 312, "the replay ended before the kills did: make the kills come sooner"
            broker_fills += _broker_fills_while_dead(crashed, cfg, rng)
        proc = _engine(ctx, crashed, cfg)
        proc.join(300)
        assert proc.exitcode == 0
    finally:
        stop.touch()
        polled = json.loads(reader.communicate(timeout=60)[0]) if reader is not None else None
        bridge.terminate()
        bridge.wait(timeout=10)

    assert kills == KILLS and broker_fills >= 3
    want, got = _book(reference), _book(crashed)
    assert want["equity"].height == got["equity"].height == 312
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
