"""Storage resources: where RESULTS lives and which run config drives training."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from contracts.paths import get_run_dir, results_root
from ml.config import RunConfig, load_run_config
from ml.run import run_instance_id

DEFAULT_CONFIG = "configs/demo.yaml"


class LakeResource(dg.ConfigurableResource):
    """The RESULTS folder and the run config.

    Attributes:
        results_dir: RESULTS root; empty means ``$FOXLAKE_RESULTS`` or ``./RESULTS``.
        config_path: run config YAML; empty means ``$FOXLAKE_CONFIG`` or ``configs/demo.yaml``.
    """

    results_dir: str = ""
    config_path: str = ""

    def results(self) -> Path:
        return results_root(self.results_dir or None).resolve()

    def run_config(self) -> RunConfig:
        return load_run_config(self.config_path or os.environ.get("FOXLAKE_CONFIG") or DEFAULT_CONFIG)

    def run_dir(self, context: dg.AssetExecutionContext, cfg: RunConfig) -> Path:
        """This Dagster run's training directory: ``runs/<run_id>/<created>_<dagster run id[:8]>``."""
        record = context.instance.get_run_record_by_id(context.run_id)
        created = record.create_timestamp if record else datetime.now(UTC)
        path = get_run_dir(self.results(), cfg.run_id, run_instance_id(created, context.run_id))
        path.mkdir(parents=True, exist_ok=True)
        return path
