"""The catalog asset: bring RESULTS/catalog.duckdb up to date with the files, in the single-writer pool."""

import dagster as dg

from assets.resources import LakeResource
from catalog import build_catalog

CATALOG_POOL = "catalog_writer"


@dg.asset(group_name="catalog", kinds={"duckdb"}, pool=CATALOG_POOL, deps=["manifest"])
def model_catalog(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """RESULTS/catalog.duckdb: runs, models, routing decisions, artifacts, rejected files and aliases.

    Incremental: only new or changed files are read; readers keep working while it writes (the new file is
    swapped in atomically). It depends on ``manifest`` for ordering only, so the refresh sensor can run it
    alone when model files appear outside Dagster.
    """
    report = build_catalog(lake.results())
    context.log.info(
        f"catalog {report.mode}: read {report.model_dirs_read} model dir(s) and {report.files_read} other file(s) "
        f"in {report.seconds:.2f}s"
    )
    return dg.MaterializeResult(
        metadata={
            "mode": report.mode,
            "runs": report.runs,
            "models": report.models,
            "routing_rows": report.routing_decisions,
            "rejected": report.rejected,
            "aliases": report.aliases,
            "models_total": report.models,
            "model_dirs_read": report.model_dirs_read,
            "seconds": round(report.seconds, 3),
            "path": dg.MetadataValue.path(report.path),
        },
    )
