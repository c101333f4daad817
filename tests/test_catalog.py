"""The DuckDB catalog: schema, incremental indexing, rebuild identity, validation, legacy metas, aliases,
selection policies, lineage, the refresh sensor and the ``foxlake catalog`` commands."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import duckdb
import pytest

from catalog import (
    alias_history,
    build_catalog,
    catalog_path,
    clear_alias,
    get_alias,
    list_aliases,
    set_alias,
    sql,
)
from catalog.schema import INDEXING_TIME_COLUMNS, TABLE_NAMES
from catalog.synthetic import generate, model_meta
from contracts.io import write_atomic_bytes, write_atomic_json
from contracts.model_meta import load_model_meta
from live.loader import ModelLoadError, load_model
from tests.conftest import REPO

PY = sys.executable


def _settle() -> None:
    """Let the file-system clock move past the files just written (they are not racy for the next index)."""
    time.sleep(0.03)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Synthetic runs (5-minute and daily, one incomplete) holding 160 models; not yet indexed."""
    root = tmp_path / "RESULTS"
    generate(root, 160, targets_per_run=3, n_symbols=3, families=("LightGBM", "Ridge", "MLP"), seed=1)
    _settle()
    return root


def _rows(results: Path) -> dict[str, list[str]]:
    """Every table's rows (sorted, as JSON), leaving out the times of indexing."""
    out = {}
    for table in TABLE_NAMES:
        df = sql(results, f"select * from {table}")
        df = df.drop([c for c in df.columns if c in INDEXING_TIME_COLUMNS])
        out[table] = sorted(json.dumps(r, default=str, sort_keys=True) for r in df.to_dicts())
    return out


def _full_copy(results: Path, dst: Path) -> Path:
    """The same files in another folder, indexed from scratch."""
    shutil.copytree(results, dst)
    for p in list(dst.glob("*.duckdb")) + list(dst.glob(".catalog*")):
        p.unlink()
    build_catalog(dst, full=True)
    return dst


