"""The integration contracts (``contracts/``): schemas, rules 1–7, paths, canonical JSON, atomic writes."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import contracts
from contracts import (
    ContractError,
    ContractWarning,
    canonical_json,
    load_manifest,
    load_model_meta,
    load_routing,
    parse_manifest,
    parse_model_meta,
    parse_routing,
    write_atomic_json,
)
from contracts.bridge import (
    EngineEvent,
    EngineState,
    PositionsPayload,
    RiskStatus,
    TrainingEvent,
    utc_now_iso,
)
from contracts.families import FAMILIES, canonical_family, model_filename
from contracts.io import sha256_file, write_atomic_bytes, write_atomic_yaml
from contracts.manifest import check_target_coverage
from contracts.paths import (
    get_global_routing_path,
    get_manifest_path,
    get_model_path,
    get_run_dir,
    get_scoped_artifact_dir,
    get_target_routing_path,
    get_view_routing_path,
    parse_model_dir,
)
from contracts.schema import SCHEMAS, write_json_schemas

REPO = Path(__file__).resolve().parents[1]
CHECKSUM = hashlib.sha256(b"model bytes").hexdigest()

# --------------------------------------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------------------------------------


def minimal_meta() -> dict[str, Any]:
    """Only the required fields of model_meta v1.4."""
    return {
        "family": "LightGBM",
        "target": "fwd_ret_15m",
        "feature_list": ["f_mom_5", "f_ret_1", "f_vol_20"],
        "n_features": 3,
        "metrics": {"mean_IC": 0.031, "mean_RankIC": 0.027, "IC_IR": 0.45},
        "model_checksum": CHECKSUM,
        "interval_minutes": 15.0,
    }


def full_meta() -> dict[str, Any]:
    """Every optional block: CROSS_SECTIONAL scope, raw_sequence fields and an enabled ranking block."""
    doc = minimal_meta()
    doc.update(
        {
            "family": "CSRanker",
            "route": "CROSS_SECTIONAL",
            "view": "CROSS_SECTIONAL",
            "symbol": None,
            "params_used": {"lr": 0.001, "hidden": 64, "nested": {"dropout": 0.1}},
            "feature_importance": {"f_mom_5": 0.5, "f_ret_1": 0.3, "f_vol_20": 0.2},
            "cv_scores": [0.02, 0.03, 0.04],
            "cv_mean": 0.03,
            "cv_std": 0.0082,
            "package_versions": {"torch": "2.13.0", "numpy": "2.1.0"},
            "n_rows_train": 12000,
            "n_rows_val": 3000,
            "input_mode": "raw_sequence",
            "sequence_length": 64,
            "sequence_channels": ["open", "high", "low", "close", "volume"],
            "sequence_normalization": "log_returns",
            "cross_sectional_ranking": {
                "enabled": True,
                "target_type": "cs_percentile",
                "loss_type": "pairwise_logistic",
                "sequence_length": 64,
                "normalization": "log_returns",
                "training_metrics": {
                    "best_ic": 0.051,
                    "best_spread": 0.0031,
                    "epochs_trained": 40,
                    "ic_ir": 0.8,
                    "ic_hit_rate": 0.61,
                    "turnover": 0.35,
                    "net_spread": 0.0019,
                },
            },
            "model_file": "model.pt",
        }
    )
    doc["metrics"]["extra_metric"] = 1.5  # "... other metrics" are allowed
    return doc


def symbol_meta() -> dict[str, Any]:
    doc = minimal_meta()
    doc.update({"family": "XGBoost", "view": "SYMBOL_SPECIFIC", "route": "SYMBOL_SPECIFIC", "symbol": "AAPL"})
    return doc


def manifest_doc() -> dict[str, Any]:
    return {
        "run_id": "demo",
        "run_instance_id": "demo_20240101T000000",
        "timestamp": "2024-01-01T00:00:00+00:00",
        "git_sha": "0123abcd",
        "target_index": {
            "fwd_ret_15m": {
                "status": "complete",
                "families_trained": ["lightgbm", "XGBoost"],
                "view": "CROSS_SECTIONAL",
                "auc": 0.56,
            },
            "fwd_ret_60m": {"status": "partial", "families_trained": ["Ridge"], "view": "SYMBOL_SPECIFIC"},
            "ret_5m": {"status": "failed", "families_trained": [], "view": "CROSS_SECTIONAL", "auc": None},
        },
        "config_digest": hashlib.sha256(b"cfg").hexdigest(),
        "is_comparable": True,
        "experiment_config": {"name": "demo"},
        "run_metadata": {"host": "ci"},
    }


def routing_doc() -> dict[str, Any]:
    return {
        "fwd_ret_15m": {
            "route": "CROSS_SECTIONAL",
            "reason": "skill01_cs 0.62 >= 0.55 and skill01_sym_mean 0.48 < 0.55",
            "skill01_cs": 0.62,
            "skill01_sym_mean": 0.48,
            "auc": 0.62,
            "frac_symbols_good": 0.2,
            "winner_symbols": ["AAPL"],
            "n_symbols_evaluated": 10,
        },
        "fwd_ret_60m": {
            "route": "SYMBOL_SPECIFIC",
            "reason": "frac_symbols_good 0.7 >= 0.5",
            "skill01_cs": 0.5,
        },
        "ret_5m": {"route": "BOTH", "reason": "both views show skill (cs 0.60, sym 0.58)"},
        "ret_1d": {"route": "BLOCKED", "reason": "no view reaches skill 0.52 (cs 0.50, sym 0.49)"},
    }


def position(symbol: str, shares: int = 10) -> dict[str, Any]:
    value = shares * 101.0
    return {
        "symbol": symbol,
        "shares": shares,
        "entry_price": 100.0,
        "current_price": 101.0,
        "market_value": value,
        "unrealized_pnl": shares * 1.0,
        "unrealized_pnl_pct": 1.0,
        "weight": abs(value) / 10_000.0,
        "entry_time": "2024-01-01T14:30:00+00:00",
        "side": "long" if shares > 0 else "short",
    }


def positions_doc(symbols: list[str]) -> dict[str, Any]:
    rows = [position(s, 10 if i % 2 == 0 else -5) for i, s in enumerate(symbols)]
    return {
        "positions": rows,
        "total_positions": len(rows),
        "long_count": sum(r["side"] == "long" for r in rows),
        "short_count": sum(r["side"] == "short" for r in rows),
        "total_market_value": sum(r["market_value"] for r in rows),
    }


# --------------------------------------------------------------------------------------------------------
# 1. valid documents
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [full_meta, minimal_meta, symbol_meta], ids=["full", "minimal", "symbol"])
def test_valid_model_meta_parses_and_round_trips(make):
    doc = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContractWarning)
        meta = parse_model_meta(doc)
        again = parse_model_meta(json.loads(canonical_json(meta.to_document())))
    assert meta.feature_list == doc["feature_list"]
    assert meta.n_features == len(doc["feature_list"])
    assert meta.model_checksum == CHECKSUM
    assert meta.interval_minutes == 15.0
    assert meta.metrics.mean_IC == doc["metrics"]["mean_IC"]
    assert again.to_document() == meta.to_document()
    assert meta.to_document()["contract_version"] == contracts.CONTRACT_VERSION == "1.4"


def test_full_model_meta_keeps_every_optional_block():
    meta = parse_model_meta(full_meta())
    assert meta.family == "CSRanker"
    assert meta.input_mode == "raw_sequence"
    assert meta.sequence_length == 64
    assert meta.sequence_channels == ["open", "high", "low", "close", "volume"]
    assert meta.sequence_normalization == "log_returns"
    csr = meta.cross_sectional_ranking
    assert csr is not None and csr.enabled and csr.target_type == "cs_percentile"
    assert csr.loss_type == "pairwise_logistic"
    assert csr.training_metrics.best_ic == 0.051
    assert csr.training_metrics.epochs_trained == 40
    assert csr.training_metrics.net_spread == 0.0019
    doc = meta.to_document()
    assert doc["metrics"]["extra_metric"] == 1.5
    assert doc["params_used"]["nested"] == {"dropout": 0.1}
    assert doc["cross_sectional_ranking"]["training_metrics"]["ic_hit_rate"] == 0.61
    assert "features" not in doc


def test_symbol_specific_model_meta_keeps_symbol():
    meta = parse_model_meta(symbol_meta())
    assert (meta.view, meta.route, meta.symbol, meta.family) == (
        "SYMBOL_SPECIFIC",
        "SYMBOL_SPECIFIC",
        "AAPL",
        "XGBoost",
    )


def test_model_meta_checksum_of_real_file_passes_rule_2(tmp_path):
    model = tmp_path / "model.txt"
    model.write_bytes(b"tree\n" * 1000)
    doc = minimal_meta()
    doc["model_checksum"] = sha256_file(model)
    assert doc["model_checksum"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert parse_model_meta(doc).model_checksum == doc["model_checksum"]


def test_valid_manifest(tmp_path):
    path = get_manifest_path(tmp_path)
    write_atomic_json(path, manifest_doc())
    manifest = load_manifest(path)
    assert set(manifest.target_index) == {"fwd_ret_15m", "fwd_ret_60m", "ret_5m"}
    assert manifest.target_index["fwd_ret_15m"].families_trained == ["LightGBM", "XGBoost"]
    assert manifest.target_index["fwd_ret_60m"].view == "SYMBOL_SPECIFIC"
    assert manifest.target_index["ret_5m"].status == "failed"
    assert manifest.is_comparable is True
    check_target_coverage(manifest, {"fwd_ret_15m", "fwd_ret_60m"})


def test_valid_routing_with_all_four_routes(tmp_path):
    path = get_global_routing_path(tmp_path)
    write_atomic_json(path, routing_doc())
    decisions = load_routing(path).root
    assert {t: d.route for t, d in decisions.items()} == {
        "fwd_ret_15m": "CROSS_SECTIONAL",
        "fwd_ret_60m": "SYMBOL_SPECIFIC",
        "ret_5m": "BOTH",
        "ret_1d": "BLOCKED",
    }
    assert set(contracts.ROUTES) == {d.route for d in decisions.values()}
    assert decisions["ret_5m"].views() == ["CROSS_SECTIONAL", "SYMBOL_SPECIFIC"]
    assert decisions["ret_1d"].views() == []
    assert decisions["fwd_ret_15m"].views() == ["CROSS_SECTIONAL"]
    assert decisions["fwd_ret_60m"].views() == ["SYMBOL_SPECIFIC"]
    assert decisions["fwd_ret_15m"].winner_symbols == ["AAPL"]


BRIDGE_VALID = [
    (
        EngineState,
        {
            "status": "running",
            "current_stage": "prediction",
            "last_cycle": "2024-01-01T14:30:00+00:00",
            "uptime_seconds": 12.5,
            "cycle_count": 3,
            "symbols_active": 5,
        },
    ),
    (EngineState, {"status": "stopped", "current_stage": "idle", "last_cycle": None, "uptime_seconds": 0.0}),
    (PositionsPayload, positions_doc(["AAPL", "MSFT", "NVDA"])),
    (PositionsPayload, positions_doc([])),
    (
        RiskStatus,
        {
            "trading_allowed": False,
            "kill_switch_active": True,
            "kill_switch_reason": "daily loss limit",
            "daily_pnl_pct": -0.021,
            "daily_loss_limit_pct": 0.02,
            "drawdown_pct": 0.05,
            "max_drawdown_limit_pct": 0.1,
            "gross_exposure": 0.9,
            "net_exposure": 0.1,
            "max_gross_exposure": 1.0,
            "warnings": [{"type": "daily_loss", "message": "limit hit", "severity": "critical"}],
            "last_check": "2024-01-01T14:30:00+00:00",
        },
    ),
    (
        EngineEvent,
        {
            "event_type": "cycle_complete",
            "timestamp": "2024-01-01T14:30:00+00:00",
            "severity": "info",
            "message": "cycle 3 done",
            "data": {"cycle": 3},
        },
    ),
    (
        EngineEvent,
        {"event_type": "x", "timestamp": "2024-01-01T14:30:00Z", "severity": "debug", "message": "m"},
    ),
    (EngineEvent, {"event_type": "x", "timestamp": utc_now_iso(), "severity": "critical", "message": "m"}),
    (
        TrainingEvent,
        {
            "event_type": "progress",
            "timestamp": "2024-01-01T14:30:00+00:00",
            "run_id": "demo",
            "stage": "training",
            "progress_pct": 42.0,
            "current_target": "fwd_ret_15m",
            "targets_complete": 1,
            "targets_total": 3,
        },
    ),
    (
        TrainingEvent,
        {
            "event_type": "target_complete",
            "timestamp": "2024-01-01T14:31:00Z",
            "run_id": "demo",
            "target": "fwd_ret_15m",
            "status": "success",
            "models_trained": 4,
            "best_auc": None,
        },
    ),
]


@pytest.mark.parametrize(
    ("model", "doc"), BRIDGE_VALID, ids=[f"{m.__name__}-{i}" for i, (m, _) in enumerate(BRIDGE_VALID)]
)
def test_valid_bridge_payloads(model, doc):
    obj = model.model_validate(doc)
    dumped = obj.model_dump(mode="json")
    for key, value in doc.items():
        assert dumped[key] == value
    # a payload survives the wire: canonical JSON then validation again
    assert model.model_validate(json.loads(canonical_json(dumped))).model_dump(mode="json") == dumped


# --------------------------------------------------------------------------------------------------------
# 2. model_meta rule violations
# --------------------------------------------------------------------------------------------------------


def _set(path: str, value: Any):
    """A mutation that sets a dotted key (creating nothing else)."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _drop(path: str):
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _features(names: list[str]):
    def mutate(doc: dict[str, Any]) -> None:
        doc["feature_list"] = names
        doc["n_features"] = len(names)

    return mutate


