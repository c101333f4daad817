"""Materialize the asset graph through Dagster (a persistent instance, so runs show in the UI)."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

from assets.checks import ALL_CHECKS
from assets.definitions import ALL_ASSETS
from assets.partitions import lake_run_tags
from assets.resources import LakeResource
from foxlake.dagster_env import instance
from foxlake.run_guard import RunGuardConfig, guarded_run


def materialize_all(
    results: Path, config_path: str, selection: list[str] | None = None, guard: RunGuardConfig | None = None
) -> dict:
    """Run the assets (all, or the named ones with their upstream values reused) and report per asset.

    The run is guarded (:mod:`foxlake.run_guard`): slots of dead runs are freed, a wait for a live one is reported
    and bounded by ``guard.wait_limit_seconds``, SIGINT and SIGTERM stop it."""
    known = {k.to_user_string() for a in ALL_ASSETS for k in a.keys}
    unknown = sorted(set(selection or []) - known)
    if unknown:
        raise SystemExit(f"unknown asset(s) {unknown}; known: {sorted(known)}")
    t0 = time.perf_counter()
    inst = instance()

    lake = LakeResource(results_dir=str(results), config_path=config_path)
    partitioned = {k.to_user_string() for a in ALL_ASSETS if a.partitions_def is not None for k in a.keys}
    day_tags = lake_run_tags(inst, results, lake.run_config()) if not selection or partitioned & set(selection) else {}

    def launch(tags: dict[str, str]) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=dg.AssetSelection.assets(*selection).required_multi_asset_neighbors() if selection else None,
            instance=inst,
            resources={"lake": lake},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=True,
            tags={**tags, **day_tags},
        )

    result = guarded_run(inst, launch, guard or RunGuardConfig())
    materialized = list(dict.fromkeys(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()))
    return {
        "run_id": result.run_id,
        "assets": materialized,
        "seconds": time.perf_counter() - t0,
        "success": result.success,
    }
