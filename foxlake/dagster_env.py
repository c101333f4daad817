"""Dagster instance for the CLI: ``$DAGSTER_HOME`` or ``./.dagster/home``, configured by ``configs/dagster.yaml``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

INSTANCE_YAML = Path(__file__).resolve().parents[1] / "configs" / "dagster.yaml"
"""The instance's settings (storage, pools, run monitoring), copied into ``DAGSTER_HOME`` where Dagster reads them."""


def ensure_dagster_home(repo_yaml: Path = INSTANCE_YAML) -> Path:
    """Point ``DAGSTER_HOME`` at a folder holding :data:`INSTANCE_YAML` (default ``.dagster/home``)."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster/home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if repo_yaml.exists() and repo_yaml.resolve() != (home / "dagster.yaml").resolve():
        shutil.copyfile(repo_yaml, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()