RULE_VIOLATIONS = [
    # (id, base, mutation, field, rule: spec rule number or a named rule)
    ("unsorted", minimal_meta, _features(["f_ret_1", "f_mom_5"]), "feature_list", 1),
    ("duplicates", minimal_meta, _features(["a", "a", "b"]), "feature_list", 1),
    ("n_features", minimal_meta, _set("n_features", 4), "n_features", "n_features"),
    ("checksum-short", minimal_meta, _set("model_checksum", "abc123"), "model_checksum", 2),
    ("checksum-upper", minimal_meta, _set("model_checksum", CHECKSUM.upper()), "model_checksum", 2),
    ("checksum-nonhex", minimal_meta, _set("model_checksum", "g" * 64), "model_checksum", 2),
    ("checksum-65", minimal_meta, _set("model_checksum", CHECKSUM + "0"), "model_checksum", 2),
    ("interval-zero", minimal_meta, _set("interval_minutes", 0), "interval_minutes", 3),
    ("interval-neg", minimal_meta, _set("interval_minutes", -15.0), "interval_minutes", 3),
    ("interval-inf", minimal_meta, _set("interval_minutes", math.inf), "interval_minutes", 3),
    ("seq-no-length", full_meta, _drop("sequence_length"), "sequence_length", 6),
    ("seq-zero-length", full_meta, _set("sequence_length", 0), "sequence_length", 6),
    ("seq-no-channels", full_meta, _drop("sequence_channels"), "sequence_channels", 6),
    ("seq-empty-channels", full_meta, _set("sequence_channels", []), "sequence_channels", 6),
    ("seq-no-norm", full_meta, _drop("sequence_normalization"), "sequence_normalization", 6),
    (
        "seq-bad-norm",
        full_meta,
        _set("sequence_normalization", "zscore"),
        "sequence_normalization",
        6,
    ),
    ("features-empty", minimal_meta, _features([]), "feature_list", 6),
    (
        "csr-target-type",
        full_meta,
        _set("cross_sectional_ranking.target_type", "raw_return"),
        "cross_sectional_ranking.target_type",
        7,
    ),
    (
        "csr-no-target-type",
        full_meta,
        _drop("cross_sectional_ranking.target_type"),
        "cross_sectional_ranking.target_type",
        7,
    ),
    (
        "csr-no-loss",
        full_meta,
        _drop("cross_sectional_ranking.loss_type"),
        "cross_sectional_ranking.loss_type",
        7,
    ),
    (
        "csr-no-metrics",
        full_meta,
        _drop("cross_sectional_ranking.training_metrics"),
        "cross_sectional_ranking.training_metrics",
        7,
    ),
    (
        "csr-length-differs",
        full_meta,
        _set("cross_sectional_ranking.sequence_length", 32),
        "cross_sectional_ranking.sequence_length",
        7,
    ),
    (
        "csr-normalization-differs",
        full_meta,
        _set("cross_sectional_ranking.normalization", "minmax"),
        "cross_sectional_ranking.normalization",
        7,
    ),
    ("ss-no-symbol", symbol_meta, _drop("symbol"), "symbol", "view"),
    ("ss-route-no-symbol", minimal_meta, _set("route", "SYMBOL_SPECIFIC"), "symbol", "view"),
    ("cs-with-symbol", full_meta, _set("symbol", "AAPL"), "symbol", "view"),
    ("route-vs-view", symbol_meta, _set("route", "CROSS_SECTIONAL"), "route", "view"),
    ("view-both", minimal_meta, _set("view", "BOTH"), "view", "view"),
    ("unknown-family", minimal_meta, _set("family", "RandomForest"), "family", "family"),
]


