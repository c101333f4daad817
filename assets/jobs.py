"""The asset jobs the UI, the CLI and the sensors launch."""

import dagster as dg

training_job = dg.define_asset_job(
    "training_pipeline",
    selection=dg.AssetSelection.all(),
    description="Everything from bars to the catalog and the champions; training fans out per target × view × family.",
)
retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets("features").downstream(include_self=False),
    description="Training on the lake as it is (ranking to the champions), without re-ingesting: what the loop's "
    "sensors request, with their reason in the run's tags.",
)
ingest_job = dg.define_asset_job(
    "ingest_landing",
    selection=dg.AssetSelection.assets("bars", "features"),
    description="Ingest the landing zone's new files into the lake's bars, then their features.",
)
