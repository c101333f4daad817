"""The crash test's driver, run in its own interpreter (``python -m tests.live_crash_driver``): it owns a fork server
that has the engine's libraries imported, so each of the many engine restarts costs a fork, not an import. It kills
the engine with SIGKILL at random moments of a replay, resumes it each time, now and then lets the broker fill while
the engine is down, then runs the replay to its end, and prints what it did as JSON."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from live.broker.paper import PaperBroker
from live.config import EngineConfig
from live.ledger.reader import LedgerReader
from live.runner import run_live
from live.sources import LakeBars

TOTAL_CYCLES = 200  # the bars the test replays (of the 312 live bars)


def _engine(ctx, results: Path, cfg: EngineConfig, max_cycles: int | None = None):
    until = last_bar(results)
    """Start an engine process (forked from a server that has the libraries imported: a restart costs no import)."""
    kwargs = {"interval_minutes": 5.0, "max_cycles": max_cycles, "until": until}
    proc = ctx.Process(target=run_live, args=(str(results), cfg), kwargs=kwargs)
    proc.start()
    return proc


def last_bar(results: Path):
    """The TOTAL_CYCLES-th of the 312 live bars after the history: where the replay ends."""
    return LakeBars(results, 5.0).timestamps()[-312 + TOTAL_CYCLES - 1]


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
        start = datetime.fromisoformat(last["ts"])
        bars = (
            LakeBars(results, 5.0)
            .between(start, start + timedelta(days=4))
            .with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00").alias("iso"))
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


def main(results: Path, cfg: EngineConfig, kills_wanted: int, seed: int) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the fork server forks no BLAS threads
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["live.runner", "live.report", "ml.families.linear_family", "sklearn.linear_model"])
    rng = random.Random(seed)
    kills = broker_fills = 0
    stopped_cleanly: dict[int, bool] = {}
    while kills < kills_wanted:
        before = _cycles(results)
        clean = kills % 5 == 4 and not stopped_cleanly.get(kills)  # now and then: stop at a cycle boundary
        stopped_cleanly[kills] = clean
        proc = _engine(ctx, results, cfg, max_cycles=rng.randint(1, 4) if clean else None)
        if clean:
            proc.join(60)
            if proc.exitcode != 0:
                raise SystemExit(f"a clean stop exited with {proc.exitcode}")
            broker_fills += _broker_fills_while_dead(results, cfg, rng)
            continue
        target = before + rng.randint(0, 5)  # a random cycle of the replay, then a random moment in it
        deadline = time.monotonic() + 60
        while proc.is_alive() and _cycles(results) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.06))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.join(30)
        if _cycles(results) >= TOTAL_CYCLES:
            raise SystemExit("the replay ended before the kills did: make the kills come sooner")
        broker_fills += _broker_fills_while_dead(results, cfg, rng)
    proc = _engine(ctx, results, cfg)
    proc.join(300)
    return {"kills": kills, "broker_fills": broker_fills, "exitcode": proc.exitcode}


if __name__ == "__main__":
    root, cfg_json, n_kills, rng_seed = sys.argv[1:5]
    print(json.dumps(main(Path(root), EngineConfig.model_validate_json(cfg_json), int(n_kills), int(rng_seed))))
