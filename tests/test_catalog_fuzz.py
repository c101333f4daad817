"""Fuzz the indexer: random and malformed model metas (wrong types, missing fields, invalid JSON, unsorted
feature lists, bad checksums, wrong path levels, …) never crash it, and every meta lands either in ``models``
(then the contracts accept it too) or in ``rejected`` with a reason."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import build_catalog, sql
from catalog.synthetic import model_meta
from contracts.io import write_atomic_bytes
from contracts.model_meta import load_model_meta

REQUIRED = ("family", "target", "feature_list", "n_features", "metrics", "model_checksum", "interval_minutes")
FIELDS = REQUIRED + ("symbol", "view", "route", "input_mode", "sequence_length", "cv_scores", "n_rows_train",
                     "params_used", "cross_sectional_ranking", "features", "model_file", "run_id")  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)

MUTATIONS = [
    "none", "drop", "wrong_type", "unsort", "bad_checksum", "checksum_mismatch", "n_features", "interval",
    "view_route", "symbol_on_cs", "raw_sequence", "family", "top_level", "invalid_json", "not_utf8", "nan",
    "huge_int", "surrogate", "deep", "legacy_features", "ranking", "no_model_file", "empty",
]  # fmt: skip
PATHS = ["valid", "no_view", "lower_family", "symbol_on_cs", "extra_level", "outside_models", "bad_view",
         "ss_without_symbol"]  # fmt: skip


@st.composite
def metas(draw):
    """(path kind, view, file bytes of model_meta.json, whether to write the model file)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    view = draw(st.sampled_from(["CROSS_SECTIONAL", "SYMBOL_SPECIFIC"]))
    body = rng.randbytes(64)
    doc = model_meta(rng, target="fwd_ret_5m", view=view, symbol="AAA" if view == "SYMBOL_SPECIFIC" else None,
                     family="Ridge", checksum=hashlib.sha256(body).hexdigest(), interval_minutes=5.0,
                     run_id="fz", run_instance_id="i1", n_features=4)  # fmt: skip
    mutation = draw(st.sampled_from(MUTATIONS))
    write_model = True
    raw: bytes | None = None
    if mutation == "drop":
        doc.pop(draw(st.sampled_from(REQUIRED)))
    elif mutation == "wrong_type":
        doc[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif mutation == "unsort":
        doc["feature_list"] = list(reversed(doc["feature_list"]))
    elif mutation == "bad_checksum":
        doc["model_checksum"] = draw(st.text(max_size=70))
    elif mutation == "checksum_mismatch":
        doc["model_checksum"] = "0" * 64
    elif mutation == "n_features":
        doc["n_features"] = draw(st.integers(-3, 40))
    elif mutation == "interval":
        doc["interval_minutes"] = draw(st.sampled_from([0, -1, 1e308, "5", None, True]))
    elif mutation == "view_route":
        doc["route"] = draw(st.sampled_from(["BOTH", "BLOCKED", "x", None, "CROSS_SECTIONAL", "SYMBOL_SPECIFIC"]))
    elif mutation == "symbol_on_cs":
        doc["symbol"] = "AAA" if view == "CROSS_SECTIONAL" else None
    elif mutation == "raw_sequence":
        doc["input_mode"] = "raw_sequence"
        doc["feature_list"], doc["n_features"] = [], 0
        if draw(st.booleans()):
            doc.update(sequence_length=64, sequence_channels=["o", "h", "l", "c", "v"], sequence_normalization="minmax")
    elif mutation == "family":
        doc["family"] = draw(st.sampled_from(["ridge", "RIDGE", "NoSuch", "", 7]))
    elif mutation == "top_level":
        raw = json.dumps(draw(st.lists(json_values, max_size=3) | st.integers() | st.text(max_size=5))).encode()
    elif mutation == "invalid_json":
        text = json.dumps(doc)
        raw = text[: draw(st.integers(0, len(text) - 1))].encode()
    elif mutation == "not_utf8":
        raw = b'{"family": "\xff\xfe"}'
    elif mutation == "nan":
        raw = json.dumps(doc).replace('"cv_std": 0.01', '"cv_std": NaN').encode()
    elif mutation == "huge_int":
        doc["n_rows_train"] = 2**70
    elif mutation == "surrogate":
        doc["metrics"]["metric_kind"] = "\ud800"
    elif mutation == "deep":
        raw = ("[" * 5000 + "]" * 5000).encode()
    elif mutation == "legacy_features":
        doc["features"] = doc.pop("feature_list")
        doc.pop("n_features")
    elif mutation == "ranking":
        doc["cross_sectional_ranking"] = draw(
            st.sampled_from([{"enabled": True}, {"enabled": False}, {"enabled": True, "target_type": "cs_zscore",
                             "loss_type": "x", "training_metrics": {"best_ic": 0.1, "best_spread": 0.1,
                                                                    "epochs_trained": 3}}, "yes"])
        )  # fmt: skip
    elif mutation == "no_model_file":
        write_model = False
    elif mutation == "empty":
        raw = b""
    if raw is None:
        raw = json.dumps(doc, sort_keys=True).encode()
    return draw(st.sampled_from(PATHS)), view, raw, body, write_model


def _meta_dir(root: Path, i: int, kind: str, view: str) -> Path:
    run = root / "runs" / "fz" / "i1"
    models = run / "targets" / "fwd_ret_5m" / "models"
    v = f"view={view}"
    sym = "symbol=AAA" if view == "SYMBOL_SPECIFIC" else None
    fam = "family=Ridge"
    base = {
        "valid": models / v / (sym or "") / fam,
        "no_view": models / fam,
        "lower_family": models / v / (sym or "") / "family=ridge",
        "symbol_on_cs": models / "view=CROSS_SECTIONAL" / "symbol=AAA" / fam,
        "extra_level": models / v / "extra" / fam,
        "outside_models": run / "targets" / "fwd_ret_5m",
        "bad_view": models / "view=BOTH" / fam,
        "ss_without_symbol": models / "view=SYMBOL_SPECIFIC" / fam,
    }[kind]
    # distinct directories for several metas in one example: vary the target level
    return Path(str(base).replace("fwd_ret_5m", f"fwd_ret_5m_{i}"))


def _check(root: Path, written: list[Path]) -> None:
    accepted = {r["meta_path"]: r for r in sql(root, "select meta_path, checksum_ok, model_sha256, model_checksum "
                                                     "from models").to_dicts()}  # fmt: skip
    rejected = dict(sql(root, "select path, reason from rejected where kind = 'model_meta'").iter_rows())
    assert len(accepted) + len(rejected) == len(written)
    for path in written:
        rel = path.relative_to(root).as_posix()
        assert (rel in accepted) != (rel in rejected), rel
        if rel in rejected:
            assert rejected[rel].strip(), rel
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = load_model_meta(path)  # what the catalog accepts, the contracts accept
        row = accepted[rel]
        assert row["checksum_ok"] == (meta.model_checksum is not None and row["model_sha256"] == meta.model_checksum)


def _write(root: Path, examples: list) -> list[Path]:
    written = []
    for i, (kind, view, raw, body, write_model) in enumerate(examples):
        d = _meta_dir(root, i, kind, view)
        d.mkdir(parents=True, exist_ok=True)
        if write_model:
            (d / "model.joblib").write_bytes(body)
        (d / "model_meta.json").write_bytes(raw)
        written.append(d / "model_meta.json")
    return written


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(metas(), min_size=1, max_size=6))
def test_random_and_malformed_metas_never_crash_the_indexer(examples) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = _write(root, examples)
        build_catalog(root, workers=1)
        _check(root, written)
        # incremental passes: every meta broken in place (seen with verify), then restored atomically
        originals = [p.read_bytes() for p in written]
        for path in written:
            path.write_bytes(b"{}")
        build_catalog(root, workers=1, verify=True)
        _check(root, written)
        assert sql(root, "select count(*) as n from models")["n"][0] == 0
        for path, raw in zip(written, originals, strict=True):
            write_atomic_bytes(path, raw)
        build_catalog(root, workers=1)
        _check(root, written)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(metas(), min_size=150, max_size=200))
