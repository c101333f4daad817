"""The asset jobs the UI, the CLI and the sensors launch."""

import dagster as dg

training_job = dg.define_asset_job(
    "training_pipeline",
    selection=dg.AssetSelection.all(),
    description="Everything from bars to the catalog and the champions; training fans out per target × view × "
    "family. The loop's sensors request it with their reason in the run's tags.",
)
ingest_job = dg.define_asset_job(
    "ingest_landing",
    selection=dg.AssetSelection.assets("bars", "features"),
    description="Ingest the landing zone's new files into the lake's bars, then their features.",
)
