"""Probes a hostile or careless user would try, each with its safe outcome: tampered models never run, the catalog's
SQL reads the catalog and nothing else, non-finite metrics never win a ranking."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import build_catalog, sql
from contracts.io import read_json, write_atomic_json
from foxlake.cli import main
from live.loader import ModelLoadError, load_model, load_selected
from tests.conftest import REPO, free_port, wait_for_http


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
    assert main(["--results", str(results_copy), "live", "run", "--max-cycles", "2", "--policy", q]) == 2
    err = capsys.readouterr().err
    assert "one SELECT statement" in err or "unknown selection policy" in err or "disabled" in err, err
    assert list(out.iterdir()) == []


def test_a_policy_naming_a_directory_the_catalog_does_not_index_is_refused(results_copy: Path, capsys) -> None:
    for q in ("select 'runs/../../../etc' as model_dir", "select '/etc' as model_dir"):
        assert main(["--results", str(results_copy), "live", "run", "--max-cycles", "2", "--policy", q]) == 2
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


# --- the bridge fails soft -------------------------------------------------------------------------------------

_BROKEN_STATES = {
    "truncated": b'{"status": "running", "current_st',
    "binary": bytes(range(256)),
    "a list": b"[]",
    "unknown status": b'{"status": "dancing", "current_stage": "idle", "last_cycle": null, "uptime_seconds": 1}',
    "negative count": b'{"status": "running", "current_stage": "idle", "last_cycle": null, "uptime_seconds": 1, '
    b'"cycle_count": -5}',
    "not a number": b'{"status": "running", "current_stage": "idle", "last_cycle": null, "uptime_seconds": "x"}',
    "empty": b"",
}


def _client(results: Path):
    from fastapi.testclient import TestClient

    from bridge.app import create_app

    return TestClient(create_app(results))


@pytest.mark.parametrize("name", [*_BROKEN_STATES, "a directory"])
def test_the_bridge_answers_a_broken_state_file_with_503_and_a_reason(tmp_path: Path, name: str) -> None:
    live = tmp_path / "live"
    live.mkdir()
    if name == "a directory":
        (live / "state.json").mkdir()
    else:
        (live / "state.json").write_bytes(_BROKEN_STATES[name])
    response = _client(tmp_path).get("/api/state")
    assert response.status_code == 503, response.text
    reason = response.json()["detail"]
    assert reason.startswith("engine state ") and str(tmp_path) not in reason


def test_health_names_no_path(tmp_path: Path) -> None:
    body = _client(tmp_path).get("/health").json()
    assert body == {"status": "ok"} and str(tmp_path) not in json.dumps(body)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_state_docs = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["running", "paused", "stopped", "error", "dancing"]) | _json_values,
        "current_stage": st.sampled_from(["idle", "risk", "nowhere"]) | _json_values,
        "last_cycle": st.none() | st.text(max_size=30),
        "uptime_seconds": st.floats() | st.integers() | _json_values,
        "cycle_count": st.integers() | _json_values,
        "symbols_active": st.integers() | _json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(_state_docs.map(lambda d: json.dumps(d).encode()), _json_values.map(
    lambda v: json.dumps(v).encode()), st.binary(max_size=64)))  # fmt: skip
def test_random_state_files_never_give_a_server_error_other_than_503(tmp_path_factory, payload: bytes) -> None:
    results = tmp_path_factory.mktemp("bridge")
    (results / "live").mkdir()
    (results / "live" / "state.json").write_bytes(payload)
    response = _client(results).get("/api/state")
    assert response.status_code in (200, 503), (payload, response.status_code, response.text)
    if response.status_code == 200:
        from contracts.bridge import EngineState

        EngineState.model_validate(response.json())


def test_a_non_loopback_bind_needs_a_chosen_token_and_then_warns(tmp_path: Path, cli_env: dict) -> None:
    serve = [sys.executable, "-m", "foxlake.cli", "--results", str(tmp_path), "bridge", "serve", "--host", "0.0.0.0"]
    env = {k: v for k, v in cli_env.items() if k != "FOXLAKE_BRIDGE_TOKEN"}
    refused = subprocess.run([*serve, "--port", str(free_port())], env=env, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "refusing to listen on 0.0.0.0" in refused.stderr
    assert "FOXLAKE_BRIDGE_TOKEN" in refused.stderr and not (tmp_path / "live" / "bridge.token").exists()

    port = free_port()
    log = tmp_path / "bridge.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [*serve, "--port", str(port)], env={**env, "FOXLAKE_BRIDGE_TOKEN": "s3cret-for-the-lan"}, cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", server, timeout_s=30, log=log)
        finally:
            server.terminate()
            server.wait(timeout=10)
    text = log.read_text()
    assert "WARNING: the bridge listens on 0.0.0.0, beyond this machine" in text
    assert "control token from $FOXLAKE_BRIDGE_TOKEN" in text and "s3cret" not in text


# --- no leftovers after crashes --------------------------------------------------------------------------------

_INDEX = "import sys; from catalog import build_catalog; build_catalog(sys.argv[1], full=True, workers=2)"


def _foxlake_leftovers(root: Path) -> list[str]:
    import tempfile

    spools = [p for base in ("/dev/shm", tempfile.gettempdir()) for p in Path(base).glob("foxlake-catalog-*")]
    return sorted(str(p) for p in [*spools, *root.glob(".catalog.*.duckdb*")])


def test_ten_sigkills_during_full_indexes_leave_nothing_after_the_next_index(tmp_path: Path, cli_env: dict) -> None:
    import os
    import signal
    import time

    from catalog.synthetic import generate

    root = tmp_path / "RESULTS"
    generate(root, 1500, targets_per_run=6, n_symbols=4, families=("LightGBM", "Ridge"), seed=3)
    before = set(_foxlake_leftovers(root))  # another RESULTS's live writer may own some: not ours to judge
    killed_in_worker_phase = 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _INDEX, str(root)], env=cli_env, cwd=REPO)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if list(Path("/dev/shm").glob(f"foxlake-catalog-{proc.pid}-*")) or list(root.glob(".catalog.*.duckdb")):
                break
            time.sleep(0.005)
        killed_in_worker_phase += proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert killed_in_worker_phase >= 8  # the kills landed while spools and temp catalogs existed
    time.sleep(0.5)  # the orphaned pool workers notice their parent is gone
    build_catalog(root)  # the next index starts: it removes what the dead writers left
    assert set(_foxlake_leftovers(root)) <= before, set(_foxlake_leftovers(root)) - before
    assert sql(root, "select count(*) as n from models")["n"][0] == 1500  # and the catalog is whole
