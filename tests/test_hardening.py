"""Probes a hostile or careless user would try, each with its safe outcome: tampered models never run, the catalog's
SQL reads the catalog and nothing else, non-finite metrics never win a ranking."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import pytest

from catalog import build_catalog, sql
from contracts.io import read_json, write_atomic_json
from foxlake.cli import main
from live.loader import ModelLoadError, load_model, load_selected


class _Payload:
    """A pickle that creates a file when it is loaded: the sentinel of code that ran."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def _joblib_model(results: Path) -> Path:
    """A Ridge model directory of the demo run (sklearn: a pickle-based format)."""
    return sorted(results.glob("runs/**/view=CROSS_SECTIONAL/family=Ridge/model_meta.json"))[0].parent


def _crafted(path: Path, sentinel: Path) -> str:
    joblib.dump(_Payload(sentinel), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused(results: Path, model_dir: Path, match: str) -> None:
    for strict in (True, False):
        with pytest.raises(ModelLoadError, match=match):
            load_model(results, model_dir, interval_minutes=5.0, strict=strict)


@pytest.mark.parametrize("reindex", [False, True], ids=["as_indexed", "after_reindex"])
def test_a_model_file_outside_results_never_runs(results_copy: Path, tmp_path: Path, reindex: bool) -> None:
    sentinel = tmp_path / "payload_ran"
    outside = tmp_path / "evil.joblib"
    model_dir = _joblib_model(results_copy)
    meta = read_json(model_dir / "model_meta.json")
    meta["model_file"], meta["model_checksum"] = str(outside), _crafted(outside, sentinel)
    write_atomic_json(model_dir / "model_meta.json", meta)
    if reindex:  # the indexer refuses a model_file that is not a plain name: the model is no longer indexed
        build_catalog(results_copy)
        reason = sql(results_copy, "select reason from rejected where kind = 'model_meta'")["reason"].to_list()
        assert any("model_file" in r for r in reason), reason
        _assert_refused(results_copy, model_dir, "not an indexed model")
    else:
        _assert_refused(results_copy, model_dir, "changed since it was indexed")
    models, errors = load_selected(results_copy, "holdout_per_family", interval_minutes=5.0, strict=True)
    assert models and not any(m.model_dir == model_dir for m in models)
    assert not sentinel.exists()


def test_a_swapped_model_and_checksum_never_run(results_copy: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "payload_ran"
    model_dir = _joblib_model(results_copy)
    meta = read_json(model_dir / "model_meta.json")
    meta["model_checksum"] = _crafted(model_dir / meta["model_file"], sentinel)  # swapped in place
    write_atomic_json(model_dir / "model_meta.json", meta)
    _assert_refused(results_copy, model_dir, "changed since it was indexed")
    # the meta put back as indexed: the model file's bytes are still not the ones the catalog hashed
    meta_doc = sql(
        results_copy,
        "select meta_json from models where model_dir = ?",
        [model_dir.relative_to(results_copy).as_posix()],
    )["meta_json"][0]
    (model_dir / "model_meta.json").write_text(meta_doc)
    _assert_refused(results_copy, model_dir, "bytes differ from the catalog's checksum")
    assert not sentinel.exists()


def test_a_model_file_naming_a_system_file_or_a_symlink_out_is_refused(results_copy: Path, tmp_path: Path) -> None:
    model_dir = sorted(results_copy.glob("runs/**/view=CROSS_SECTIONAL/family=LightGBM/model_meta.json"))[0].parent
    meta = read_json(model_dir / "model_meta.json")
    meta["model_file"] = "/etc/passwd"
    write_atomic_json(model_dir / "model_meta.json", meta)
    build_catalog(results_copy)
    _assert_refused(results_copy, model_dir, "not an indexed model")
    # a symlink in place of an indexed model file, pointing out of RESULTS
    other = sorted(results_copy.glob("runs/**/view=CROSS_SECTIONAL/family=XGBoost/model_meta.json"))[0].parent
    target = tmp_path / "outside.json"
    target.write_bytes((other / "model.json").read_bytes())
    (other / "model.json").unlink()
    (other / "model.json").symlink_to(target)
    _assert_refused(results_copy, other, "outside RESULTS or through a symlink")


@pytest.mark.parametrize(
    "query",
    [
        "copy (select * from models) to '{out}/x.csv'",
        "attach '{out}/y.duckdb' as y",
        "select * from read_csv('/etc/passwd')",
        "select * from glob('/root/*')",
        "install httpfs",
        "select 1; copy (select 42) to '{out}/p.csv'; select model_dir from models",
    ],
    ids=["copy", "attach", "read_csv", "glob", "install", "multi"],
)
def test_catalog_sql_reads_the_catalog_and_nothing_else(results_copy: Path, tmp_path: Path, capsys, query) -> None:
    out = tmp_path / "out"
    out.mkdir()
    q = query.format(out=out)
    assert main(["--results", str(results_copy), "catalog", "sql", q]) == 2
    err = capsys.readouterr().err
    assert err.startswith("foxlake: error: ") and len(err.strip().splitlines()) == 1, err
    assert "disabled by configuration" in err or "Permission" in err, err
    assert list(out.iterdir()) == []  # nothing written
    # the same through a policy: one SELECT only, then the same sandbox
    assert main(["--results", str(results_copy), "live", "replay", "--bars", "2", "--policy", q]) == 2
    err = capsys.readouterr().err
    assert "one SELECT statement" in err or "unknown selection policy" in err or "disabled" in err, err
    assert list(out.iterdir()) == []


def test_a_policy_naming_a_directory_the_catalog_does_not_index_is_refused(results_copy: Path, capsys) -> None:
    for q in ("select 'runs/../../../etc' as model_dir", "select '/etc' as model_dir"):
        assert main(["--results", str(results_copy), "live", "replay", "--bars", "2", "--policy", q]) == 2
        assert "the catalog does not index" in capsys.readouterr().err


@pytest.mark.parametrize(("raw", "field"), [('"NaN"', "metrics.IC_IR"), ("1e999", "metrics.IC_IR"),
                                           ('"Infinity"', "metrics.t_stat"), ("NaN", "metrics.mean_IC")])  # fmt: skip
def test_non_finite_metrics_are_rejected_and_never_win(results_copy: Path, raw: str, field: str) -> None:
    """A string number or an overflow is refused by the contract, a literal NaN by the JSON reader."""
    model_dir = _joblib_model(results_copy)
    path = model_dir / "model_meta.json"
    doc = read_json(path)
    key = field.split(".")[1]
    text = json.dumps(doc, sort_keys=True).replace(f'"{key}": ', f'"{key}": {raw}, "_was": ', 1)
    path.write_text(text)
    build_catalog(results_copy)
    rel = model_dir.relative_to(results_copy).as_posix()
    rejected = sql(results_copy, "select path, reason from rejected")
    row = rejected.filter(rejected["path"] == f"{rel}/model_meta.json")
    expected = "NaN is not valid JSON" if raw == "NaN" else field
    assert row.height == 1 and expected in row["reason"][0], rejected.to_dicts()
    assert rel not in set(sql(results_copy, "select model_dir from models")["model_dir"])