@pytest.mark.parametrize(
    ("base", "mutate", "field", "rule"), [c[1:] for c in RULE_VIOLATIONS], ids=[c[0] for c in RULE_VIOLATIONS]
)
def test_model_meta_rule_violation(base, mutate, field, rule):
    rule = f"model_meta rule {rule}" if isinstance(rule, int) else f"model_meta {rule}"
    doc = base()
    mutate(doc)
    with pytest.raises(ContractError) as info:
        parse_model_meta(doc)
    err = info.value
    assert err.field == field
    assert err.rule == rule
    assert err.detail
    assert field in str(err) and rule in str(err)


SCHEMA_ERRORS = [
    ("mean_IC-str", _set("metrics.mean_IC", "high"), "metrics.mean_IC"),
    ("IC_IR-missing", _drop("metrics.IC_IR"), "metrics.IC_IR"),
    ("target-missing", _drop("target"), "target"),
    ("checksum-missing", _drop("model_checksum"), "model_checksum"),
    ("checksum-int", _set("model_checksum", 12345), "model_checksum"),
    ("feature_list-str", _set("feature_list", "f_mom_5"), "feature_list"),
    ("feature_list-int-item", _set("feature_list", ["a", 3]), "feature_list.1"),
    ("n_features-word", _set("n_features", "three"), "n_features"),
    ("interval-word", _set("interval_minutes", "15m"), "interval_minutes"),
    ("input_mode", _set("input_mode", "images"), "input_mode"),
    ("csr-enabled-missing", _drop("cross_sectional_ranking.enabled"), "cross_sectional_ranking.enabled"),
    (
        "csr-epochs",
        _set("cross_sectional_ranking.training_metrics.epochs_trained", "many"),
        "cross_sectional_ranking.training_metrics.epochs_trained",
    ),
    (
        "csr-best-ic-string",
        _set("cross_sectional_ranking.training_metrics.best_ic", "0.05"),
        "cross_sectional_ranking.training_metrics.best_ic",
    ),
    ("csr-enabled-string", _set("cross_sectional_ranking.enabled", "yes"), "cross_sectional_ranking.enabled"),
    ("csr-loss-number", _set("cross_sectional_ranking.loss_type", 3), "cross_sectional_ranking.loss_type"),
    (
        "csr-best-ic-missing",
        _drop("cross_sectional_ranking.training_metrics.best_ic"),
        "cross_sectional_ranking.training_metrics.best_ic",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in SCHEMA_ERRORS], ids=[c[0] for c in SCHEMA_ERRORS])
