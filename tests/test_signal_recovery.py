"""Over several seeds of the synthetic market the pipeline finds the planted signal and blocks the noise."""

from __future__ import annotations

import numpy as np
import pytest

from ml import run as steps
from ml.config import RunConfig
from ml.feature_store import update_features
from ml.lake import table_dir, write_partitions
from ml.synthetic import SyntheticMarketConfig, documented_ics, make_market
from ml.targets import TargetSpec

SEEDS = [11, 12, 13, 14]
PLANTED = {"fwd_ret_5m": (1, 0), "fwd_ret_5m_delay5m": (1, 1)}
NOISE = {"fwd_ret_15m_delay15m": (3, 3), "fwd_ret_30m_delay30m": (6, 6)}


def _config(seed: int) -> RunConfig:
    return RunConfig(
        run_id=f"seed{seed}",
        market=SyntheticMarketConfig(n_symbols=24, n_bars=4000, seed=seed),
        targets=tuple(TargetSpec(horizon_bars=h, delay_bars=d) for h, d in [*PLANTED.values(), *NOISE.values()]),
        ranking_families=("ElasticNet", "LightGBM"),
        ranking_params={"LightGBM": {"num_boost_round": 100, "num_leaves": 4, "min_data_in_leaf": 1000}},
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[dict]:
    out = []
    for seed in SEEDS:
        cfg = _config(seed)
        results = tmp_path_factory.mktemp(f"seed{seed}")
        write_partitions(make_market(cfg.market), table_dir(results, "bars", 5))
        update_features(results, 5)
        panel, features, _ = steps.load_panel(results, cfg)
        evaluations = steps.rank_targets(panel, features, cfg)
        out.append({"cfg": cfg, "evaluations": evaluations, "routes": steps.decide_routes(evaluations, cfg)})
    return out


def test_planted_targets_rank_above_every_noise_target(outcomes) -> None:
    for o in outcomes:
        order = [e.target for e in o["evaluations"]]
        worst_planted = max(order.index(t) for t in PLANTED)
        best_noise = min(order.index(t) for t in NOISE)
        assert worst_planted < best_noise, (o["cfg"].market.seed, order)


def test_out_of_sample_ic_matches_the_documented_truth(outcomes) -> None:
    # the cleanly cross-sectional planted target: every symbol carries the same volume signal
    for target, (h, d) in [("fwd_ret_5m", PLANTED["fwd_ret_5m"])]:
        truth = documented_ics(outcomes[0]["cfg"].market, h, d)["cs_ic"]
        measured = [next(e for e in o["evaluations"] if e.target == target).cs["mean_IC"] for o in outcomes]
        assert abs(float(np.mean(measured)) - truth) <= 0.01, (target, truth, measured)


def test_noise_targets_are_blocked_in_at_least_95_percent_of_seeds(outcomes) -> None:
    routes = [o["routes"][t]["route"] for o in outcomes for t in NOISE]
    assert sum(r == "BLOCKED" for r in routes) / len(routes) >= 0.95, routes
    for o in outcomes:
        for t in NOISE:
            assert o["routes"][t]["reason"].startswith("rule no_skill"), o["routes"][t]["reason"]
