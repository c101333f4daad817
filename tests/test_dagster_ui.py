"""`make dev`'s Dagster UI: the webserver shows the asset graph and a launch from it materializes a run.

Starts the real ``dagster dev`` (webserver + daemon + code server) on loopback and talks to it through
the same GraphQL API the UI uses.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from contracts.manifest import load_manifest
from tests.conftest import REPO, free_port, wait_for_http

SMOKE_CONFIG = str(REPO / "configs" / "smoke.yaml")

ASSET_GRAPH_QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


@pytest.fixture
def dagster_dev(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "configs" / "dagster.yaml", home / "dagster.yaml")
    results = tmp_path / "RESULTS"
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FOXLAKE_RESULTS": str(results),
        "FOXLAKE_CONFIG": SMOKE_CONFIG,
        "PYTHONPATH": str(REPO),
    }
    foxlake = Path(os.sys.executable).with_name("foxlake")
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen(  # what `make dev` runs: the webserver and the daemon
        [str(foxlake), "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        log.flush()
        wait_for_http(f"{base}/server_info", proc, timeout_s=120, log=tmp_path / "dagster_dev.log")
        yield base, port, results
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:  # a graceful shutdown takes ~10 s; nothing of this instance outlives the test
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _graphql(base: str, query: str) -> dict:
    deadline = time.monotonic() + 60
    while True:  # the code location may still be loading
        body = httpx.post(f"{base}/graphql", json={"query": query}, timeout=30).json()
        if body.get("data") and body["data"].get("assetNodes"):
            return body["data"]
        assert time.monotonic() < deadline, body
        time.sleep(1)


PARTITIONS_QUERY = """{ assetNodeOrError(assetKey: {path: ["%s"]}) { ... on AssetNode {
  partitionKeys partitionStats { numMaterialized numPartitions } } } }"""


def test_dagster_ui_shows_the_graph_and_materializes_it(dagster_dev, tmp_path, monkeypatch) -> None:
    import dagster as dg
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    from assets.partitions import lake_run_tags
    from ml.config import load_run_config

    base, port, results = dagster_dev
    nodes = _graphql(base, ASSET_GRAPH_QUERY)["assetNodes"]
    deps = {n["assetKey"]["path"][-1]: {d["path"][-1] for d in n["dependencyKeys"]} for n in nodes}
    assert deps == {
        "bars": set(),
        "features": {"bars"},
        "target_ranking": {"features"},
        "feature_selection": {"target_ranking"},
        "routing_decisions": {"feature_selection"},
        "models": {"routing_decisions"},
        "manifest": {"routing_decisions"},
        "model_catalog": {"manifest"},
        "champions": {"model_catalog"},
    }

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))  # dagster.yaml's storage reads it
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:  # the days, as the UI's
        days = lake_run_tags(instance, results, load_run_config(SMOKE_CONFIG))  # "add partition" does
    run_id = client.submit_job_execution(
        "training_pipeline",
        tags=days,  # the launchpad's partition range: every day of the smoke market
        repository_location_name="assets.definitions",
        repository_name="__repository__",
        # the steps in the run worker's process (the UI's launchpad offers the same): one import of the
        # libraries instead of one per step process
        run_config={"execution": {"config": {"in_process": {}}}},
    )
    deadline = time.monotonic() + 300
    while (status := client.get_run_status(run_id)) not in (
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
    ):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
    assert status == DagsterRunStatus.SUCCESS
    (manifest_path,) = list(results.glob("runs/smoke/*/manifest.json"))
    assert load_manifest(manifest_path).run_metadata["dagster_run_id"] == run_id
    assert (results / "catalog.duckdb").is_file()
    # the UI shows every day of the lake as a partition of bars and features, each materialized by the run
    lake_days = sorted(p.name.removeprefix("date=") for p in (results / "lake" / "bars" / "interval=5").iterdir())
    for asset in ("bars", "features"):
        node = httpx.post(f"{base}/graphql", json={"query": PARTITIONS_QUERY % asset}, timeout=30).json()
        node = node["data"]["assetNodeOrError"]
        assert node["partitionKeys"] == lake_days
        assert node["partitionStats"] == {"numMaterialized": len(lake_days), "numPartitions": len(lake_days)}
    # `make dev` starts quietly: no superseded command, no second dagster.yaml, no library warning
    started = (tmp_path / "dagster_dev.log").read_text()
    assert "Dagster UI on http://127.0.0.1" in started
    assert not re.search(r"Warning|superseded|in the current folder", started), started[:3000]
