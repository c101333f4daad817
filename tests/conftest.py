"""Shared fixtures: one real materialization of the asset graph through Dagster into a temporary RESULTS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(REPO / "configs" / "demo.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, *, timeout_s: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail (with the server's log tail) if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"{url} did not answer (exit code {proc.poll()}):\n{tail}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def dagster_instance(tmp_path_factory) -> dg.DagsterInstance:
    """A real, persistent (temp-dir) Dagster instance shared by the session's materializations."""
    home = tmp_path_factory.mktemp("dagster_home")
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def pipeline_results(tmp_path_factory, dagster_instance) -> Path:
    """RESULTS after materializing every asset of the demo config through Dagster (read-only for tests)."""
    from assets.definitions import ALL_ASSETS
    from assets.partitions import lake_run_tags
    from assets.resources import LakeResource
    from ml.config import load_run_config

    results = tmp_path_factory.mktemp("results")
    result = dg.materialize(
        ALL_ASSETS,
        instance=dagster_instance,
        resources={"lake": LakeResource(results_dir=str(results), config_path=DEMO_CONFIG)},
        tags=lake_run_tags(dagster_instance, results, load_run_config(DEMO_CONFIG)),
    )
    assert result.success
    return results


@pytest.fixture
def results_copy(pipeline_results, tmp_path) -> Path:
    """A private copy of the pipeline's RESULTS that a test may modify."""
    dst = tmp_path / "RESULTS"
    shutil.copytree(pipeline_results, dst)
    return dst


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="session")
def live_results(pipeline_results, tmp_path_factory) -> Path:
    """The demo's RESULTS with the market's live bars (the 312 after the history) landed by the feed (read-only)."""
    from live.feed import play
    from ml.config import load_run_config

    dst = tmp_path_factory.mktemp("live") / "RESULTS"
    shutil.copytree(pipeline_results, dst)
    assert play(dst, load_run_config(DEMO_CONFIG), batch=True).landed == 312
    return dst


@pytest.fixture
def live_copy(live_results, tmp_path) -> Path:
    """A private copy of ``live_results`` a test may trade on."""
    dst = tmp_path / "RESULTS"
    shutil.copytree(live_results, dst, ignore=shutil.ignore_patterns("live"))
    return dst


LINEAR_POLICY = (
    "select model_dir from eligible_models where target = 'fwd_ret_5m_from_open' and family in ('Ridge', 'ElasticNet')"
)
"""The demo's two linear models of the planted tradable target: the fastest engine for tests of its mechanics."""


BRIDGE_TOKEN_VALUE = "test-token-0123456789"
TRADED_CYCLES = 80


def _bridge_token():
    from bridge.auth import BridgeToken

    return BridgeToken(BRIDGE_TOKEN_VALUE, "env")


BRIDGE_TOKEN = _bridge_token()


@contextmanager
def serve_bridge(results: Path, account: str = "bridge", token=BRIDGE_TOKEN) -> Iterator[str]:
    """The bridge under uvicorn on 127.0.0.1 in a thread of this process; yields its base URL."""
    import uvicorn

    from bridge.app import create_app

    port = free_port()
    app = create_app(results, account=account, token=token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the bridge did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def traded(live_results, tmp_path_factory) -> Path:
    """RESULTS with account ``bridge``: the linear models paper-traded over TRADED_CYCLES out-of-sample bars
    (read-only for tests: copy it to change it)."""
    from live.config import load_engine_config
    from live.runner import run_live

    results = tmp_path_factory.mktemp("bridge") / "RESULTS"
    shutil.copytree(live_results, results, ignore=shutil.ignore_patterns("live"))
    cfg = load_engine_config(DEMO_CONFIG, account="bridge", policy=LINEAR_POLICY)
    run_live(results, cfg, interval_minutes=5.0, max_cycles=TRADED_CYCLES, install_signals=False)
    return results
