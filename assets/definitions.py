"""The one Dagster ``Definitions`` of foxlake (``dagster dev -m assets.definitions``)."""

import dagster as dg

from assets.catalog_assets import model_catalog
from assets.checks import ALL_CHECKS
from assets.data import bars, features
from assets.jobs import ingest_job, retrain_job, training_job
from assets.loop_sensors import LOOP_SENSORS
from assets.promotion import champions
from assets.resources import LakeResource
from assets.sensors import catalog_refresh_job, catalog_refresh_sensor
from assets.training import feature_selection, models_and_manifest, routing_decisions, target_ranking

ALL_ASSETS = [
    bars, features, target_ranking, feature_selection, routing_decisions, models_and_manifest, model_catalog, champions
]  # fmt: skip

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[training_job, retrain_job, ingest_job, catalog_refresh_job],
    sensors=[catalog_refresh_sensor, *LOOP_SENSORS],
    resources={"lake": LakeResource()},
    # one process per step by default (the launchpad's "multiprocess"); the loop's sensors ask for "in_process"
    executor=dg.multi_or_in_process_executor,
)
