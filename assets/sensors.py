"""Sensors: refresh the catalog when model files appear outside Dagster."""

from __future__ import annotations

import dagster as dg

from assets.catalog_assets import model_catalog
from assets.resources import LakeResource
from catalog.indexer import catalog_path
from catalog.scan import newest_source_mtime

catalog_refresh_job = dg.define_asset_job(
    "catalog_refresh",
    selection=dg.AssetSelection.assets(model_catalog),
    description="Index new or changed model files into RESULTS/catalog.duckdb (incremental).",
)


@dg.sensor(
    job=catalog_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a catalog refresh when a model_meta.json or manifest.json under RESULTS/runs is newer "
    "than the catalog's last index and than the newest file this sensor has already acted on (its cursor).",
)
def catalog_refresh_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Cursor: the newest mtime (ns) of a model_meta/manifest file already requested."""
    root = lake.results()
    newest = newest_source_mtime(root)
    if newest is None:
        return dg.SkipReason(f"no model_meta.json or manifest.json under {root / 'runs'}")
    seen = int(context.cursor) if context.cursor else 0
    try:
        indexed = catalog_path(root).stat().st_mtime_ns
    except FileNotFoundError:
        indexed = 0
    if newest <= max(seen, indexed):
        return dg.SkipReason("the catalog is up to date with the model files")
    context.update_cursor(str(newest))
    return dg.RunRequest(run_key=f"catalog-{newest}", tags={"foxlake/reason": "model files newer than the catalog"})
