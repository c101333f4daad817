"""Dagster wiring only: assets, checks, resources, sensors; bodies call ``ml`` and ``contracts``."""
