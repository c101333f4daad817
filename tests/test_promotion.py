"""Champion/challenger promotion over the demo's catalog: scored on data neither model was fitted on."""

from __future__ import annotations

import json

import pytest

from catalog.aliases import alias_history, get_alias, set_alias
from catalog.query import sql
from live.loader import select_models
from loop.promotion import PromotionConfig, challenger_alias, champion_alias, promote

TARGET = "fwd_ret_5m_delay5m"  # planted: Ridge's holdout IC 0.057, XGBoost's 0.042 (configs/demo.yaml)


def _models(results) -> dict[str, str]:
    df = sql(results, "select family, model_dir from pick_candidates where target = ? and view = 'CROSS_SECTIONAL'",
             [TARGET])  # fmt: skip
    return dict(zip(df["family"], df["model_dir"], strict=True))


def test_a_better_challenger_is_promoted_and_a_worse_one_is_not(results_copy):
    models = _models(results_copy)
    strong, weak = models["Ridge"], models["XGBoost"]
    set_alias(results_copy, champion_alias(TARGET), weak, note="the first champion, set by hand")

    better = promote(results_copy, TARGET, 5.0, challenger=strong)
    assert better.promoted, better.reason
    assert better.challenger_score.mean_ic > better.champion_score.mean_ic + PromotionConfig().margin_ic
    assert better.challenger_score.n_timestamps == better.champion_score.n_timestamps >= 100  # the same bars
    holdout = sql(results_copy, "select holdout_start from models where model_dir = ?", [strong])["holdout_start"][0]
    assert better.window_start == holdout  # fitted on bars before the holdout: the window is the holdout on
    assert get_alias(results_copy, champion_alias(TARGET)) == strong

    worse = promote(results_copy, TARGET, 5.0, challenger=weak)
    assert not worse.promoted and "< margin" in worse.reason
    assert get_alias(results_copy, champion_alias(TARGET)) == strong  # the champion stays
    assert sql(results_copy, "select 1 from models where model_dir = ?", [weak]).height == 1  # still in the catalog

    history = alias_history(results_copy)
    champion_rows = history.filter(history["alias"] == champion_alias(TARGET))
    # the pipeline's first champion (the newest run's best), the one set by hand, then the promoted one
    assert champion_rows["model_dir"].to_list() == [strong, weak, strong]
    notes = [json.loads(n) for n in history.filter(history["alias"] == challenger_alias(TARGET))["note"]]
    assert [n["promoted"] for n in notes] == [True, True, False]  # every challenger, with its numbers
    assert notes[-1]["challenger_score"]["mean_ic"] == pytest.approx(worse.challenger_score.mean_ic)
    assert notes[-1]["champion_score"]["mean_ic"] == pytest.approx(worse.champion_score.mean_ic)

    # the champions policy trades what the aliases point at: one model per target
    from_open = get_alias(results_copy, champion_alias("fwd_ret_5m_from_open"))
    ranked = get_alias(results_copy, champion_alias("cs_percentile_fwd_ret_5m_from_open"))
    assert select_models(results_copy, "champions", 5.0) == [ranked, strong, from_open]  # by alias name


def test_the_pipeline_names_the_first_champions_and_a_repeat_is_a_no_op(results_copy):
    for target in ("fwd_ret_5m_from_open", TARGET):  # the demo's CROSS_SECTIONAL tradable targets
        best = sql(results_copy, "select model_dir from pick_candidates where target = ? and view = 'CROSS_SECTIONAL' "
                   "and best_in_view", [target])["model_dir"][0]  # fmt: skip
        assert get_alias(results_copy, champion_alias(target)) == best  # the champions asset, no champion before
        again = promote(results_copy, target, 5.0)
        assert not again.promoted and "champion already" in again.reason
    (note,) = alias_history(results_copy, champion_alias(TARGET))["note"]
    assert json.loads(note)["reason"].startswith("no champion yet")


def test_a_challenger_that_fails_the_blocking_rules_is_refused(results_copy):
    research = sql(results_copy, "select model_dir from models where research_only limit 1")["model_dir"][0]
    with pytest.raises(ValueError, match="passes the catalog's floor"):
        promote(results_copy, TARGET, 5.0, challenger=research)


def test_too_little_unseen_data_is_refused(results_copy):
    models = _models(results_copy)
    set_alias(results_copy, champion_alias(TARGET), models["XGBoost"])
    d = promote(results_copy, TARGET, 5.0, PromotionConfig(min_timestamps=10_000), challenger=models["Ridge"])
    assert not d.promoted and "unseen timestamps" in d.reason