def _rewrite_meta(model_dir: Path, **changes) -> None:
    doc = json.loads((model_dir / "model_meta.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    write_atomic_json(model_dir / "model_meta.json", doc)


# --- schema -----------------------------------------------------------------------------------------------------


def test_schema_tables_views_and_plain_duckdb(results: Path) -> None:
    rep = build_catalog(results)
    assert rep.mode == "full" and rep.models == 160 and rep.rejected == 0
    assert rep.runs == len(list(results.glob("runs/*/*/manifest.json"))) > 2
    con = duckdb.connect(str(catalog_path(results)), read_only=True)  # the plain DuckDB way
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        assert {"meta", "runs", "run_targets", "models", "routing_decisions", "artifacts", "rejected",
                "aliases"} <= tables  # fmt: skip
        views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
        assert {"latest_models", "best_models", "run_summary", "model_lineage", "active_aliases"} <= views
        cols = {r[0]: r[1] for r in con.execute("select column_name, data_type from duckdb_columns() "
                                            "where table_name = 'models'").fetchall()}  # fmt: skip
        for name in ("model_dir", "run_dir", "target", "view", "symbol", "family", "interval_minutes", "mean_ic",
                     "ic_ir", "checksum_ok", "model_path", "meta_json", "dagster_run_id", "config_digest",
                     "params_used", "feature_importance", "package_versions", "metrics_json"):  # fmt: skip
            assert name in cols, name
        assert cols["feature_list"] == "VARCHAR[]" and cols["data_partitions"] == "VARCHAR[]"
        assert cols["cv_scores"] == "DOUBLE[]"
        # every view and the macro answer in the plain DuckDB CLI way
        for view in views:
            con.execute(f"select * from {view}").fetchall()
        best = con.execute("select count(*) from best_models_by('mean_ic')").fetchone()[0]
        assert best == con.execute("select count(*) from best_models").fetchone()[0] > 0
        # metrics as columns and the JSON sub-documents as JSON
        row = con.execute("select mean_ic, meta_json->'$.metrics.mean_IC', params_used->>'$.seed', "
                      "len(feature_list), n_features from models limit 1").fetchone()  # fmt: skip
        assert abs(row[0] - float(row[1])) < 1e-12 and row[2] == "42" and row[3] == row[4] == 20
        kinds = dict(con.execute("select kind, count(*) from artifacts group by kind").fetchall())
        assert kinds["model"] == kinds["model_meta"] == kinds["reproducibility"] == 160
        assert con.execute("select count(*) from artifacts where sha256 is null").fetchone()[0] == 0
    finally:
        con.close()
    # paths are relative to RESULTS
    assert sql(results, "select count(*) as n from models where model_dir like '/%'")["n"][0] == 0


def test_the_plain_duckdb_cli_opens_the_catalog_with_the_same_views(results: Path) -> None:
    build_catalog(results)
    cli = Path(sys.executable).parent / "duckdb"  # the duckdb-cli package (dev extras), not the Python module
    assert cli.is_file(), f"{cli} missing: install the dev extras (make test does)"
    query = (
        "select (select count(*) from models) as models, (select count(*) from best_models) as best, "
        "(select count(*) from best_models_by('mean_ic')) as best_by, (select count(*) from run_summary) as runs, "
        "(select count(*) from artifacts where model_dir is not null) as model_files"
    )
    out = subprocess.run(
        [str(cli), "-readonly", "-json", str(catalog_path(results)), "-c", query],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)[0]
    want = sql(results, query).to_dicts()[0]
    assert got == want and got["models"] == 160 and got["best"] > 0


# --- incremental indexing and rebuild identity -----------------------------------------------------------------


def test_incremental_add_change_delete_matches_a_full_rebuild(results: Path, tmp_path: Path) -> None:
    build_catalog(results)
    models = sql(results, "select model_dir, model_path from models order by model_dir")
    dirs = [results / d for d in models["model_dir"]]
    # add a run, change a meta (atomically, as every writer does), tamper a model file in place,
    # delete a model directory, delete a manifest, make a meta invalid, delete a routing file
    added = generate(results, 12, targets_per_run=1, n_symbols=1, families=("Ridge",), first_run=40, seed=3)
    _rewrite_meta(dirs[0], metrics={"IC_IR": 9.5})
    tampered = results / models["model_path"][1]
    with open(tampered, "ab") as fh:
        fh.write(b"tampered")
    shutil.rmtree(dirs[2])
    first_run = sorted(results.glob("runs/*/*/manifest.json"))[0]
    first_run.unlink()
    write_atomic_bytes(dirs[3] / "model_meta.json", b'{"family": "LightGBM", "target": 1}')
    routing = sorted(results.glob("runs/*/*/targets/*/decision/routing_decision.json"))[-1]
    routing.unlink()
    _settle()
    rep = build_catalog(results)
    assert rep.mode == "incremental"
    assert rep.model_dirs_read < 40, "an incremental index reads only what changed"
    assert rep.models == 160 + added.n_models - 2
    rel = [d.relative_to(results).as_posix() for d in dirs]
    flags = dict(sql(results, "select model_dir, checksum_ok from models").iter_rows())
    assert flags[rel[1]] is False and flags[rel[4]] is True
    assert rel[2] not in flags and rel[3] not in flags
    assert len(flags) == rep.models, "one row per model directory (the re-read ones replaced, not duplicated)"
    assert sql(results, "select ic_ir from models where model_dir = ?", [rel[0]])["ic_ir"][0] == 9.5
    rejected = dict(sql(results, "select path, reason from rejected").iter_rows())
    assert f"{rel[3]}/model_meta.json" in rejected
    assert sql(results, "select count(*) as n from artifacts where path like ?",
               [f"{rel[2]}/%"])["n"][0] == 0  # fmt: skip
    # the same files indexed from scratch give the same rows, table by table
    assert _rows(results) == _rows(_full_copy(results, tmp_path / "copy"))


def test_no_change_reindex_writes_nothing(results: Path) -> None:
    build_catalog(results)
    build_catalog(results)  # settles racy entries, if any
    cat = catalog_path(results)
    before = (os.stat(cat).st_ino, os.stat(cat).st_mtime_ns, os.stat(results / ".catalog_state").st_mtime_ns)
    rep = build_catalog(results)
    assert rep.mode == "unchanged" and rep.models == 160 and rep.model_dirs_read == 0
    after = (os.stat(cat).st_ino, os.stat(cat).st_mtime_ns, os.stat(results / ".catalog_state").st_mtime_ns)
    assert before == after
    assert not list(results.glob(".catalog.*.duckdb*")), "no temp catalog left behind"


def test_a_file_changed_in_the_same_clock_tick_is_not_missed(tmp_path: Path) -> None:
    root = tmp_path / "R"
    gen = generate(root, 3, targets_per_run=1, n_symbols=1, families=("Ridge", "MLP", "LightGBM"))
    build_catalog(root)  # the files are this tick's: racy
    _rewrite_meta(root / gen.model_dirs[0], metrics={"IC_IR": 3.25})  # right away, maybe in the same tick
    build_catalog(root)
    assert sql(root, "select ic_ir from models where model_dir = ?", [gen.model_dirs[0]])["ic_ir"][0] == 3.25


def test_verify_sees_in_place_edits_and_a_replaced_catalog_is_rebuilt(results: Path) -> None:
    build_catalog(results)
    d = sql(results, "select model_dir from models order by model_dir limit 1")["model_dir"][0]
    meta = results / d / "model_meta.json"
    doc = json.loads(meta.read_text())
    doc["metrics"]["IC_IR"] = 7.0
    meta.write_text(json.dumps(doc))  # in place: the directory's mtime does not change
    _settle()
    assert build_catalog(results, verify=True).mode == "incremental"
    assert sql(results, "select ic_ir from models where model_dir = ?", [d])["ic_ir"][0] == 7.0
    catalog_path(results).unlink()
    assert build_catalog(results).mode == "full"


def test_full_flag_rebuilds_and_concurrent_writers_serialise(results: Path) -> None:
    build_catalog(results)
    assert build_catalog(results, full=True).mode == "full"
    code = "import sys; from catalog import build_catalog; print(build_catalog(sys.argv[1], full=True).models)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([PY, "-c", code, str(results)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]  # fmt: skip
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs == ["160"] * 3
    assert sql(results, "select count(*) as n from models")["n"][0] == 160


def test_many_model_dirs_use_worker_processes_and_agree_with_one_process(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    generate(a, 700, targets_per_run=4, n_symbols=4, seed=5)
    shutil.copytree(a, b)
    _settle()
    ra = build_catalog(a, full=True, workers=2)
    rb = build_catalog(b, full=True, workers=1)
    assert ra.models == rb.models == 700
    assert _rows(a)["models"] == [r.replace("/B/", "/A/") for r in _rows(b)["models"]]
    # an incremental batch through the workers
    generate(a, 600, targets_per_run=4, n_symbols=4, seed=6, first_run=9)
    _settle()
    rep = build_catalog(a, workers=2)
    assert rep.mode == "incremental" and rep.models == 1300


# --- validation -------------------------------------------------------------------------------------------------


def _valid_meta(model_dir: Path) -> dict:
    return json.loads((model_dir / "model_meta.json").read_text())


def test_contract_violations_are_rejected_with_their_reason(results: Path) -> None:
    build_catalog(results)
    dirs = [results / d for d in sql(results, "select model_dir from models order by model_dir")["model_dir"]]
    doc = _valid_meta(dirs[0])
    cases = {
        dirs[0]: b"{ not json",
        dirs[1]: json.dumps({**doc, "feature_list": list(reversed(doc["feature_list"]))}).encode(),
        dirs[2]: json.dumps({**doc, "model_checksum": "ABC"}).encode(),
        dirs[3]: json.dumps({**doc, "interval_minutes": -5}).encode(),
        dirs[4]: json.dumps({k: v for k, v in doc.items() if k != "metrics"}).encode(),
        dirs[5]: json.dumps({**doc, "metrics": {**doc["metrics"], "mean_IC": float("nan")}}).encode(),
        dirs[6]: json.dumps({**doc, "family": "NoSuchFamily"}).encode(),
    }
    for d, data in cases.items():
        write_atomic_bytes(d / "model_meta.json", data)
    (dirs[7] / _valid_meta(dirs[7])["model_file"]).unlink()  # model files rule 1
    # a meta at the wrong path level (no view= level) and a manifest in the wrong place
    wrong = dirs[8].parent.parent / "family=Ridge"
    wrong.mkdir()
    shutil.copy(dirs[8] / "model_meta.json", wrong / "model_meta.json")
    shutil.copy(sorted(results.glob("runs/*/*/manifest.json"))[0], wrong.parent / "manifest.json")
    _settle()
    rep = build_catalog(results)
    assert rep.models == 160 - 8
    rejected = {r["path"]: r for r in sql(results, "select * from rejected").to_dicts()}
    rel = {d: d.relative_to(results).as_posix() + "/model_meta.json" for d in dirs}
    assert "not valid JSON" in rejected[rel[dirs[0]]]["reason"]
    assert "[model_meta rule 1]" in rejected[rel[dirs[1]]]["reason"] and "sorted" in rejected[rel[dirs[1]]]["reason"]
    assert "[model_meta rule 2]" in rejected[rel[dirs[2]]]["reason"]
    assert "[model_meta rule 3]" in rejected[rel[dirs[3]]]["reason"]
    assert rejected[rel[dirs[4]]]["field"] == "metrics"
    assert "NaN" in rejected[rel[dirs[5]]]["reason"]
    assert "unknown model family" in rejected[rel[dirs[6]]]["reason"]
    assert "[model files rule 1]" in rejected[rel[dirs[7]]]["reason"]
    wrong_rel = (wrong / "model_meta.json").relative_to(results).as_posix()
    assert "[path convention]" in rejected[wrong_rel]["reason"]
    manifest_rel = (wrong.parent / "manifest.json").relative_to(results).as_posix()
    assert rejected[manifest_rel]["kind"] == "manifest" and "path convention" in rejected[manifest_rel]["reason"]
    assert all(r["reason"] and r["seen_at"] for r in rejected.values())
    # fixing a file takes it out of rejected on the next index
    write_atomic_json(dirs[0] / "model_meta.json", doc)
    _settle()
    build_catalog(results)
    assert rel[dirs[0]] not in set(sql(results, "select path from rejected")["path"])


def test_a_bad_manifest_and_a_bad_routing_file_are_rejected(results: Path) -> None:
    manifest = sorted(results.glob("runs/*/*/manifest.json"))[0]
    doc = json.loads(manifest.read_text())
    target = next(iter(doc["target_index"]))
    doc["target_index"][target]["status"] = "done"
    write_atomic_json(manifest, doc)
    routing = sorted(results.glob("runs/*/*/globals/routing_decisions.json"))[0]
    write_atomic_json(routing, {"t": {"route": "SIDEWAYS", "reason": "x"}})
    rep = build_catalog(results)
    rejected = dict(sql(results, "select path, reason from rejected").iter_rows())
    assert "manifest" in rejected[manifest.relative_to(results).as_posix()]
    assert "routing rule 1" in rejected[routing.relative_to(results).as_posix()]
    assert rep.runs == len(list(results.glob("runs/*/*/manifest.json"))) - 1 and rep.models == 160


def test_checksum_ok_is_false_for_a_model_file_tampered_in_place(results: Path) -> None:
    build_catalog(results)
    row = sql(results, "select model_dir, model_path from models order by model_dir limit 1").row(0, named=True)
    with open(results / row["model_path"], "r+b") as fh:  # same size, new bytes
        fh.write(b"\x00" * 8)
    _settle()
    build_catalog(results)
    got = sql(results, "select checksum_ok, checksum_status, model_sha256, model_checksum from models "
                       "where model_dir = ?", [row["model_dir"]]).row(0, named=True)  # fmt: skip
    assert got["checksum_ok"] is False and got["checksum_status"] == "mismatch"
    assert got["model_sha256"] == hashlib.sha256((results / row["model_path"]).read_bytes()).hexdigest()
    assert row["model_dir"] not in set(sql(results, "select model_dir from best_models")["model_dir"])


# --- schema evolution -------------------------------------------------------------------------------------------


def _legacy_dir(root: Path, doc: dict, body: bytes, model_file: str) -> Path:
    """A model directory in the path convention (the directory names the family canonically; old documents
    may spell it in another case)."""
    from contracts.families import canonical_family

    models = root / "runs/legacy/v1/targets/fwd_ret_5m/models"
    family = f"family={canonical_family(doc['family'])}"
    if doc.get("symbol"):
        d = models / "view=SYMBOL_SPECIFIC" / f"symbol={doc['symbol']}" / family
    else:
        d = models / "view=CROSS_SECTIONAL" / family
    d.mkdir(parents=True)
    (d / model_file).write_bytes(body)
    (d / "model_meta.json").write_text(json.dumps(doc))
    return d


def test_metas_from_contract_versions_1_0_to_1_4_index(tmp_path: Path) -> None:
    import random

    root = tmp_path / "R"
    body = b"model bytes"
    sha = hashlib.sha256(body).hexdigest()
    metrics = {"mean_IC": 0.03, "mean_RankIC": 0.02, "IC_IR": 0.3}
    base = {"target": "fwd_ret_5m", "metrics": metrics, "interval_minutes": 5.0}
    docs = {
        # 1.0: the deprecated features list in training order; no feature_list, n_features, input_mode,
        # model_checksum or interval_minutes (1.0 did not write them on every path)
        "1.0": {"target": "fwd_ret_5m", "metrics": metrics, "family": "lightgbm",
                "features": ["ret_5", "ret_1", "rvol_20"]},
        # 1.1: sorted feature_list (and the old features), checksum, interval, no input_mode
        "1.1": {**base, "family": "XGBoost", "feature_list": ["a", "b"], "features": ["b", "a"], "n_features": 2,
                "model_checksum": sha, "view": "CROSS_SECTIONAL", "route": "CROSS_SECTIONAL"},
        # 1.2: dashboard contracts only; a declared version, SYMBOL_SPECIFIC under symbol=
        "1.2": {**base, "family": "Ridge", "feature_list": ["a"], "n_features": 1, "model_checksum": sha,
                "view": "SYMBOL_SPECIFIC", "symbol": "AAA", "contract_version": "1.2"},
        # 1.3: raw OHLCV sequence mode, empty feature_list
        "1.3": {**base, "family": "LSTM", "feature_list": [], "n_features": 0, "model_checksum": sha,
                "input_mode": "raw_sequence", "sequence_length": 64,
                "sequence_channels": ["open", "high", "low", "close", "volume"], "sequence_normalization": "returns"},
        # 1.4: the cross-sectional ranking block
        "1.4": {**model_meta(random.Random(0), target="fwd_ret_5m", view="CROSS_SECTIONAL", symbol=None,
                             family="CSRanker", checksum=sha, interval_minutes=5.0, run_id="legacy",
                             run_instance_id="v1"),
                "input_mode": "raw_sequence", "feature_list": [], "n_features": 0, "sequence_length": 64,
                "sequence_channels": ["open", "high", "low", "close", "volume"], "sequence_normalization": "returns",
                "cross_sectional_ranking": {"enabled": True, "target_type": "cs_percentile",
                                            "loss_type": "pairwise_logistic", "sequence_length": 64,
                                            "training_metrics": {"best_ic": 0.05, "best_spread": 0.002,
                                                                 "epochs_trained": 12, "ic_ir": 0.4}}},
    }  # fmt: skip
    docs["1.4"].pop("model_file")
    files = {"1.0": "model.txt", "1.1": "model.json", "1.2": "model.joblib", "1.3": "model.pt", "1.4": "model.pt"}
    dirs = {v: _legacy_dir(root, d, body, files[v]) for v, d in docs.items()}
    _settle()
    rep = build_catalog(root)
    assert rep.rejected == 0 and rep.models == 5, sql(root, "select * from rejected").to_dicts()
    rows = {r["contract_version"]: r for r in sql(root, "select * from models").to_dicts()}
    assert set(rows) == {"1.0", "1.1", "1.2", "1.3", "1.4"}
    v10 = rows["1.0"]
    assert v10["family"] == "LightGBM" and v10["legacy_features"] is True
    assert v10["feature_list"] == ["ret_5", "ret_1", "rvol_20"], "the legacy column order is the training order"
    assert v10["n_features"] == 3 and v10["input_mode"] == "features"
    assert v10["checksum_status"] == "missing" and v10["checksum_ok"] is False
    assert v10["interval_minutes"] is None, "an unknown interval stays unknown"
    picked = sql(root, "select model_dir from pick_candidates")["model_dir"].to_list()
    assert str(dirs["1.0"].relative_to(root)) not in picked, "no policy picks a model of unknown interval"
    with warnings.catch_warnings(), pytest.raises(ModelLoadError, match="interval_minutes: unknown"):
        warnings.simplefilter("ignore")
        load_model(root, dirs["1.0"], interval_minutes=5.0)
    assert rows["1.1"]["feature_list"] == ["a", "b"] and rows["1.1"]["legacy_features"] is False
    assert rows["1.1"]["checksum_ok"] is True and rows["1.1"]["input_mode"] == "features"
    assert rows["1.2"]["symbol"] == "AAA" and rows["1.2"]["view"] == "SYMBOL_SPECIFIC"
    assert rows["1.3"]["sequence_channels"] == ["open", "high", "low", "close", "volume"]
    assert rows["1.3"]["cs_ranking_enabled"] is None
    assert rows["1.4"]["cs_ranking_enabled"] is True and rows["1.4"]["cs_ranking_best_ic"] == 0.05
    assert rows["1.4"]["cs_ranking_epochs_trained"] == 12 and rows["1.4"]["model_file"] == "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 1.0 meta's deprecated 'features' field
        for v, d in dirs.items():  # the catalog accepts exactly what the contracts accept
            assert load_model_meta(d / "model_meta.json").family == rows[v]["family"]


# --- aliases ----------------------------------------------------------------------------------------------------


def test_aliases_have_history_and_survive_a_full_rebuild(results: Path) -> None:
    build_catalog(results)
    a, b = sql(results, "select model_dir from models order by model_dir limit 2")["model_dir"]
    set_alias(results, "champion", a, note="first", set_by="alice")
    set_alias(results, "champion", results / b, set_by="bob")  # absolute paths are accepted
    set_alias(results, "challenger", a)
    assert get_alias(results, "champion") == b and get_alias(results, "challenger") == a
    hist = alias_history(results, "champion")
    assert hist["model_dir"].to_list() == [a, b] and hist["active"].to_list() == [False, True]
    assert hist["set_by"].to_list() == ["alice", "bob"] and hist["note"][0] == "first"
    active = list_aliases(results)
    assert set(active["alias"]) == {"champion", "challenger"} and active["indexed"].all()
    with pytest.raises(ValueError, match="not an indexed model"):
        set_alias(results, "champion", "runs/x/y/targets/t/models/view=CROSS_SECTIONAL/family=Ridge")
    with pytest.raises(ValueError, match="alias"):
        set_alias(results, "bad name!", a)
    # the file is the record: drop the catalog, rebuild from the files, the aliases are back
    catalog_path(results).unlink()
    (results / ".catalog_state").unlink()
    build_catalog(results, full=True)
    assert get_alias(results, "champion") == b
    assert alias_history(results, "champion").height == 2
    clear_alias(results, "challenger")
    assert get_alias(results, "challenger") is None
    assert alias_history(results)["alias"].to_list().count("challenger") == 2
    # a torn line in the file is rejected, never fatal
    with open(results / "catalog" / "aliases.jsonl", "a") as fh:
        fh.write('{"alias": "x"')
    build_catalog(results)
    assert sql(results, "select count(*) as n from rejected where kind = 'alias'")["n"][0] == 1
    set_alias(results, "after_torn", a)
    assert get_alias(results, "after_torn") == a


# --- selection: policies and aliases in the live loader -----------------------------------------------------------


def _rule_from_the_files(results: Path, interval: float, per_view: bool) -> list[str]:
    """The built-in selection rule computed from the JSON files alone (an independent oracle of the SQL)."""
    runs = {}
    for path in results.glob("runs/*/*/manifest.json"):
        doc = json.loads(path.read_text())
        complete = all(e["status"] == "complete" for e in doc["target_index"].values())
        runs[path.parent.relative_to(results).as_posix()] = (complete, doc["timestamp"])
    candidates = []
    for path in results.glob("runs/**/model_meta.json"):
        meta = json.loads(path.read_text())
        model_dir = path.parent.relative_to(results).as_posix()
        run_dir = "/".join(model_dir.split("/")[:3])
        model_file = path.parent / meta["model_file"]
        checksum_ok = hashlib.sha256(model_file.read_bytes()).hexdigest() == meta["model_checksum"]
        m = meta["metrics"]
        if not runs[run_dir][0] or not checksum_ok or meta["interval_minutes"] != interval:
            continue
        if m.get("evaluated_on") != "holdout" or meta.get("research_only"):
            continue
        candidates.append((meta, m, model_dir, run_dir))
    newest = {}
    for meta, _m, _d, run_dir in candidates:
        key = (meta["target"], meta["view"])
        newest[key] = max(newest.get(key, ("", "")), (runs[run_dir][1], run_dir))
    best: dict[tuple, tuple] = {}
    for meta, m, model_dir, run_dir in candidates:
        if newest[(meta["target"], meta["view"])][1] != run_dir or not (m["mean_IC"] > 0 and m["t_stat"] >= 2.0):
            continue
        key = (meta["target"], meta["view"], meta.get("symbol") or "") + (() if per_view else (meta["family"],))
        score = m["t_stat"] if meta["view"] == "SYMBOL_SPECIFIC" else m["IC_IR"]
        rank = (score, m["mean_IC"], [-ord(c) for c in model_dir])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, model_dir)
    return sorted(v[1] for v in best.values())


def test_loader_resolves_named_policies_yaml_policies_and_aliases(results: Path, tmp_path: Path, monkeypatch) -> None:
    from live.loader import resolve_model_files, select_models
    from live.policies import load_policies, policy_sql

    build_catalog(results)
    picked = select_models(results, "holdout_best_per_view", 5.0)
    assert picked and sorted(picked) == _rule_from_the_files(results, 5.0, per_view=True)
    per_family = select_models(results, "holdout_per_family", 5.0)
    assert sorted(per_family) == _rule_from_the_files(results, 5.0, per_view=False)
    assert len(per_family) > len(picked)
    assert not set(select_models(results, "holdout_per_family", 1440.0)) & set(per_family)
    # recency: only the newest complete run of each target/view; the best of the 3 newest may reach further back
    runs_picked = {d.split("/targets/")[0] for d in picked}
    assert len(runs_picked) < sql(results, "select count(*) as n from runs where complete")["n"][0]
    recent = select_models(results, "holdout_best_of_recent", 5.0)
    assert {d.split("/targets/")[0] for d in recent} > runs_picked
    # a policy of one's own may set another floor over eligible_models
    strict = sql(
        results,
        "select model_dir from eligible_models where interval_minutes = 5 and recency = 1 and passes_floor "
        "and t_stat >= 8 and not research_only",
    )["model_dir"]
    assert set(strict) < set(per_family)
    # YAML policies from configs/policies.yaml
    assert {"best_rank_ic_per_view", "net_of_costs_per_view"} <= set(load_policies())
    assert 0 < len(select_models(results, "best_rank_ic_per_view", 5.0)) <= len(picked)
    assert set(select_models(results, "net_of_costs_per_view", 5.0)) <= set(per_family)
    # aliases
    set_alias(results, "champion", picked[0])
    set_alias(results, "challenger", picked[1])
    assert select_models(results, "alias:champion") == [picked[0]]
    assert select_models(results, "alias:champion,challenger", 5.0) == picked[:2]
    files = resolve_model_files(results, "alias:champion")
    assert files[0].model_path.is_file() and files[0].meta_path.is_file()
    with pytest.raises(ValueError, match="not set"):
        select_models(results, "alias:nobody")
    # a policies file of one's own, validated
    own = tmp_path / "policies.yaml"
    own.write_text("policies:\n  everything:\n    sql: select model_dir from models\n")
    monkeypatch.setenv("FOXLAKE_POLICIES", str(own))
    assert len(select_models(results, "everything")) == 160
    assert "pick_candidates" in policy_sql("holdout_per_family")  # built-ins stay
    own.write_text("policies:\n  broken:\n    sql: delete from models\n")
    with pytest.raises(ValueError, match="not a valid policy file"):
        select_models(results, "broken")


def test_no_built_in_policy_picks_research_only_legacy_or_below_the_floor(results: Path) -> None:
    from live.loader import select_models
    from live.policies import POLICIES

    build_catalog(results)
    best = sql(results, "select model_dir from best_models where interval_minutes = 5 order by model_dir")
    research, legacy, weak, useless = (Path(results) / d for d in best["model_dir"][:4])
    _rewrite_meta(research, research_only=True)
    _rewrite_meta(legacy, metrics={"evaluated_on": None})  # a model from before holdouts
    _rewrite_meta(weak, metrics={"t_stat": 1.5})  # under the floor
    block = {"enabled": True, "target_type": "cs_percentile", "loss_type": "lambdarank"}
    metrics = {"best_ic": -0.01, "best_spread": -0.1, "epochs_trained": 10}
    # a ranking model without skill (rule 7: best_ic should be > 0): indexed, never picked
    _rewrite_meta(useless, cross_sectional_ranking={**block, "training_metrics": metrics})
    _settle()
    build_catalog(results)
    assert sql(results, f"select cs_ranking_best_ic from models where model_dir = '{useless.relative_to(results)}'")[
        "cs_ranking_best_ic"
    ].to_list() == [-0.01]
    gone = {p.relative_to(results).as_posix() for p in (research, legacy, weak, useless)}
    for name in POLICIES:
        assert not set(select_models(results, name, 5.0)) & gone, name
    listed = set(sql(results, "select model_dir from best_models")["model_dir"])
    assert research.relative_to(results).as_posix() in listed  # research sees it, marked; live never picks it
    assert sql(results, "select count(*) as n from best_models where research_only")["n"][0] >= 1
    assert not {legacy.relative_to(results).as_posix(), weak.relative_to(results).as_posix()} & listed


def test_the_loader_loads_an_aliased_model(results: Path) -> None:
    from live.loader import load_selected

    build_catalog(results)
    model_dir = sql(results, "select model_dir from best_models where interval_minutes = 5 limit 1")["model_dir"][0]
    set_alias(results, "champion", model_dir)
    models, errors = load_selected(results, "alias:champion", interval_minutes=5.0)
    # synthetic model files are random bytes: the loader verifies the checksum, then the native loader refuses
    assert not models and len(errors) == 1


# --- lineage ----------------------------------------------------------------------------------------------------


def test_lineage_columns_lead_to_the_run_and_the_data(results: Path) -> None:
    build_catalog(results)
    row = sql(results, "select * from models order by model_dir limit 1").row(0, named=True)
    manifest = json.loads((results / row["run_dir"] / "manifest.json").read_text())
    repro = json.loads((results / row["model_dir"] / "reproducibility.json").read_text())
    assert row["dagster_run_id"] == manifest["run_metadata"]["dagster_run_id"]
    assert row["run_id"] == manifest["run_id"] and row["run_instance_id"] == manifest["run_instance_id"]
    assert row["config_digest"] == repro["config_digest"] and row["data_partitions"] == repro["data_partitions"]
    assert row["data_start"] == repro["data_range"]["start"] and row["seed"] == 42
    lineage = sql(results, "select * from model_lineage where model_dir = ?", [row["model_dir"]]).row(0, named=True)
    assert lineage["git_sha"] == manifest["git_sha"] and lineage["dagster_run_id"] == row["dagster_run_id"]


def test_a_manifest_written_after_its_models_fills_their_dagster_run_id(results: Path) -> None:
    manifest = sorted(results.glob("runs/*/*/manifest.json"))[0]
    doc = json.loads(manifest.read_text())
    manifest.unlink()
    build_catalog(results)
    run_dir = manifest.parent.relative_to(results).as_posix()
    q = "select count(*) filter (where dagster_run_id is not null) as n from models where run_dir = ?"
    assert sql(results, q, [run_dir])["n"][0] == 0
    write_atomic_json(manifest, doc)
    _settle()
    build_catalog(results)
    assert sql(results, q, [run_dir])["n"][0] > 0


# --- the refresh sensor -----------------------------------------------------------------------------------------


def test_catalog_refresh_sensor_requests_a_run_for_new_model_files(tmp_path: Path) -> None:
    import dagster as dg

    from assets.resources import LakeResource
    from assets.sensors import catalog_refresh_sensor

    root = tmp_path / "R"
    root.mkdir()

    def tick(cursor=None):
        ctx = dg.build_sensor_context(resources={"lake": LakeResource(results_dir=str(root))}, cursor=cursor)
        return catalog_refresh_sensor(ctx), ctx.cursor

    result, _ = tick()
    assert isinstance(result, dg.SkipReason)
    generate(root, 5, targets_per_run=1, n_symbols=1, families=("Ridge", "MLP", "LightGBM"))
    result, cursor = tick()
    assert isinstance(result, dg.RunRequest) and cursor and int(cursor) > 0
    again, _ = tick(cursor)
    assert isinstance(again, dg.SkipReason), "the cursor remembers what it already requested"
    _settle()
    build_catalog(root)
    assert isinstance(tick()[0], dg.SkipReason), "the catalog is newer than every model file"
    _settle()
    generate(root, 3, targets_per_run=1, n_symbols=1, families=("Ridge", "MLP", "LightGBM"), first_run=5)
    assert isinstance(tick(cursor)[0], dg.RunRequest)


def test_sensor_and_job_are_registered() -> None:
    from assets.definitions import defs

    assert defs.resolve_job_def("catalog_refresh") is not None
    assert defs.resolve_sensor_def("catalog_refresh_sensor") is not None


# --- the command line -------------------------------------------------------------------------------------------


def _foxlake(results: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FOXLAKE_USER": "ci"}
    return subprocess.run([PY, "-m", "foxlake.cli", "--results", str(results), "catalog", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)  # fmt: skip


def test_cli_catalog_commands(results: Path) -> None:
    out = _foxlake(results, "index", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["models"] == 160
    out = _foxlake(results, "index")
    assert out.returncode == 0 and "catalog unchanged" in out.stdout
    out = _foxlake(results, "index", "--full")
    assert out.returncode == 0 and "rebuilt from the files" in out.stdout
    out = _foxlake(results, "sql", "select count(*) as n from models", "--json")
    assert json.loads(out.stdout) == [{"n": 160}]
    out = _foxlake(results, "models", "--view", "SYMBOL_SPECIFIC", "--json")
    rows = json.loads(out.stdout)
    assert rows and {r["view"] for r in rows} == {"SYMBOL_SPECIFIC"}
    target = rows[0]["target"]
    out = _foxlake(results, "models", "--target", target, "--view", "SYMBOL_SPECIFIC", "--json")
    assert {r["target"] for r in json.loads(out.stdout)} == {target}
    out = _foxlake(results, "runs", "--json")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == len(list(results.glob("runs/*/*/manifest.json")))
    out = _foxlake(results, "best", "--metric", "mean_ic", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)
    model_dir = rows[0]["model_dir"]
    out = _foxlake(results, "alias", "set", "champion", model_dir, "--note", "from the CLI")
    assert out.returncode == 0 and "champion →" in out.stdout, out.stderr
    out = _foxlake(results, "alias", "list", "--json")
    assert json.loads(out.stdout)[0]["model_dir"] == model_dir
    out = _foxlake(results, "alias", "show", "champion", "--json")
    assert json.loads(out.stdout)[0]["set_by"] == "ci"
    out = _foxlake(results, "alias", "set", "champion", "runs/nope")
    assert out.returncode == 2 and "error" in out.stderr
    out = _foxlake(results, "rejected")
    assert out.returncode == 0 and "(0 rows)" in out.stdout