def test_model_meta_schema_error_names_dotted_field(mutate, field):
    doc = full_meta()
    mutate(doc)
    with pytest.raises(ContractError) as info:
        parse_model_meta(doc)
    assert info.value.field == field
    assert "schema" in info.value.rule


@pytest.mark.parametrize("doc", [None, [], "model_meta", 3], ids=["none", "list", "str", "int"])
def test_model_meta_not_an_object_is_a_schema_error(doc):
    with pytest.raises(ContractError) as info:
        parse_model_meta(doc)
    assert "schema" in info.value.rule


@pytest.mark.parametrize(
    ("mutate", "field", "rule"),
    [
        (_features(["b", "a"]), "feature_list", "model_meta rule 1"),
        (_set("metrics.mean_IC", "high"), "metrics.mean_IC", "model_meta schema"),
    ],
    ids=["rule", "schema"],
)
def test_load_model_meta_error_names_the_file(tmp_path, mutate, field, rule):
    doc = minimal_meta()
    mutate(doc)
    path = tmp_path / "family=LightGBM" / "model_meta.json"
    write_atomic_json(path, doc)
    with pytest.raises(ContractError) as info:
        load_model_meta(path)
    err = info.value
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: ")
    assert (err.field, err.rule) == (field, rule)


def test_load_model_meta_bad_json_names_the_file(tmp_path):
    path = tmp_path / "model_meta.json"
    path.write_text('{"family": "LightGBM",', encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_model_meta(path)
    assert info.value.rule == "json"
    assert str(path) in str(info.value)


def test_load_model_meta_valid_file(tmp_path):
    path = tmp_path / "model_meta.json"
    write_atomic_json(path, full_meta())
    assert load_model_meta(path) == parse_model_meta(full_meta())


# --------------------------------------------------------------------------------------------------------
# 3. rules 4/5, legacy features, family spelling, best_ic
# --------------------------------------------------------------------------------------------------------


def test_model_checksum_none_is_accepted():
    doc = minimal_meta()
    doc["model_checksum"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContractWarning)
        meta = parse_model_meta(doc)
    assert meta.model_checksum is None
    out = meta.to_document()
    assert "model_checksum" in out and out["model_checksum"] is None  # required key kept, even when None


@pytest.mark.parametrize("how", ["missing", "null"])
def test_input_mode_defaults_to_features(how):
    doc = minimal_meta()
    if how == "null":
        doc["input_mode"] = None
    meta = parse_model_meta(doc)
    assert meta.input_mode == "features"
    assert meta.to_document()["input_mode"] == "features"


def test_raw_sequence_may_have_empty_feature_list():
    doc = full_meta()
    doc["feature_list"], doc["n_features"], doc["feature_importance"] = [], 0, None
    meta = parse_model_meta(doc)
    assert meta.feature_list == [] and meta.input_mode == "raw_sequence"


def test_disabled_ranking_block_is_not_checked():
    doc = minimal_meta()
    doc["cross_sectional_ranking"] = {"enabled": False, "target_type": "whatever"}
    meta = parse_model_meta(doc)
    assert meta.cross_sectional_ranking is not None and not meta.cross_sectional_ranking.enabled


@pytest.mark.parametrize("with_n", [True, False], ids=["with-n_features", "without-n_features"])
def test_legacy_features_field_warns_and_is_read_as_feature_list(with_n):
    doc = minimal_meta()
    doc["features"] = doc.pop("feature_list")
    if not with_n:
        del doc["n_features"]
    with pytest.warns(ContractWarning, match="features"):
        meta = parse_model_meta(doc)
    assert meta.feature_list == ["f_mom_5", "f_ret_1", "f_vol_20"]
    assert meta.n_features == 3
    out = meta.to_document()
    assert out["feature_list"] == ["f_mom_5", "f_ret_1", "f_vol_20"]
    assert "features" not in out  # deprecated: read, never written


def test_contract_1_0_meta_without_checksum_or_interval_reads_with_both_unknown():
    doc = minimal_meta()
    doc["features"] = doc.pop("feature_list")
    del doc["model_checksum"], doc["interval_minutes"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ContractWarning)
        meta = parse_model_meta(doc)
    assert meta.model_checksum is None and meta.interval_minutes is None
    messages = " ".join(str(w.message) for w in caught)
    assert "'features'" in messages and "without interval_minutes" in messages


@pytest.mark.parametrize("mutate", [_drop("interval_minutes"), _set("interval_minutes", None)], ids=["missing", "null"])
def test_interval_is_required_from_contract_1_1_on(mutate):
    doc = minimal_meta()
    mutate(doc)
    with pytest.raises(ContractError) as err:
        parse_model_meta(doc)
    assert err.value.field == "interval_minutes"


def test_feature_list_wins_over_legacy_features_without_warning():
    doc = minimal_meta()
    doc["features"] = ["zzz_old"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContractWarning)
        meta = parse_model_meta(doc)
    assert meta.feature_list == minimal_meta()["feature_list"]


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("lightgbm", "LightGBM"),
        ("LIGHTGBM", "LightGBM"),
        ("xgboost", "XGBoost"),
        (" catboost ", "CatBoost"),
        ("elasticnet", "ElasticNet"),
        ("csranker", "CSRanker"),
        ("Transformer", "Transformer"),
    ],
)
def test_family_is_case_insensitive_and_canonicalised(spelling, canonical):
    doc = minimal_meta()
    doc["family"] = spelling
    assert parse_model_meta(doc).family == canonical
    assert canonical_family(spelling) == canonical


