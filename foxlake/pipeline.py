"""Materialize the asset graph through Dagster: the ``training_pipeline`` job of the one ``Definitions``, on the
persistent instance with the multiprocess executor, as the UI launches it (the run shows under its job).

Step processes fork from a server that imported the definitions and the config's model libraries once
(multiprocessing's forkserver: one per CLI process, started by its first run). Dagster's console lines and the
steps' output go to the run log (:mod:`foxlake.log_files`); the terminal shows foxlake's progress and its summary."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from assets.partitions import lake_run_tags
from assets.resources import LakeResource
from foxlake.dagster_env import instance
from foxlake.log_files import console_to_log
from foxlake.run_guard import RunGuardConfig, guarded_run
from foxlake.step_errors import step_failure
from ml.config import RunConfig
from ml.families import family_modules

JOB = "training_pipeline"


def training_pipeline() -> dg.JobDefinition:
    """The ``training_pipeline`` job of ``assets.definitions`` (a module-level function, so each step process of the
    multiprocess executor can rebuild it)."""
    from assets.definitions import defs

    return defs.resolve_job_def(JOB)


def asset_keys(selection: list[str]) -> list[dg.AssetKey]:
    """The keys to run for ``selection`` (asset names), with the outputs each one's multi-asset must produce too.

    Raises:
        KeyError: an unknown asset name (the known ones are listed).
    """
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    known = {k.to_user_string() for k in graph.get_all_asset_keys()}
    unknown = sorted(set(selection) - known)
    if unknown:
        raise KeyError(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    keys = dg.AssetSelection.assets(*selection).required_multi_asset_neighbors().resolve(graph)
    return sorted(keys, key=lambda k: k.to_user_string())


def executor_config(preload: list[str], workers: int | None = None) -> dict:
    """The multiprocess executor: at most ``workers`` step processes (default one per core), forked from a server
    that imported ``preload`` once (a step then starts without the seconds of importing dagster, polars, torch …)."""
    return {
        "multiprocess": {
            "max_concurrent": workers or os.cpu_count() or 1,
            "start_method": {"forkserver": {"preload_modules": preload}},
        }
    }


STEP_MODULES = (
    "assets.definitions",
    "dagster._core.storage.sqlite_storage",  # the instance's storage (sqlalchemy): most of a step's start otherwise
    "dagster._core.storage.local_compute_log_manager",
)


def preload_modules(cfg: RunConfig) -> list[str]:
    """What every step imports (:data:`STEP_MODULES`) and the modules of every family ``cfg`` trains or ranks with."""
    names = {*cfg.families, *cfg.ranking_families, *cfg.ss_families, *(f for fs in cfg.target_families.values()
             for f in fs)}  # fmt: skip
    return [*STEP_MODULES, *sorted(family_modules(names))]


def materialize_all(
    results: Path, config_path: str, selection: list[str] | None = None, guard: RunGuardConfig | None = None
) -> dict:
    """Run the assets (all, or the named ones with their upstream values reused) and report per asset.

    The run is guarded (:mod:`foxlake.run_guard`): slots of dead runs are freed, a wait for a live one is reported
    and bounded by ``guard.wait_limit_seconds``, SIGINT and SIGTERM stop it (and its step processes)."""
    keys = asset_keys(selection) if selection else None
    t0 = time.perf_counter()
    inst = instance()
    lake = LakeResource(results_dir=str(results), config_path=config_path)
    partitioned = {"bars", "features"}
    runs_partitions = not selection or bool(partitioned & set(selection))
    cfg = lake.run_config()
    day_tags = lake_run_tags(inst, results, cfg) if runs_partitions else {}
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "resources": {"lake": {"config": {"results_dir": str(results), "config_path": config_path}}},
        "execution": {"config": executor_config(preload_modules(cfg), cfg.workers)},
    }

    def launch(tags: dict[str, str]) -> dg.ExecuteJobResult:
        with dg.execute_job(
            dg.reconstructable(training_pipeline),
            instance=inst,
            run_config=run_config,
            tags={**tags, **day_tags},
            asset_selection=keys,
        ) as result:
            return result

    with console_to_log(results) as terminal:
        result = guarded_run(inst, launch, guard or RunGuardConfig(), out=terminal)
    if not result.success:
        raise step_failure(result)
    materialized = list(dict.fromkeys(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()))
    return {
        "run_id": result.run_id,
        "job": JOB,
        "assets": materialized,
        "seconds": time.perf_counter() - t0,
        "success": result.success,
    }
