"""The loop's sensors, one tick at a time (``build_sensor_context``), and the features' automation condition."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import yaml

from assets.data import bars, features
from assets.loop_sensors import landing_sensor, retrain_on_decay, retrain_on_new_data
from assets.partitions import LAKE_DAYS
from assets.resources import LakeResource
from live.feed import play
from live.ledger.reader import LedgerReader
from ml.config import load_run_config
from ml.ingest import ingest_landing, landing_dir, read_ledger, rejected_dir, write_landing_csv
from ml.synthetic import SyntheticMarketConfig, make_market
from tests.conftest import DEMO_CONFIG
from tests.test_decay import HOLDOUT_IC, _ledger, _realise


def _config(tmp_path: Path, **sections) -> str:
    doc = yaml.safe_load(Path(DEMO_CONFIG).read_text())
    doc.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _tick(sensor, results: Path, config: str, cursor: str | None = None, instance=None):
    lake = LakeResource(results_dir=str(results), config_path=config)
    instance = instance or dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(cursor=cursor, resources={"lake": lake}, instance=instance) as ctx:
        out = sensor(ctx)
        return out, ctx.cursor


def _requests(out) -> list[dg.RunRequest]:
    if isinstance(out, dg.SkipReason):
        return []
    return [out] if isinstance(out, dg.RunRequest) else list(out.run_requests or [])


def test_landing_files_are_requested_once_by_digest_and_a_bad_one_is_rejected_with_its_reason(tmp_path):
    results = tmp_path / "RESULTS"
    config = _config(tmp_path, data_source="landing", interval_minutes=5)
    market = make_market(SyntheticMarketConfig(n_symbols=4, n_bars=200, interval_minutes=5, seed=1))
    stamps = market["ts"].unique().sort()
    land = landing_dir(results)
    write_landing_csv(market.filter(market["ts"] <= stamps[99]), land / "001_history.csv")
    write_landing_csv(market.filter(market["ts"] > stamps[99]), land / "003_more.csv")
    lines = (land / "001_history.csv").read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[2], "abc", 1)  # column 'open' of the file's line 3
    (land / "002_bad.csv").write_text("\n".join(lines) + "\n")

    out, _ = _tick(landing_sensor, results, config)
    (first,) = _requests(out)  # one run ingests every good file pending, over their days
    (added,) = out.dynamic_partitions_requests
    days = sorted(market["ts"].dt.date().cast(str).unique().to_list())
    assert added.partition_keys == days and first.tags["dagster/asset_partition_range_start"] == days[0]
    assert first.tags["foxlake/landing_files"] == "001_history.csv,003_more.csv"
    assert first.run_key == f"landing-{first.tags['foxlake/sha256']}" and first.tags["foxlake/rows"] == "800"
    again = _requests(_tick(landing_sensor, results, config)[0])
    assert [r.run_key for r in again] == [first.run_key]  # the same files pending: the same key, dropped by Dagster
    assert not (land / "002_bad.csv").exists()
    reason = (rejected_dir(results) / "002_bad.csv.reason.txt").read_text()
    assert "002_bad.csv" in reason and "line 3" in reason and "column 'open'" in reason
    assert (rejected_dir(results) / "002_bad.csv").exists()  # kept, to fix and drop again

    report = ingest_landing(results)  # what the ingest run does: the bad file no longer blocks the good ones
    assert report.files_ingested == ["001_history.csv", "003_more.csv"]
    out, _ = _tick(landing_sensor, results, config)
    assert isinstance(out, dg.SkipReason) and "no new landing file" in out.skip_message

    # a changed file is a new digest, so a new run key
    write_landing_csv(market.filter(market["ts"] > stamps[150]), land / "003_more.csv")
    (req,) = _requests(_tick(landing_sensor, results, config)[0])
    assert req.tags["foxlake/sha256"] != read_ledger(results)["003_more.csv"]["sha256"]
    assert req.run_key != first.run_key


def test_synthetic_data_has_no_landing_zone_to_watch_but_its_days_are_partitions(tmp_path):
    out, _ = _tick(landing_sensor, tmp_path, _config(tmp_path))
    assert not out.run_requests and "synthetic" in out.skip_reason.skip_message
    (added,) = out.dynamic_partitions_requests
    assert len(added.partition_keys) == 39 and added.partition_keys[0] == "2024-01-02"  # the demo's history


def test_retraining_on_new_data_needs_new_partitions_and_respects_the_rate_limit(results_copy, tmp_path):
    config = _config(tmp_path, loop={"retrain": {"min_new_partitions": 2, "min_minutes_between_runs": 30}})
    out, cursor = _tick(retrain_on_new_data, results_copy, config)
    assert isinstance(out, dg.SkipReason) and out.skip_message.startswith("0 new partition(s)")

    cfg = load_run_config(DEMO_CONFIG)
    play(results_copy, cfg, n_bars=78, batch=True)  # one more session: one new partition
    out, cursor = _tick(retrain_on_new_data, results_copy, config)
    assert isinstance(out, dg.SkipReason) and out.skip_message.startswith("1 new partition(s)")

    play(results_copy, cfg, n_bars=78, batch=True)
    out, cursor = _tick(retrain_on_new_data, results_copy, config)
    (req,) = _requests(out)
    assert req.tags["foxlake/reason"] == "new data" and len(req.tags["foxlake/partitions"].split(",")) == 2
    assert req.run_key == f"new-data-{req.tags['foxlake/partitions'].split(',')[-1]}-2"

    play(results_copy, cfg, n_bars=78, batch=True)
    out, _ = _tick(retrain_on_new_data, results_copy, config, cursor)
    assert isinstance(out, dg.SkipReason) and out.skip_message.startswith("rate limit")
    unlimited = _config(tmp_path, loop={"retrain": {"min_new_partitions": 2, "min_minutes_between_runs": 0}})
    (req,) = _requests(_tick(retrain_on_new_data, results_copy, unlimited, cursor)[0])
    assert req.run_key.endswith("-3")  # one request per new batch


def test_decay_requests_one_retrain_per_target_with_evidence_and_a_cooldown(tmp_path):
    config = _config(tmp_path, loop={"decay": {"window_horizons": 10, "cooldown_cycles": 50}})
    w = _ledger(tmp_path, {"m": ("fwd_ret_5m_from_open", "runs/a")})
    _realise(w, "m", "fwd_ret_5m_from_open", [HOLDOUT_IC + 0.01 * (-1) ** i for i in range(20)])
    out, cursor = _tick(retrain_on_decay, tmp_path, config)
    assert isinstance(out, dg.SkipReason) and "no traded target has decayed" in out.skip_message

    _realise(w, "m", "fwd_ret_5m_from_open", [-0.05 + 0.01 * (-1) ** i for i in range(10)], first_cycle=21)
    out, cursor = _tick(retrain_on_decay, tmp_path, config, cursor)
    (req,) = _requests(out)
    assert req.tags["foxlake/reason"] == "decay" and req.tags["foxlake/target"] == "fwd_ret_5m_from_open"
    assert "realised IC -0.0500 over 10 horizons vs holdout +0.0500" in req.tags["foxlake/evidence"]
    assert json.loads(cursor) == {"fwd_ret_5m_from_open": 30}
    with LedgerReader(tmp_path, "paper") as r:
        (event,) = r.con.execute(
            "select severity, data_json from events where event_type = 'decay_detected'"
        ).fetchall()
    assert event[0] == "warning" and json.loads(event[1])["models"][0]["p_value"] < 0.01

    _realise(w, "m", "fwd_ret_5m_from_open", [-0.05] * 10, first_cycle=31)
    out, _ = _tick(retrain_on_decay, tmp_path, config, cursor)
    assert isinstance(out, dg.SkipReason) and "in cooldown" in out.skip_message  # 10 cycles after it fired
    _realise(w, "m", "fwd_ret_5m_from_open", [-0.05 + 0.01 * (-1) ** i for i in range(40)], first_cycle=41)
    (req,) = _requests(_tick(retrain_on_decay, tmp_path, config, cursor)[0])
    assert req.run_key == "decay-fwd_ret_5m_from_open-80"  # 50 cycles later: again


def test_features_follow_each_new_day_of_bars_by_their_automation_condition(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[bars, features], resources={"lake": LakeResource(results_dir=str(tmp_path))})
    instance.add_dynamic_partitions(LAKE_DAYS.name, ["2024-01-02", "2024-01-03"])
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    for day in ("2024-01-02", "2024-01-03"):
        instance.report_runless_asset_event(dg.AssetMaterialization("bars", partition=day))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(dg.AssetKey("features")) == {"2024-01-02", "2024-01-03"}
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.get_num_requested(dg.AssetKey("features")) == 0  # once per new day of bars

    instance.add_dynamic_partitions(LAKE_DAYS.name, ["2024-01-04"])  # a new day lands
    instance.report_runless_asset_event(dg.AssetMaterialization("bars", partition="2024-01-04"))
    fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
    assert fourth.get_requested_partitions(dg.AssetKey("features")) == {"2024-01-04"}
