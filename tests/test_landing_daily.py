"""Daily bars dropped into the landing zone as CSV go end to end: ingest → features → models → catalog → live engine."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from assets.checks import ALL_CHECKS
from assets.definitions import ALL_ASSETS
from assets.partitions import lake_run_tags
from assets.resources import LakeResource
from catalog import sql
from contracts.manifest import load_manifest
from live.config import EngineConfig
from live.runner import run_live
from ml.config import load_run_config
from ml.ingest import landing_dir, write_landing_csv
from ml.lake import partitions, read_table, table_dir
from ml.synthetic import SyntheticMarketConfig, make_market


def test_daily_csv_goes_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS"
    # a strong daily signal (truth IC 0.14, under the 0.15 plausibility bound), traded from the next day's open
    market = SyntheticMarketConfig(n_symbols=16, n_bars=700, interval_minutes=1440, seed=5, rho_volume=0.18)
    bars = make_market(market)
    cut = bars["ts"].unique().sort()[500]
    write_landing_csv(bars.filter(bars["ts"] <= cut), landing_dir(results) / "2024_part1.csv")
    write_landing_csv(bars.filter(bars["ts"] > cut), landing_dir(results) / "2024_part2.csv")
    config = tmp_path / "daily.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_id": "daily",
                "data_source": "landing",
                "interval_minutes": 1440,
                "targets": [
                    {"horizon_bars": 1, "entry": "next_open"},
                    {"horizon_bars": 1, "delay_bars": 2},
                    {"horizon_bars": 2, "delay_bars": 5},
                ],
                "families": ["LightGBM", "Ridge"],
                "ranking_families": ["Ridge", "ElasticNet"],
                "ranking_params": {"LightGBM": {"num_boost_round": 30}},
                "cv": {"n_folds": 3, "min_train_timestamps": 100},
            }
        )
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        instance=instance,
        resources={"lake": LakeResource(results_dir=str(results), config_path=str(config))},
        tags=lake_run_tags(instance, results, load_run_config(config)),
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert len(partitions(table_dir(results, "bars", 1440))) == 700
    assert len(partitions(table_dir(results, "features", 1440))) == 700
    (manifest_path,) = results.glob("runs/daily/*/manifest.json")
    manifest = load_manifest(manifest_path)
    assert manifest.run_metadata["interval_minutes"] == 1440
    assert manifest.run_metadata["routes"]["fwd_ret_1d_from_open"] == "CROSS_SECTIONAL"
    assert manifest.run_metadata["holdout"]["n_timestamps"] == 140  # the final 20 % of 700 days
    n_models = sql(results, "select count(*) as n from models where interval_minutes = 1440")["n"][0]
    assert n_models == len(list(results.glob("runs/**/model_meta.json"))) > 0
    # the history holds no bar after training: trade its last 10 days, explicitly in-sample and labelled so
    last10 = sorted(read_table(table_dir(results, "bars", 1440))["ts"].unique())[-10]
    cfg = EngineConfig(allow_in_sample=True)
    summary = run_live(results, cfg, interval_minutes=1440.0, start=last10, install_signals=False)
    assert summary.cycles == summary.in_sample_cycles == 10 and summary.models