def test_unknown_family_lookup_lists_known_ones():
    with pytest.raises(KeyError, match="LightGBM"):
        canonical_family("RandomForest")


@pytest.mark.parametrize("best_ic", [0.0, -0.02])
def test_ranking_best_ic_not_positive_warns(best_ic):
    doc = full_meta()
    doc["cross_sectional_ranking"]["training_metrics"]["best_ic"] = best_ic
    with pytest.warns(ContractWarning, match="best_ic"):
        meta = parse_model_meta(doc)
    assert meta.cross_sectional_ranking.training_metrics.best_ic == best_ic


# --------------------------------------------------------------------------------------------------------
# 4. manifest, routing, bridge rejections
# --------------------------------------------------------------------------------------------------------


def test_manifest_bad_status_names_the_target():
    doc = manifest_doc()
    doc["target_index"]["fwd_ret_60m"]["status"] = "done"
    with pytest.raises(ContractError) as info:
        parse_manifest(doc)
    assert info.value.field == "target_index.fwd_ret_60m.status"
    assert "manifest" in info.value.rule


def test_manifest_complete_without_families_rejected():
    doc = manifest_doc()
    doc["target_index"]["fwd_ret_15m"]["families_trained"] = []
    with pytest.raises(ContractError) as info:
        parse_manifest(doc)
    assert info.value.field.endswith("families_trained")
    assert info.value.rule == "manifest rule 3"


def test_manifest_rule_error_names_the_target():
    doc = manifest_doc()
    doc["target_index"]["fwd_ret_15m"]["families_trained"] = []
    with pytest.raises(ContractError) as info:
        parse_manifest(doc)
    assert info.value.field == "target_index.fwd_ret_15m.families_trained"


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("families_trained", ["LightGBM", "RandomForest"], "families_trained"),
        ("view", "BOTH", "view"),
    ],
)
def test_manifest_entry_bad_family_or_view_rejected(key, value, field):
    doc = manifest_doc()
    doc["target_index"]["fwd_ret_15m"][key] = value
    with pytest.raises(ContractError) as info:
        parse_manifest(doc)
    assert info.value.field.endswith(field)


@pytest.mark.parametrize("field", ["run_id", "run_instance_id", "timestamp", "git_sha", "target_index"])
def test_manifest_required_field_missing(field):
    doc = manifest_doc()
    del doc[field]
    with pytest.raises(ContractError) as info:
        parse_manifest(doc)
    assert info.value.field == field


def test_manifest_load_error_names_the_file(tmp_path):
    doc = manifest_doc()
    doc["target_index"]["ret_5m"]["status"] = "unknown"
    path = tmp_path / "manifest.json"
    write_atomic_json(path, doc)
    with pytest.raises(ContractError) as info:
        load_manifest(path)
    assert info.value.source == str(path) and str(path) in str(info.value)


def test_check_target_coverage_names_missing_target():
    manifest = parse_manifest(manifest_doc())
    with pytest.raises(ContractError) as info:
        check_target_coverage(manifest, {"fwd_ret_15m", "ret_30m"})
    assert info.value.field == "target_index"
    assert info.value.rule == "manifest rule 1"
    assert "ret_30m" in str(info.value) and "fwd_ret_15m" not in info.value.detail


@pytest.mark.parametrize("route", ["CROSS_SECTIONAL_ONLY", "both", "", "SKIP"])
def test_routing_route_outside_the_four_rejected(route):
    doc = routing_doc()
    doc["ret_5m"]["route"] = route
    with pytest.raises(ContractError) as info:
        parse_routing(doc)
    assert info.value.field == "ret_5m.route"
    assert info.value.rule == "routing rule 1"


@pytest.mark.parametrize("reason", ["", "   ", None], ids=["empty", "blank", "null"])
def test_routing_empty_reason_rejected(reason):
    doc = routing_doc()
    doc["ret_1d"]["reason"] = reason
    with pytest.raises(ContractError) as info:
        parse_routing(doc)
    assert info.value.field == "ret_1d.reason"
    assert info.value.rule == "routing rule 2"


def test_routing_missing_reason_rejected(tmp_path):
    doc = routing_doc()
    del doc["fwd_ret_15m"]["reason"]
    path = get_target_routing_path(tmp_path, "fwd_ret_15m")
    write_atomic_json(path, doc)
    with pytest.raises(ContractError) as info:
        load_routing(path)
    assert info.value.field == "fwd_ret_15m.reason"
    assert info.value.source == str(path)


def test_positions_unsorted_rejected():
    with pytest.raises(ValidationError, match="sorted by symbol"):
        PositionsPayload.model_validate(positions_doc(["MSFT", "AAPL"]))


