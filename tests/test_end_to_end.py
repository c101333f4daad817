"""The thin path through every room: Dagster assets → RESULTS → catalog → live loader → bridge over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import pytest

from contracts.bridge import EngineState
from contracts.io import read_json, sha256_file
from contracts.manifest import load_manifest
from contracts.model_meta import load_model_meta
from contracts.paths import get_global_routing_path, get_target_routing_path, get_view_routing_path
from contracts.routing import load_routing
from foxlake.cli import main
from tests.conftest import DEMO_CONFIG, LINEAR_POLICY, REPO, free_port, wait_for_http

SMOKE_CONFIG = str(REPO / "configs" / "smoke.yaml")


def _demo_targets() -> set[str]:
    from ml.config import load_run_config

    return set(load_run_config(DEMO_CONFIG).target_names())


def _run_dirs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("runs/*/*/manifest.json"))


def test_every_artifact_conforms_to_the_spec(pipeline_results: Path) -> None:
    (run_dir,) = _run_dirs(pipeline_results)
    manifest = load_manifest(run_dir / "manifest.json")
    metas = sorted(run_dir.glob("targets/*/models/**/model_meta.json"))
    assert metas, "no model was trained"
    panel_columns = set(pl.read_parquet_schema(next(pipeline_results.glob("lake/features/**/*.parquet"))))
    for path in metas:
        meta = load_model_meta(path)
        assert meta.feature_list == sorted(meta.feature_list)
        assert set(meta.feature_list) <= panel_columns
        assert not any(f.startswith("fwd_ret_") for f in meta.feature_list)
        model_file = path.parent / meta.model_file
        assert sha256_file(model_file) == meta.model_checksum
        assert meta.interval_minutes == 5.0
        assert path.parent.name == f"family={meta.family}"
        view_dir = path.parent.parent if meta.symbol is None else path.parent.parent.parent
        assert view_dir.name == f"view={meta.view}"
        for extra in ("fingerprints.json", "reproducibility.json"):
            assert (path.parent / extra).is_file()
        assert read_json(path.parent / "fingerprints.json")["model_sha256"] == meta.model_checksum
        # manifest rule 1 and 3: the target is indexed with the family that trained
        entry = manifest.target_index[meta.target]
        assert meta.family in entry.families_trained
        assert entry.status == "complete"
    routing = load_routing(get_global_routing_path(run_dir)).root
    assert set(routing) == set(manifest.experiment_config and _demo_targets())
    for target, decision in routing.items():
        assert load_routing(get_target_routing_path(run_dir, target)).root[target] == decision
        for view in decision.views():
            assert load_routing(get_view_routing_path(run_dir, target, view)).root[target] == decision
        selected = read_json(run_dir / "targets" / target / "feature_selection" / "selected_features.json")
        assert set(selected) == {"CROSS_SECTIONAL", "SYMBOL_SPECIFIC"}
    # the demo's promise: >= 3 trained targets, all six feature families, a ranker and a raw-sequence model (on the
    # ranking target), both views, every route, noise blocked
    assert len(manifest.target_index) >= 3
    families = {f for e in manifest.target_index.values() for f in e.families_trained}
    assert families == {"LightGBM", "XGBoost", "CatBoost", "Ridge", "ElasticNet", "MLP", "LightGBMRanker", "LSTM"}
    modes = {(m.family, m.input_mode, bool(m.cross_sectional_ranking)) for m in map(load_model_meta, metas)}
    assert {("LSTM", "raw_sequence", True), ("LightGBMRanker", "features", True)} <= modes
    views = {load_model_meta(p).view for p in metas}
    assert views == {"CROSS_SECTIONAL", "SYMBOL_SPECIFIC"}
    assert {d.route for d in routing.values()} == {"CROSS_SECTIONAL", "SYMBOL_SPECIFIC", "BOTH", "BLOCKED"}
    for noise in ("fwd_ret_15m_delay15m", "fwd_ret_30m_delay30m"):
        assert routing[noise].route == "BLOCKED"
    # the run records the holdout no decision read, and every model reports its metrics on it
    window = manifest.run_metadata["holdout"]
    assert window["n_timestamps"] == 608 and window["start"] > window["development_start"]
    for path in metas:
        meta = load_model_meta(path)
        extra = meta.metrics.model_extra
        assert extra["evaluated_on"] == "holdout" and extra["holdout_start"] == window["start"]
        assert {"cv_mean_IC", "net_spread_bps", "turnover_frac", "ic_coverage"} <= set(extra)
        assert meta.research_only == (meta.target == "fwd_ret_5m")
        repro = read_json(path.parent / "reproducibility.json")
        assert repro["holdout"] == window and repro["train_range"]["end"] < window["start"]
    ss_paths = [p for p in metas if "view=SYMBOL_SPECIFIC" in str(p)]
    assert all(f"symbol={load_model_meta(p).symbol}" in str(p) for p in ss_paths)
    assert manifest.run_metadata["dagster_run_id"]
    assert manifest.config_digest and len(manifest.config_digest) == 64


def _foxlake(args: list[str], results: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foxlake.cli", "--results", str(results), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_catalog_counts_every_model_meta(pipeline_results: Path, cli_env: dict) -> None:
    n_files = len(list(pipeline_results.glob("runs/**/model_meta.json")))
    out = _foxlake(["catalog", "sql", "select count(*) as n from models", "--json"], pipeline_results, cli_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": n_files}]
    table = _foxlake(
        ["catalog", "sql", "select target, route from routing_decisions where scope = 'global'"],
        pipeline_results,
        cli_env,
    )
    assert re.search(r"fwd_ret_15m_delay15m +\| BLOCKED", table.stdout), table.stdout


def test_loader_picks_by_sql_and_live_features_match_training(pipeline_results: Path) -> None:
    from live.features import FeatureBuffer
    from live.loader import load_selected
    from ml.lake import read_table, table_dir

    models, refused = load_selected(pipeline_results, "holdout_per_family", interval_minutes=5.0, strict=True)
    assert not refused and models
    model = next(m for m in models if m.meta.input_mode == "features")  # the feature path (raw sequences: elsewhere)
    assert model.checksum_status == "ok"
    bars = read_table(table_dir(pipeline_results, "bars", 5))
    ts = bars["ts"].max()
    buffer = FeatureBuffer(model.meta.feature_list)
    stamps = bars["ts"].unique().sort()
    for t in stamps[-buffer.history_bars - 5 :]:  # bar by bar, as the engine feeds it; older bars fall out
        buffer.push(bars.filter(pl.col("ts") == t))
    live_rows = buffer.rows()
    train_rows = read_table(table_dir(pipeline_results, "features", 5)).filter(pl.col("ts") == ts).sort("symbol")
    cols = model.meta.feature_list
    assert live_rows.symbols == train_rows["symbol"].to_list() and live_rows.symbols
    X, complete = live_rows.matrix(cols)
    assert abs(X - train_rows.select(cols).to_numpy()).max() < 1e-9
    assert complete.all()
    assert len(model.predict(X)) == len(live_rows.symbols)


def test_a_tampered_model_file_is_refused_in_every_mode_and_flagged_in_the_catalog(results_copy: Path) -> None:
    from catalog import build_catalog, sql
    from live.loader import ModelLoadError, load_model

    meta_path = sorted(results_copy.glob("runs/**/view=CROSS_SECTIONAL/family=LightGBM/model_meta.json"))[0]
    model_file = meta_path.parent / load_model_meta(meta_path).model_file
    model_file.write_text(model_file.read_text() + "\n# tampered\n")
    for strict in (True, False):  # the catalog hashed other bytes
        with pytest.raises(ModelLoadError, match="bytes differ from the catalog's checksum"):
            load_model(results_copy, meta_path.parent, strict=strict, interval_minutes=5.0)
    build_catalog(results_copy)
    rel = meta_path.parent.relative_to(results_copy).as_posix()
    flags = sql(results_copy, "select model_dir, checksum_ok from models")
    assert flags.filter(flags["model_dir"] == rel)["checksum_ok"].to_list() == [False]
    assert flags["checksum_ok"].sum() == flags.height - 1
    for strict in (True, False):  # indexed as it is now: it still is not the model its meta describes
        with pytest.raises(ModelLoadError, match="does not match model_meta's model_checksum"):
            load_model(results_copy, meta_path.parent, strict=strict, interval_minutes=5.0)
    # the default policy never selects a model whose checksum is wrong
    assert rel not in sql(results_copy, "select model_dir from best_models")["model_dir"].to_list()


def test_interval_mismatch_is_refused(pipeline_results: Path) -> None:
    from live.loader import ModelLoadError, load_model

    meta_path = next(pipeline_results.glob("runs/**/model_meta.json"))
    with pytest.raises(ModelLoadError, match="1440.0-minute"):
        load_model(pipeline_results, meta_path.parent, interval_minutes=1440.0)
    with pytest.raises(ModelLoadError, match="interval_minutes is required"):
        load_model(pipeline_results, meta_path.parent, interval_minutes=None)  # no way to skip the check


def test_a_model_that_takes_another_number_of_features_than_its_feature_list_is_refused(results_copy: Path) -> None:
    from catalog import build_catalog
    from contracts.io import write_atomic_json
    from live.loader import ModelLoadError, load_model

    meta_path = sorted(results_copy.glob("runs/**/view=CROSS_SECTIONAL/family=LightGBM/model_meta.json"))[0]
    doc = read_json(meta_path)
    n = doc["n_features"]
    doc["feature_list"], doc["n_features"] = doc["feature_list"][:-1], n - 1
    write_atomic_json(meta_path, doc)
    with pytest.raises(ModelLoadError, match="changed since it was indexed"):
        load_model(results_copy, meta_path.parent, interval_minutes=5.0)
    build_catalog(results_copy)  # indexed as it is now: the model itself still takes n features
    with pytest.raises(ModelLoadError, match=f"takes {n} features but model_meta.feature_list names {n - 1}"):
        load_model(results_copy, meta_path.parent, interval_minutes=5.0)


def test_daily_bars_in_a_5_minute_lake_are_refused_at_live_load(results_copy: Path) -> None:
    """The live side measures the bars' interval instead of trusting the declared one (the original's bug)."""
    from live.config import EngineConfig
    from live.runner import run_live
    from ml.lake import read_table, table_dir, write_partitions
    from ml.synthetic import SyntheticMarketConfig, make_market

    lake = table_dir(results_copy, "bars", 5)
    daily = make_market(SyntheticMarketConfig(n_symbols=4, n_bars=60, interval_minutes=1440, seed=3))
    shutil.rmtree(lake)
    write_partitions(daily, lake)
    assert read_table(lake)["ts"].dt.hour().unique().to_list() == [21]
    with pytest.raises(ValueError, match=r"declared interval 5 minutes, but its bars are 1440 minutes apart"):
        run_live(results_copy, EngineConfig(allow_in_sample=True), interval_minutes=5.0, install_signals=False)


def test_the_demo_catalog_answers_with_holdout_figures_and_live_picks_by_them(pipeline_results: Path) -> None:
    from catalog import sql
    from live.loader import select_models

    best = sql(
        pipeline_results,
        "select target, view, symbol, family, mean_ic, cv_mean_ic, net_spread_bps, t_stat, evaluated_on, "
        "research_only, model_dir from best_models order by target, view, symbol",
    )
    assert best.height > 0 and set(best["evaluated_on"]) == {"holdout"}
    assert best["cv_mean_ic"].is_not_null().all() and best["net_spread_bps"].is_not_null().all()
    assert (best["mean_ic"] > 0).all() and (best["t_stat"] >= 2.0).all()  # the floor
    assert {"fwd_ret_5m_from_open", "fwd_ret_5m_delay5m", "fwd_ret_5m_delay10m"} <= set(best["target"])
    assert best.filter(best["target"] == "fwd_ret_5m")["research_only"].to_list() == [True]
    picked = set(select_models(pipeline_results, "holdout_best_per_view", 5.0))
    assert picked == set(best.filter(~best["research_only"])["model_dir"])  # live picks what the holdout ranks
    metas = [load_model_meta(pipeline_results / d / "model_meta.json") for d in picked]
    assert all(m.metrics.model_extra["evaluated_on"] == "holdout" for m in metas)
    assert not any(m.research_only for m in metas) and all(m.fit_scope == "pre_holdout" for m in metas)


def test_paper_trading_then_bridge_serves_its_state_over_http(results_copy: Path, cli_env: dict) -> None:
    assert main(["--results", str(results_copy), "market", "play", "--bars", "30", "--config", DEMO_CONFIG]) == 0
    run = ["live", "run", "--max-cycles", "20", "--json", "--config", DEMO_CONFIG, "--policy", LINEAR_POLICY]
    out = _foxlake(run, results_copy, cli_env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    run, rep = doc["run"], doc["report"]
    assert run["cycles"] == rep["cycles"] == 20 and run["in_sample_cycles"] == 0 and run["models"]
    assert run["first_ts"] > run["first_tradable"]  # out of sample: after everything the models' run saw
    assert rep["fills"] > 0 and rep["error_events"] == 0

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "foxlake.cli", "--results", str(results_copy), "bridge", "serve", "--port", str(port)],
        env=cli_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", server, timeout_s=30)
        state = httpx.get(f"{base}/api/state", timeout=5).json()
        EngineState.model_validate(state)
        assert state["cycle_count"] == 20
        assert state["status"] == "stopped" and state["current_stage"] == "idle"
        assert state["last_cycle"] is not None and state["uptime_seconds"] > 0
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_bridge_without_an_engine_says_stopped(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bridge.app import create_app

    state = TestClient(create_app(tmp_path)).get("/api/state").json()
    assert state["status"] == "stopped" and state["cycle_count"] == 0 and state["last_cycle"] is None


def test_rematerializing_models_alone_makes_a_complete_run_that_records_its_upstream(
    dagster_instance, tmp_path: Path
) -> None:
    import dagster as dg

    from assets.definitions import ALL_ASSETS
    from assets.partitions import lake_run_tags
    from assets.resources import LakeResource
    from ml.config import load_run_config

    results = tmp_path / "RESULTS"
    lake = {"lake": LakeResource(results_dir=str(results), config_path=SMOKE_CONFIG)}
    days = lake_run_tags(dagster_instance, results, load_run_config(SMOKE_CONFIG))
    assert dg.materialize(ALL_ASSETS, instance=dagster_instance, resources=lake, tags=days).success
    (first,) = _run_dirs(results)
    # the upstream pointers in the IO manager name the first run's directory: the new run reuses its ranking and
    # routing
    res = dg.materialize(
        ALL_ASSETS,
        selection=dg.AssetSelection.assets("models").required_multi_asset_neighbors(),  # as the UI does
        instance=dagster_instance,
        resources=lake,
    )
    assert res.success
    new = [d for d in _run_dirs(results) if d.name != first.name]
    assert len(new) == 1
    manifest = load_manifest(new[0] / "manifest.json")
    assert manifest.run_metadata["reused_from"].endswith(first.name)
    assert (new[0] / "globals" / "routing_decisions.json").is_file()
    assert all(e.status == "complete" for e in manifest.target_index.values())


def test_the_holdout_asset_check_fails_a_model_scored_elsewhere(results_copy: Path) -> None:
    from assets.checks import models_scored_on_the_holdout
    from contracts.io import write_atomic_json

    (run_dir,) = _run_dirs(results_copy)
    assert models_scored_on_the_holdout({"run_dir": str(run_dir)}).passed
    meta_path = next(run_dir.glob("targets/*/models/**/model_meta.json"))
    doc = read_json(meta_path)
    doc["metrics"]["evaluated_on"] = "cv"
    write_atomic_json(meta_path, doc)
    result = models_scored_on_the_holdout({"run_dir": str(run_dir)})
    assert not result.passed and "not the run's holdout figures" in result.metadata["problems"].value
