"""Dagster wiring only: assets, checks, resources, sensors; bodies call ``ml`` and ``contracts``."""

import warnings

# Dagster's notice, at every import, that an asset option foxlake uses (``backfill_policy``) is in beta: not news
warnings.filterwarnings("ignore", message=r"Parameter `\w+` of function `\w+` is currently in beta")
