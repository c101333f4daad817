"""The catalog asset: index RESULTS into catalog.duckdb, in the single-writer pool."""

import dagster as dg

from assets.resources import LakeResource
from catalog import build_catalog, sql

CATALOG_POOL = "catalog_writer"


@dg.asset(group_name="catalog", kinds={"duckdb"}, pool=CATALOG_POOL)
def model_catalog(context: dg.AssetExecutionContext, lake: LakeResource, manifest: dict) -> dg.MaterializeResult:
    """RESULTS/catalog.duckdb: runs, models, routing decisions and rejected files, rebuilt from the files."""
    report = build_catalog(lake.results())
    summary = sql(lake.results(), "select count(*) as runs, sum(n_models) as models from run_summary")
    return dg.MaterializeResult(
        metadata={
            "runs": report.runs,
            "models": report.models,
            "routing_rows": report.routing_decisions,
            "rejected": report.rejected,
            "models_total": int(summary["models"][0] or 0),
            "path": dg.MetadataValue.path(report.path),
        },
    )