@pytest.mark.parametrize(
    "timestamp",
    ["2024-01-01T14:30:00+02:00", "2024-01-01T14:30:00-05:00", "2024-01-01T14:30:00", "yesterday"],
    ids=["plus2", "minus5", "naive", "garbage"],
)
@pytest.mark.parametrize("model", [EngineEvent, TrainingEvent])
def test_event_timestamp_must_be_utc(model, timestamp):
    doc = {
        "event_type": "progress",
        "timestamp": timestamp,
        "severity": "info",
        "message": "m",
        "run_id": "r",
    }
    with pytest.raises(ValidationError, match="timestamp"):
        model.model_validate(doc)


@pytest.mark.parametrize(
    ("model", "doc"),
    [
        (
            EngineState,
            {"status": "running", "current_stage": "training", "last_cycle": None, "uptime_seconds": 1},
        ),
        (EngineState, {"status": "busy", "current_stage": "idle", "last_cycle": None, "uptime_seconds": 1}),
        (
            EngineEvent,
            {"event_type": "x", "timestamp": "2024-01-01T00:00:00Z", "severity": "fatal", "message": "m"},
        ),
        (
            TrainingEvent,
            {
                "event_type": "progress",
                "timestamp": "2024-01-01T00:00:00Z",
                "run_id": "r",
                "progress_pct": 101,
            },
        ),
        (TrainingEvent, {"event_type": "tick", "timestamp": "2024-01-01T00:00:00Z", "run_id": "r"}),
    ],
    ids=["stage", "status", "severity", "progress_pct", "training_event_type"],
)
def test_bridge_payload_out_of_vocabulary_rejected(model, doc):
    with pytest.raises(ValidationError):
        model.model_validate(doc)


# --------------------------------------------------------------------------------------------------------
# 5. canonical JSON
# --------------------------------------------------------------------------------------------------------

CANONICAL_CASES = {
    "floats": {
        "sum": 0.1 + 0.2,
        "tiny": 1e-12,
        "negzero": -0.0,
        "big": 1.7976931348623157e308,
        "third": 1 / 3,
    },
    "nested": {
        "z": {"b": [1, 2.5, {"y": None, "x": True}], "a": "é ✓"},
        "a": [[], {}, [0.1 + 0.2, -1e-300, 5e-324]],
        "m": {"2": 2, "10": 10, "1": 1},
    },
    "large-ints": {"i": 10**30, "neg": -(2**63) - 1, "mixed": [2**53 + 1, 2.0**53]},
    "scalar-list": [3, "x", None, False, 1e16, 123456789.123456789],
    "meta": full_meta(),
}


def _keys_sorted_everywhere(text: str) -> bool:
    ok = True

    def hook(pairs):
        nonlocal ok
        keys = [k for k, _ in pairs]
        ok = ok and keys == sorted(keys)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return ok


def _assert_close(original: Any, loaded: Any) -> None:
    """canonical JSON may round floats to 12 significant digits, nothing else changes."""
    if isinstance(original, float):
        assert isinstance(loaded, float)
        assert math.isclose(loaded, original, rel_tol=1e-11, abs_tol=0.0) or (loaded == 0 and original == 0)
    elif isinstance(original, dict):
        assert set(loaded) == {str(k) for k in original}
        for k, v in original.items():
            _assert_close(v, loaded[str(k)])
    elif isinstance(original, (list, tuple)):
        assert isinstance(loaded, list) and len(loaded) == len(original)
        for a, b in zip(original, loaded, strict=True):
            _assert_close(a, b)
    else:
        assert loaded == original and type(loaded) is type(original)


@pytest.mark.parametrize("obj", list(CANONICAL_CASES.values()), ids=list(CANONICAL_CASES))
def test_canonical_json_round_trip_is_byte_identical(obj):
    text = canonical_json(obj)
    assert text.endswith("\n")
    assert _keys_sorted_everywhere(text)
    loaded = json.loads(text)
    assert canonical_json(loaded) == text
    assert canonical_json(copy.deepcopy(obj)) == text  # deterministic
    _assert_close(obj, loaded)


def test_canonical_json_sorted_keys_and_stable_floats():
    text = canonical_json({"b": 1, "a": {"d": 0.1 + 0.2, "c": -0.0}})
    assert text == '{\n  "a": {\n    "c": 0.0,\n    "d": 0.3\n  },\n  "b": 1\n}\n'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "obj",
    [math.nan, {"x": math.inf}, [1.0, -math.inf], {"a": {"b": [float("nan")]}}],
    ids=["nan", "inf", "neg-inf", "nested-nan"],
)
def test_canonical_json_refuses_non_finite(obj):
    with pytest.raises(ValueError):
        canonical_json(obj)


def test_canonical_json_refuses_unknown_objects():
    with pytest.raises(TypeError):
        canonical_json({"a": object()})


@pytest.mark.parametrize("obj", list(CANONICAL_CASES.values()), ids=list(CANONICAL_CASES))
def test_write_atomic_json_bytes_are_canonical(tmp_path, obj):
    path = write_atomic_json(tmp_path / "deep" / "dir" / "doc.json", obj)
    assert path.read_bytes() == canonical_json(obj).encode("utf-8")
    assert contracts.read_json(path) == json.loads(canonical_json(obj))
    assert sorted(p.name for p in path.parent.iterdir()) == ["doc.json"]


def test_write_atomic_yaml_round_trips(tmp_path):
    obj = {"b": [1, 2.5], "a": {"y": "é", "x": 0.1 + 0.2}}
    path = write_atomic_yaml(tmp_path / "cfg.yaml", obj)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == {"a": {"x": 0.3, "y": "é"}, "b": [1, 2.5]}
    assert path.read_text(encoding="utf-8").index("a:") < path.read_text(encoding="utf-8").index("b:")


def test_read_json_error_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json"):
        contracts.read_json(path)


JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(JSON_LIKE)
def test_canonical_json_round_trip_property(obj):
    text = canonical_json(obj)
    loaded = json.loads(text)
    assert canonical_json(loaded) == text
    assert _keys_sorted_everywhere(text)
    _assert_close(obj, loaded)


# --------------------------------------------------------------------------------------------------------
# 6. atomic writes under interruption
# --------------------------------------------------------------------------------------------------------

OLD = b"OLD"
NEW = b"NEW-" * 500_000  # 2 MB

