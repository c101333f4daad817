"""The one Dagster ``Definitions`` of foxlake (``dagster dev -m assets.definitions``)."""

from __future__ import annotations

import dagster as dg

from assets.catalog_assets import model_catalog
from assets.data import bars, features
from assets.resources import LakeResource
from assets.training import manifest, models, routing_decisions, target_ranking

ALL_ASSETS = [bars, features, target_ranking, routing_decisions, models, manifest, model_catalog]

training_job = dg.define_asset_job("training_pipeline", selection=dg.AssetSelection.assets(*ALL_ASSETS))

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[training_job],
    resources={"lake": LakeResource()},
)