def test_a_large_mixed_batch_is_indexed_in_bulk(examples) -> None:
    """Many metas in one insert: the rows the catalog refuses are found by bisection and rejected."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = _write(root, examples)
        build_catalog(root, workers=1)
        _check(root, written)
        assert build_catalog(root, full=True).models == sql(root, "select count(*) as n from models")["n"][0]


def test_malformed_manifests_and_routing_files_are_rejected_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r" / "i"
    payloads = [b"", b"[]", b'{"run_id": 1}', b"{bad", json.dumps({"run_id": "r", "run_instance_id": "i",
                "timestamp": "t", "git_sha": "g", "target_index": {"t": {"status": "weird"}}}).encode()]  # fmt: skip
    for i, data in enumerate(payloads):
        d = tmp_path / "runs" / "r" / f"i{i}"
        d.mkdir(parents=True)
        (d / "manifest.json").write_bytes(data)
        (d / "globals").mkdir()
        (d / "globals" / "routing_decisions.json").write_bytes(data)
    (run / "targets" / "t" / "decision").mkdir(parents=True)
    (run / "targets" / "t" / "decision" / "routing_decision.json").write_text('{"t": {"route": "BOTH", "reason": ""}}')
    rep = build_catalog(tmp_path)
    assert rep.runs == 0 and rep.routing_decisions == 0
    rejected = sql(tmp_path, "select path, kind, reason from rejected")
    assert rejected.height == 2 * len(payloads) + 1
    assert all(r.strip() for r in rejected["reason"])