_KILL_SCRIPT = r"""
import os, sys, time
import contracts.io as cio

target, stop_at = sys.argv[1], sys.argv[2]
real_fsync, real_replace = os.fsync, os.replace
fsyncs = []

def pause():
    sys.stdout.write("PAUSED\n")
    sys.stdout.flush()
    time.sleep(60)

def fsync(fd):
    real_fsync(fd)
    fsyncs.append(fd)
    if (stop_at == "file-fsync" and len(fsyncs) == 1) or (stop_at == "dir-fsync" and len(fsyncs) == 2):
        pause()

def replace(src, dst):
    if stop_at == "replace":
        pause()
    real_replace(src, dst)

os.fsync, os.replace = fsync, replace
cio.write_atomic_bytes(target, b"NEW-" * 500_000)
sys.stdout.write("FINISHED\n")
"""


def _temps(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f".{name}.*.tmp"))


@pytest.mark.parametrize("stop_at", ["file-fsync", "replace", "dir-fsync"])
def test_sigkill_mid_write_leaves_old_or_new_never_torn(tmp_path, stop_at):
    target = tmp_path / "model_meta.json"
    target.write_bytes(OLD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(target), stop_at],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        assert line == b"PAUSED\n", f"writer did not pause: {line!r} {proc.stderr.read1(4000)!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    after = target.read_bytes()
    assert after in (OLD, NEW)  # never torn
    temps = _temps(tmp_path, target.name)
    if stop_at == "dir-fsync":  # killed after os.replace: the new file is whole
        assert after == NEW
        assert temps == []
    else:  # killed before os.replace: the new bytes sat complete in a temp file, the target is untouched
        assert after == OLD
        assert len(temps) == 1 and temps[0].read_bytes() == NEW  # no cleanup runs on SIGKILL


