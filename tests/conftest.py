"""Shared fixtures: one real materialization of the asset graph through Dagster into a temporary RESULTS."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(REPO / "configs" / "demo.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    from assets.resources import LakeResource

    results = tmp_path_factory.mktemp("results")
    result = dg.materialize(
        ALL_ASSETS,
        instance=dagster_instance,
        resources={"lake": LakeResource(results_dir=str(results), config_path=DEMO_CONFIG)},
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
