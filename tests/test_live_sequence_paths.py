"""The live inference paths of contracts 1.3 and 1.4 on the demo's own models: the loader dispatches on input_mode
and the ranking block, the engine scores a raw-sequence ranking model from its ring buffer exactly as the training
code scores the same bars, and a model kind the engine cannot serve is refused at load with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catalog import build_catalog, sql
from contracts.model_meta import parse_model_meta
from live.config import load_engine_config
from live.inference import cross_sectional_z, serving_path
from live.ledger.reader import LedgerReader
from live.loader import ModelLoadError, load_model, load_selected, select_models
from live.runner import run_live
from ml.lake import read_table, table_dir
from ml.sequences import SequenceSpec, sequence_inputs
from tests.conftest import DEMO_CONFIG

RANKING_TARGET = "cs_percentile_fwd_ret_5m_from_open"
RANKERS = f"select model_dir from models where target = '{RANKING_TARGET}' order by family"


def _dir(results: Path, family: str) -> str:
    return sql(results, f"select model_dir from models where target = '{RANKING_TARGET}' and family = '{family}'")[
        "model_dir"
    ][0]


def test_the_loader_dispatches_on_input_mode_and_the_ranking_block(live_results: Path) -> None:
    loaded, errors = load_selected(live_results, RANKERS, interval_minutes=5.0)
    assert not errors
    by_family = {m.meta.family: m for m in loaded}
    assert set(by_family) == {"LSTM", "LightGBMRanker"}
    lstm, ranker = by_family["LSTM"], by_family["LightGBMRanker"]
    assert lstm.sequence == SequenceSpec(length=16, normalization="returns") and lstm.ranking
    assert ranker.sequence is None and ranker.ranking and ranker.meta.feature_list


def test_engine_scores_of_a_raw_sequence_ranking_model_equal_the_training_code(live_copy: Path) -> None:
    """The engine's LSTM scores at a cycle = the model on training's windows of the same bars, as z-scores."""
    cfg = load_engine_config(DEMO_CONFIG, account="seq", policy=RANKERS)
    summary = run_live(live_copy, cfg, interval_minutes=5.0, max_cycles=30, install_signals=False)
    assert summary.cycles == 30 and len(summary.models) == 2
    with LedgerReader(live_copy, "seq") as led:
        scored = led.frame(
            f"select ts, symbol, score from predictions where model = '{RANKING_TARGET}/CROSS_SECTIONAL/LSTM' "
            "and cycle_id = 30 order by symbol"
        )
        events = led.frame(
            "select event_type from events where event_type in ('incomplete_inputs', 'model_quarantined')"
        )
    assert scored.height == 24 and events.is_empty()
    ts = scored["ts"][0]
    (model,), _ = load_selected(live_copy, f"select '{_dir(live_copy, 'LSTM')}' as model_dir", interval_minutes=5.0)
    bars = read_table(table_dir(live_copy, "bars", 5.0))
    bars = bars.filter(pl.col("ts") <= pl.lit(ts).str.to_datetime(time_zone="UTC"))
    windows, complete = sequence_inputs(bars, model.sequence)
    at = (bars["ts"] == bars["ts"].max()).to_numpy()
    order = np.argsort(bars["symbol"].to_numpy()[at])
    expected = cross_sectional_z(model.predict(windows[at][order]))
    assert complete[at].all()
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=0, atol=1e-9)


def _meta_doc(results: Path, family: str) -> dict:
    return json.loads((results / _dir(results, family) / "model_meta.json").read_text())


@pytest.mark.parametrize(
    ("family", "change", "match"),
    [
        ("LSTM", {"sequence_channels": ["open", "high", "low", "volume"]}, "must include 'close'"),
        ("LSTM", {"sequence_length": 32}, "model file reads"),
        ("LightGBMRanker", {"cross_sectional_ranking": None}, "family LightGBMRanker ranks"),
        (
            "LightGBMRanker",
            {"view": "SYMBOL_SPECIFIC", "route": "SYMBOL_SPECIFIC", "symbol": "SYM000"},
            "cross-section",
        ),
    ],
)
def test_a_model_the_engine_cannot_serve_is_refused_with_the_reason(live_results, family, change, match) -> None:
    doc = {**_meta_doc(live_results, family), **change}
    if change.get("sequence_length"):
        doc["cross_sectional_ranking"] = {**doc["cross_sectional_ranking"], "sequence_length": 32}
    meta = parse_model_meta(doc)
    model_spec = SequenceSpec(length=16) if family == "LSTM" else None
    with pytest.raises(ValueError, match=match):
        serving_path(meta, model_spec)


def test_a_feature_family_meta_claiming_raw_sequences_is_refused(live_results) -> None:
    doc = _meta_doc(live_results, "LSTM")
    meta = parse_model_meta({**doc, "family": "LightGBM"})
    with pytest.raises(ValueError, match="family LightGBM reads 'features'"):
        serving_path(meta, None)


def test_a_ranking_model_without_skill_is_indexed_but_refused_at_load(live_copy: Path) -> None:
    path = live_copy / _dir(live_copy, "LightGBMRanker") / "model_meta.json"
    doc = json.loads(path.read_text())
    doc["cross_sectional_ranking"]["training_metrics"]["best_ic"] = -0.004
    path.write_text(json.dumps(doc))
    build_catalog(live_copy)
    picked = sql(live_copy, "select model_dir from pick_candidates where passes_floor")["model_dir"].to_list()
    assert _dir(live_copy, "LightGBMRanker") not in picked
    with pytest.raises(ModelLoadError, match=r"best_ic is -0.004 <= 0"):
        load_model(live_copy, _dir(live_copy, "LightGBMRanker"), interval_minutes=5.0)


def test_the_catalog_indexes_the_new_fields_and_the_default_policy_picks_both(live_results: Path) -> None:
    rows = sql(
        live_results,
        "select family, input_mode, sequence_length, sequence_normalization, cs_ranking_enabled, "
        "cs_ranking_target_type, cs_ranking_loss_type, cs_ranking_best_ic, mean_rank_ic, cs_ranking_epochs_trained "
        f"from models where target = '{RANKING_TARGET}' order by family",
    ).to_dicts()
    lstm, ranker = rows[0], rows[1]
    assert (lstm["family"], lstm["input_mode"], lstm["sequence_length"]) == ("LSTM", "raw_sequence", 16)
    assert lstm["sequence_normalization"] == "returns" and lstm["cs_ranking_loss_type"] == "listwise_softmax"
    assert (ranker["family"], ranker["input_mode"], ranker["sequence_length"]) == ("LightGBMRanker", "features", None)
    assert ranker["cs_ranking_loss_type"] == "lambdarank"
    for r in rows:
        assert r["cs_ranking_enabled"] and r["cs_ranking_target_type"] == "cs_percentile"
        assert r["cs_ranking_best_ic"] == r["mean_rank_ic"] > 0
    picked = select_models(live_results, "holdout_per_family", 5.0)
    assert {_dir(live_results, "LSTM"), _dir(live_results, "LightGBMRanker")} <= set(picked)