def _raise(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    ("attr", "exc"),
    [
        ("fsync", OSError(5, "Input/output error")),
        ("replace", OSError(18, "Invalid cross-device link")),
        ("fsync", KeyboardInterrupt()),
    ],
    ids=["fsync-oserror", "replace-oserror", "fsync-interrupt"],
)
def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch, attr, exc):
    target = tmp_path / "manifest.json"
    target.write_bytes(OLD)
    monkeypatch.setattr(os, attr, _raise(exc))
    with pytest.raises(type(exc)):
        write_atomic_bytes(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize(
    ("obj", "exc"),
    [({"a": 1, "b": [1, 2, object()]}, TypeError), ({"a": [0.5, math.nan]}, ValueError)],
    ids=["unserialisable", "nan"],
)
def test_failed_serialisation_keeps_old_file_and_leaves_no_temp(tmp_path, obj, exc):
    target = tmp_path / "routing_decision.json"
    target.write_bytes(OLD)
    with pytest.raises(exc):
        write_atomic_json(target, obj)
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["routing_decision.json"]


def test_successful_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(OLD)
    assert write_atomic_bytes(target, NEW) == target
    assert target.read_bytes() == NEW
    assert _temps(tmp_path, "f.bin") == []


def test_atomic_write_honours_umask(tmp_path):
    old_mask = os.umask(0o022)
    try:
        path = write_atomic_bytes(tmp_path / "shared.json", b"{}\n")
    finally:
        os.umask(old_mask)
    assert path.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------------------
# 7. paths
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return get_run_dir(tmp_path / "RESULTS", "demo", "20240101T000000")


def test_run_level_paths(tmp_path, run_dir):
    assert run_dir == tmp_path / "RESULTS" / "runs" / "demo" / "20240101T000000"
    assert get_manifest_path(run_dir) == run_dir / "manifest.json"
    assert get_global_routing_path(run_dir) == run_dir / "globals" / "routing_decisions.json"
    assert contracts.get_target_dir(run_dir, "fwd_ret_15m") == run_dir / "targets" / "fwd_ret_15m"
    assert get_target_routing_path(run_dir, "fwd_ret_15m") == (
        run_dir / "targets" / "fwd_ret_15m" / "decision" / "routing_decision.json"
    )
    assert get_view_routing_path(run_dir, "fwd_ret_15m", "CROSS_SECTIONAL") == (
        run_dir / "targets" / "fwd_ret_15m" / "models" / "view=CROSS_SECTIONAL" / "routing_decision.json"
    )


@pytest.mark.parametrize(
    ("view", "family", "symbol", "tail"),
    [
        ("CROSS_SECTIONAL", "lightgbm", None, ("view=CROSS_SECTIONAL", "family=LightGBM")),
        ("CROSS_SECTIONAL", "CSRanker", None, ("view=CROSS_SECTIONAL", "family=CSRanker")),
        ("SYMBOL_SPECIFIC", "xgboost", "AAPL", ("view=SYMBOL_SPECIFIC", "symbol=AAPL", "family=XGBoost")),
        ("SYMBOL_SPECIFIC", "Ridge", "BRK.B", ("view=SYMBOL_SPECIFIC", "symbol=BRK.B", "family=Ridge")),
        ("SYMBOL_SPECIFIC", None, "MSFT", ("view=SYMBOL_SPECIFIC", "symbol=MSFT")),
        ("CROSS_SECTIONAL", None, None, ("view=CROSS_SECTIONAL",)),
        (None, None, None, ()),
    ],
)
def test_scoped_artifact_dir_layout_and_parse_inverse(run_dir, view, family, symbol, tail):
    path = get_scoped_artifact_dir(run_dir, "fwd_ret_15m", view, family, symbol)
    assert path == run_dir.joinpath("targets", "fwd_ret_15m", "models", *tail)
    parsed = parse_model_dir(path)
    assert parsed == {
        "target": "fwd_ret_15m",
        "view": view,
        "symbol": symbol,
        "family": canonical_family(family) if family else None,
    }


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"view": "CROSS_SECTIONAL", "family": "LightGBM", "symbol": "AAPL"}, ValueError, "SYMBOL_SPECIFIC"),
        ({"view": "CROSS_SECTIONAL", "symbol": "AAPL"}, ValueError, "SYMBOL_SPECIFIC"),
        ({"view": "SYMBOL_SPECIFIC", "family": "LightGBM"}, ValueError, "symbol"),
        ({"family": "LightGBM"}, ValueError, "view"),
        ({"view": "BOTH", "family": "LightGBM"}, ValueError, "view"),
        ({"view": "CROSS_SECTIONAL", "family": "RandomForest"}, KeyError, "RandomForest"),
        ({"view": "SYMBOL_SPECIFIC", "family": "LightGBM", "symbol": "../etc"}, ValueError, "symbol"),
    ],
    ids=["cs-symbol-family", "cs-symbol", "ss-no-symbol", "no-view", "bad-view", "bad-family", "bad-symbol"],
)
def test_scoped_artifact_dir_rejects_bad_scope(run_dir, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        get_scoped_artifact_dir(run_dir, "fwd_ret_15m", **kwargs)


@pytest.mark.parametrize("target", ["../escape", "a/b", "", ".hidden"])
def test_target_name_must_be_a_path_component(run_dir, target):
    with pytest.raises(ValueError):
        contracts.get_target_dir(run_dir, target)


@pytest.mark.parametrize(
    "path",
    [
        "RESULTS/runs/demo/ts/targets/t/view=CROSS_SECTIONAL",
        "RESULTS/runs/demo/ts/targets/t/models/family=LightGBM/model.txt",
        "RESULTS/runs/demo/ts/other/t/models/view=CROSS_SECTIONAL",
    ],
    ids=["no-models", "file-level", "no-targets"],
)
def test_parse_model_dir_rejects_foreign_paths(path):
    with pytest.raises(ValueError):
        parse_model_dir(path)


EXTENSIONS = {
    "LightGBM": ".txt",
    "XGBoost": ".json",
    "CatBoost": ".cbm",
    "Ridge": ".joblib",
    "ElasticNet": ".joblib",
    "MLP": ".pt",
    "LSTM": ".pt",
    "Transformer": ".pt",
    "CSRanker": ".pt",
    "LightGBMRanker": ".txt",
    "XGBoostRanker": ".json",
}


@pytest.mark.parametrize(("family", "ext"), sorted(EXTENSIONS.items()))
def test_model_filename_per_family(tmp_path, family, ext):
    assert model_filename(family) == "model" + ext
    assert model_filename(family.lower()) == "model" + ext
    assert get_model_path(tmp_path, family.upper()) == tmp_path / ("model" + ext)


def test_every_family_has_an_expected_extension():
    assert set(FAMILIES) == set(EXTENSIONS)


# --------------------------------------------------------------------------------------------------------
# 8. JSON Schema export
# --------------------------------------------------------------------------------------------------------


def test_write_json_schemas(tmp_path):
    paths = write_json_schemas(tmp_path / "schemas")
    assert len(paths) == len(SCHEMAS) == 8
    assert sorted(p.name for p in (tmp_path / "schemas").iterdir()) == sorted(f"{n}.schema.json" for n in SCHEMAS)
    for path in paths:
        raw = path.read_text(encoding="utf-8")
        schema = json.loads(raw)
        assert "properties" in schema or "$defs" in schema, path.name
        assert schema["$id"].endswith("/1.4")
        assert canonical_json(schema) == raw
    meta_schema = json.loads((tmp_path / "schemas" / "model_meta.schema.json").read_text(encoding="utf-8"))
    assert set(meta_schema["required"]) == {
        "family",
        "target",
        "feature_list",
        "n_features",
        "metrics",
        "model_checksum",
        "interval_minutes",
    }
    routing_schema = json.loads((tmp_path / "schemas" / "routing_decisions.schema.json").read_text(encoding="utf-8"))
    assert "RoutingDecision" in routing_schema["$defs"]


# --------------------------------------------------------------------------------------------------------
# loose ends: no way to forge a legacy flag, strict numbers, OHLCV channels, ISO manifest timestamps
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["legacy_interval_unknown", "legacy_feature_order"])
def test_the_legacy_flags_cannot_be_set_from_the_json(flag):
    doc = minimal_meta()
    doc["interval_minutes"] = None  # would skip the interval check if the flag were believed
    doc[flag] = True
    with pytest.raises(ContractError) as err:
        parse_model_meta(doc)
    assert err.value.field == flag and "legacy document" in err.value.detail


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("n_features",), True),
        (("interval_minutes",), True),
        (("metrics", "mean_IC"), False),
        (("metrics", "IC_IR"), "NaN"),
        (("metrics", "mean_RankIC"), "0.05"),
    ],
)
def test_numbers_must_be_json_numbers_not_booleans_or_strings(path, value):
    doc = minimal_meta()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ContractError) as err:
        parse_model_meta(doc)
    assert err.value.field.startswith(".".join(path))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_metrics_must_be_finite(value):
    doc = minimal_meta()
    doc["metrics"]["IC_IR"] = value
    with pytest.raises(ContractError, match="finite"):
        parse_model_meta(doc)


def test_a_single_symbols_ic_ir_may_be_null():
    doc = minimal_meta()
    doc["metrics"]["IC_IR"] = None
    assert parse_model_meta(doc).metrics.IC_IR is None


def test_sequence_channels_must_name_ohlcv_columns():
    doc = minimal_meta()
    doc.update(
        input_mode="raw_sequence", feature_list=[], n_features=0, sequence_length=32,
        sequence_channels=["open", "close", "sentiment"], sequence_normalization="returns",
    )  # fmt: skip
    with pytest.raises(ContractError, match=r"\['sentiment'\] are not OHLCV columns"):
        parse_model_meta(doc)
    doc["sequence_channels"] = ["open", "high", "low", "close", "volume"]
    assert parse_model_meta(doc).sequence_channels == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("timestamp", ["yesterday", "2026-12-01 10:00", "2026-13-01T00:00:00Z"])
def test_manifest_timestamp_is_iso_with_an_offset(timestamp):
    doc = manifest_doc()
    doc["timestamp"] = timestamp
    with pytest.raises(ContractError) as err:
        parse_manifest(doc)
    assert err.value.field == "timestamp"
    doc["timestamp"] = "2026-12-01T10:00:00+00:00"
    assert parse_manifest(doc).timestamp == "2026-12-01T10:00:00+00:00"
