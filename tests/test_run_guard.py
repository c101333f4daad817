"""Runs that cannot hang: a `foxlake materialize` SIGKILLed while it holds the catalog pool slot does not block the
next one; a wait for a live holder is reported and bounded; SIGTERM stops a waiting materialize."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.catalog_assets import CATALOG_POOL
from catalog.synthetic import generate
from foxlake.run_guard import HOST_TAG, PID_START_TAG, PID_TAG, owner_tags
from tests.conftest import REPO

SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the yaml reads its storage folder from it
    home.mkdir()
    shutil.copyfile(REPO / "configs" / "dagster.yaml", home / "dagster.yaml")
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _materialize(results: Path, home: Path, *extra: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(home)}
    cmd = [sys.executable, "-m", "foxlake.cli", "--results", str(results), "materialize", "--select", "model_catalog"]
    return subprocess.Popen([*cmd, "--config", SMOKE, *extra], env=env, cwd=REPO, text=True, **popen)


def _holders(instance: dg.DagsterInstance) -> list[str]:
    storage = instance.event_log_storage
    if CATALOG_POOL not in storage.get_concurrency_keys():
        return []
    return [s.run_id for s in storage.get_concurrency_info(CATALOG_POOL).claimed_slots]


def test_a_materialize_killed_while_it_holds_the_catalog_slot_does_not_block_the_next(tmp_path: Path, home: Path):
    results = tmp_path / "RESULTS"
    generate(results, 600, targets_per_run=6, n_symbols=4, families=("LightGBM", "Ridge"), seed=5)  # a slow index
    instance = _instance(home)
    first = _materialize(results, home)
    deadline = time.monotonic() + 120
    while not _holders(instance) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    held = _holders(instance)
    assert held and first.poll() is None, "the first materialize never held the catalog slot"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert _holders(instance) == held  # what a crash leaves: the slot stays claimed by a run nobody runs

    t0 = time.monotonic()
    second = _materialize(results, home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = second.communicate(timeout=180)  # the documented bound: freed as soon as it starts, then one index
    assert second.returncode == 0, err[-3000:]
    assert f"freed the pool slots held by dead run {held[0]}" in err
    assert "materialized model_catalog" in out
    assert instance.get_run_by_id(held[0]).status == dg.DagsterRunStatus.FAILURE
    assert _holders(instance) == []
    assert time.monotonic() - t0 < 180


def _live_holder(instance: dg.DagsterInstance) -> str:
    """A started run, owned by this (live) test process, holding the catalog slot."""
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(job_name="__ASSET_JOB", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=owner_tags())
    )
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(CATALOG_POOL)
    assert storage.claim_concurrency_slot(CATALOG_POOL, run_id, "model_catalog").is_claimed
    return run_id


def test_a_wait_for_a_live_holder_is_reported_and_bounded_and_sigterm_stops_it(tmp_path: Path, home: Path):
    results = tmp_path / "RESULTS"
    generate(results, 20, targets_per_run=2, n_symbols=2, families=("Ridge",), seed=1)
    instance = _instance(home)
    holder = _live_holder(instance)
    assert {PID_TAG, PID_START_TAG, HOST_TAG} <= set(instance.get_run_by_id(holder).tags)

    bounded = _materialize(results, home, "--pool-wait-seconds", "3", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = bounded.communicate(timeout=120)
    assert bounded.returncode == 2, err[-3000:]
    assert f"waiting for a slot of pool '{CATALOG_POOL}', held by run(s) {holder}" in err
    assert f"gave up after 3s waiting for a slot of pool '{CATALOG_POOL}'" in err
    assert f"foxlake runs free {holder}" in err
    assert "materialized" not in out
    assert _holders(instance) == [holder]  # a live run's slot is never taken from it

    waiting = _materialize(results, home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = []
    for line in waiting.stderr:  # blocks until the wait is reported
        lines.append(line)
        if "waiting for a slot" in line:
            break
    assert lines and "waiting for a slot" in lines[-1], "".join(lines)[-3000:]
    t0 = time.monotonic()
    waiting.send_signal(signal.SIGTERM)
    rest = waiting.stderr.read()
    assert waiting.wait(timeout=20) == 130, rest[-3000:]
    assert time.monotonic() - t0 < 20
    assert "stopped: signal SIGTERM" in rest
    stopped = [r for r in instance.get_runs() if r.run_id != holder and r.status == dg.DagsterRunStatus.FAILURE]
    assert len(stopped) == 2  # the given-up run and the stopped one are both marked failed, not left started
    assert _holders(instance) == [holder]
