"""Raw-sequence (contract 1.3) and ranking (1.4) models: trained through the pipeline's own steps on the synthetic
market, they recover the planted cross-sectional signal on the holdout, and routing blocks the noise targets they
would otherwise train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.io import read_json
from ml import run as steps
from ml.config import RunConfig
from ml.feature_store import update_features
from ml.lake import table_dir, write_partitions
from ml.synthetic import SyntheticMarketConfig, documented_ics, make_market
from ml.targets import TargetSpec

SEEDS = [11, 12, 13]
SIGNAL = TargetSpec(kind="cs_percentile", horizon_bars=1, entry="next_open")  # the volume signal, ranked
NOISE = TargetSpec(kind="cs_percentile", horizon_bars=3, delay_bars=3)
RHO_VOLUME = 0.15  # a stronger volume signal than the demo's 0.06: its documented IC 0.113 stands out of the
# holdout's sampling noise (sd of a 600-timestamp mean RankIC over 40 symbols ~ 0.007), so 80 % of it is a test
# of the model, not of luck
SEQUENCE = {"LSTM": {"loss": "listwise_softmax", "sequence_length": 16, "epochs": 6}}
MODELS = ("LSTM", "LightGBMRanker")


def _config(seed: int) -> RunConfig:
    signal, noise = SIGNAL.name(5), NOISE.name(5)
    return RunConfig(
        run_id=f"seq{seed}",
        market=SyntheticMarketConfig(n_symbols=40, n_bars=3000, seed=seed, rho_volume=RHO_VOLUME),
        targets=(SIGNAL, NOISE),
        families=("Ridge",),
        target_families={signal: MODELS, noise: MODELS},
        family_params={**SEQUENCE, "LightGBMRanker": {"num_boost_round": 100, "num_leaves": 7}},
        ranking_families=("ElasticNet", "Ridge"),
        evaluation={"cost_bps": 0.25},
        cv={"n_folds": 2},  # what is measured here is the holdout; two walk-forward folds route as well as three
    )


def _develop_and_train(cfg: RunConfig, results: Path) -> dict:
    write_partitions(make_market(cfg.market), table_dir(results, "bars", 5))
    update_features(results, 5)
    panel, features, _ = steps.load_panel(results, cfg)
    holdout = steps.holdout_of(panel, cfg)
    evaluations = steps.rank_targets(panel, features, cfg, holdout=holdout)
    routes = steps.decide_routes(evaluations, cfg)
    run_dir = results / "runs" / cfg.run_id / "r"
    steps.write_holdout(run_dir, holdout)
    selections = steps.select_features(panel, evaluations, cfg)
    chosen = {t: {v: s["selected"] for v, s in views.items()} for t, views in selections.items()}
    steps.write_routing(run_dir, routes)
    jobs = steps.plan_model_jobs(routes, chosen, cfg)
    metas = {}
    for job, record in zip(jobs, steps.train_models(panel, jobs, run_dir, cfg, {"run_id": cfg.run_id}), strict=True):
        assert record["status"] == "trained", record
        metas[(job.target, job.family)] = read_json(run_dir / record["model_dir"] / "model_meta.json")
    return {"routes": routes, "metas": metas}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[dict]:
    return [_develop_and_train(_config(seed), tmp_path_factory.mktemp(f"seq{seed}")) for seed in SEEDS]


def test_sequence_and_ranking_models_recover_the_planted_signal_on_the_holdout(outcomes) -> None:
    cfg = _config(SEEDS[0])
    truth = documented_ics(cfg.market, SIGNAL.horizon_bars, SIGNAL.delay_bars, SIGNAL.entry)["cs_ic"]
    for family in MODELS:
        rank_ics = [o["metas"][(SIGNAL.name(5), family)]["metrics"]["mean_RankIC"] for o in outcomes]
        print(
            f"\n{family}: holdout RankIC {np.round(rank_ics, 4)} vs documented IC {truth:.4f} (80 %: {0.8 * truth:.4f})"
        )
        assert min(rank_ics) >= 0.8 * truth, (family, rank_ics, truth)


def test_the_ranking_models_noise_target_stays_blocked(outcomes) -> None:
    for o in outcomes:
        assert o["routes"][NOISE.name(5)]["route"] == "BLOCKED", o["routes"][NOISE.name(5)]["reason"]
        assert not any(target == NOISE.name(5) for target, _ in o["metas"])


def test_the_metas_carry_contract_1_3_and_1_4_fields_measured_on_the_holdout(outcomes) -> None:
    metas = outcomes[0]["metas"]
    lstm = metas[(SIGNAL.name(5), "LSTM")]
    assert lstm["input_mode"] == "raw_sequence" and lstm["feature_list"] == [] and lstm["n_features"] == 0
    assert lstm["sequence_length"] == 16 and lstm["sequence_normalization"] == "returns"
    assert lstm["sequence_channels"] == ["open", "high", "low", "close", "volume"]
    for family in MODELS:
        meta = metas[(SIGNAL.name(5), family)]
        block = meta["cross_sectional_ranking"]
        assert block["enabled"] and block["target_type"] == "cs_percentile"
        m, tm = meta["metrics"], block["training_metrics"]
        assert tm["best_ic"] == m["mean_RankIC"] > 0 and tm["evaluated_on"] == "holdout"
        assert tm["best_spread"] == m["spread_bps"] and tm["net_spread"] == m["net_spread_bps"]
        assert tm["ic_ir"] == m["IC_IR"] and tm["ic_hit_rate"] == m["hit_rate"] and tm["turnover"] == m["turnover_frac"]
    assert metas[(SIGNAL.name(5), "LSTM")]["cross_sectional_ranking"]["loss_type"] == "listwise_softmax"
    assert metas[(SIGNAL.name(5), "LightGBMRanker")]["cross_sectional_ranking"]["loss_type"] == "lambdarank"
    assert metas[(SIGNAL.name(5), "LSTM")]["cross_sectional_ranking"]["training_metrics"]["epochs_trained"] == 6


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"families": ("LightGBMRanker",)}, r"families: LightGBMRanker trains a ranking objective.*'fwd_ret_5m'"),
        (
            {"target_families": {"fwd_ret_5m": ("LSTM",)}, "family_params": {"LSTM": {"loss": "pairwise_logistic"}}},
            r"target_families.fwd_ret_5m: LSTM trains a ranking objective",
        ),
        ({"target_families": {"fwd_ret_9m": ("LSTM",)}}, r"target_families names target\(s\) \['fwd_ret_9m'\]"),
        ({"ranking_families": ("LSTM", "Ridge")}, "ranking_families: LSTM reads raw sequences"),
        ({"symbol_specific_families": ("XGBoostRanker",)}, "symbol_specific_families: XGBoostRanker"),
        ({"family_params": {"Transformer": {"loss": "hinge"}}}, r"family_params.Transformer.loss: 'hinge'"),
    ],
)
def test_the_run_config_refuses_what_cannot_train_and_names_the_field(changes, match) -> None:
    base = {"targets": ({"horizon_bars": 1},), "families": ("Ridge",)}
    with pytest.raises(ValueError, match=match):
        RunConfig.model_validate({**base, **changes})


def test_a_pointwise_sequence_model_may_train_on_a_return_target() -> None:
    cfg = RunConfig.model_validate({"targets": ({"horizon_bars": 1},), "families": ("LSTM", "Ridge")})
    assert cfg.families_for("fwd_ret_5m") == ("LSTM", "Ridge")
