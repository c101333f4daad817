"""The ranking and raw-sequence families: ranking losses on known inputs, the gradient-boosting rankers with one
query per timestamp, the LSTM and Transformer over windows; native files, weights-only loading, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from contracts.families import family_spec
from ml.families import get_family
from ml.families.ranker_family import quantile_labels
from ml.metrics import row_ic
from ml.ranking_losses import group_index, listwise_softmax, pairwise_logistic

N_TS, N_SYM, LENGTH, CHANNELS = 300, 20, 8, 5


def _within_ic(score: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Mean per-group correlation (what a ranking model is for)."""
    idx = group_index(groups)
    ic, _ = row_ic(score[idx], y[idx])
    return float(np.nanmean(ic))


def test_pairwise_logistic_on_known_inputs():
    scores = torch.tensor([[2.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, False]])  # the third entry is padding: its label 5 must not count
    expected = np.log1p(np.exp(-2.0))  # the one pair: y0 > y1 with s0 - s1 = 2
    assert float(pairwise_logistic(scores, labels, mask)) == pytest.approx(expected)


def test_listwise_softmax_prefers_the_true_order():
    labels = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    right = listwise_softmax(labels.clone(), labels, mask)
    wrong = listwise_softmax(-labels, labels, mask)
    assert float(right) < float(wrong)
    # a shift of every score in a group changes nothing: only the order within a timestamp matters
    assert float(listwise_softmax(labels + 7.0, labels, mask)) == pytest.approx(float(right))


def test_group_index_lists_each_timestamps_rows():
    idx = group_index(np.array([5, 3, 5, 3, 9]))
    assert idx.tolist() == [[1, 3], [0, 2], [4, -1]]


def test_quantile_labels_are_per_timestamp():
    y = np.array([0.1, 0.3, 0.2, 0.4, 100.0, -100.0])
    groups = np.array([1, 1, 1, 1, 2, 2])
    assert quantile_labels(y, groups, 4).tolist() == [0, 2, 1, 3, 2, 0]


def _panel_problem(seed: int):
    """A feature signal within each timestamp plus a large per-timestamp offset that ranking must ignore."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(N_TS), N_SYM)
    X = rng.normal(size=(N_TS * N_SYM, 4))
    y = 0.4 * X[:, 0] + rng.normal(size=len(groups)) + 10.0 * rng.normal(size=N_TS)[groups]
    return X, y, groups


@pytest.mark.parametrize("name", ["LightGBMRanker", "XGBoostRanker"])
def test_gradient_boosting_rankers_learn_within_timestamps(name, tmp_path: Path):
    X, y, groups = _panel_problem(0)
    Xt, yt, gt = _panel_problem(1)
    family = get_family(name)
    params = family.params({"num_boost_round": 40})
    shuffle = np.random.default_rng(2).permutation(len(y))  # rows need not come sorted by timestamp
    model = family.fit(X[shuffle], y[shuffle], ["a", "b", "c", "d"], params, seed=3, groups=groups[shuffle])
    assert _within_ic(family.predict(model, Xt), yt, gt) > 0.2
    path = tmp_path / ("model" + family_spec(name).extension)
    family.save(model, path)
    assert np.array_equal(family.predict(family.load(path), Xt), family.predict(model, Xt))
    again = family.fit(X[shuffle], y[shuffle], ["a", "b", "c", "d"], params, seed=3, groups=groups[shuffle])
    assert np.array_equal(family.predict(again, Xt), family.predict(model, Xt))
    assert family.ranking_loss(params) in ("lambdarank", "rank:pairwise")
    with pytest.raises(ValueError, match="timestamp groups"):
        family.fit(X, y, ["a", "b", "c", "d"], params, seed=3)


def _windows_problem(seed: int):
    """Normalised-looking windows whose last bar's volume carries the target (as the synthetic market plants)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(N_TS), N_SYM)
    X = rng.normal(size=(N_TS * N_SYM, LENGTH, CHANNELS))
    y = 0.5 * X[:, -1, 4] + rng.normal(size=len(groups)) + 2.0 * rng.normal(size=N_TS)[groups]
    return X, y, groups


SEQUENCE_PARAMS = {"sequence_length": LENGTH, "epochs": 4, "hidden": 8, "device": "cpu"}


@pytest.mark.parametrize("name", ["LSTM", "Transformer"])
@pytest.mark.parametrize("loss", ["mse", "pairwise_logistic", "listwise_softmax"])
def test_sequence_families_learn_from_windows(name, loss, tmp_path: Path):
    X, y, groups = _windows_problem(0)
    Xt, yt, gt = _windows_problem(1)
    family = get_family(name)
    params = family.params({**SEQUENCE_PARAMS, "loss": loss})
    model = family.fit(X, y, [], params, seed=5, groups=groups)
    pred = family.predict(model, Xt)
    assert pred.dtype == np.float64 and np.isfinite(pred).all()
    assert _within_ic(pred, yt, gt) > 0.2, (name, loss)
    assert family.ranking_loss(params) == (None if loss == "mse" else loss)
    path = tmp_path / "model.pt"
    family.save(model, path)
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values only
    assert state["arch"] == name and state["sequence_length"] == LENGTH and state["loss"] == loss
    assert np.array_equal(family.predict(family.load(path), Xt), pred)
    assert family.sequence_spec(family.load(path)).length == LENGTH


def test_sequence_family_is_deterministic_and_checks_the_window_shape():
    X, y, groups = _windows_problem(0)
    family = get_family("LSTM")
    params = family.params({**SEQUENCE_PARAMS, "loss": "listwise_softmax"})
    a = family.fit(X, y, [], params, seed=5, groups=groups)
    b = family.fit(X, y, [], params, seed=5, groups=groups)
    assert np.array_equal(family.predict(a, X[:50]), family.predict(b, X[:50]))
    with pytest.raises(ValueError, match=r"windows of shape \(n, 8, 5\)"):
        family.predict(a, X[:, :4])
    with pytest.raises(ValueError, match="timestamp groups"):
        family.fit(X, y, [], params, seed=5)
    with pytest.raises(ValueError, match="choose one of"):
        family.ranking_loss({"loss": "hinge"})


def test_a_file_of_another_architecture_is_refused(tmp_path: Path):
    X, y, groups = _windows_problem(0)
    lstm = get_family("LSTM")
    model = lstm.fit(X[:500], y[:500], [], lstm.params(SEQUENCE_PARAMS), seed=1)
    lstm.save(model, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="holds a LSTM network, not a Transformer"):
        get_family("Transformer").load(tmp_path / "model.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU: the CUDA path is checked where there is one")
@pytest.mark.parametrize("name", ["LSTM", "Transformer"])
def test_cuda_and_cpu_train_the_same_model_within_tolerance(name):
    """Same seed, same batches (drawn on the CPU), same initial weights: only floating-point rounding differs.
    Tolerance: predictions correlate above 0.99 and the within-timestamp IC differs by less than 0.01."""
    X, y, groups = _windows_problem(0)
    Xt, yt, gt = _windows_problem(1)
    family = get_family(name)
    preds = {}
    for device in ("cpu", "cuda"):
        params = family.params({**SEQUENCE_PARAMS, "loss": "listwise_softmax", "device": device})
        preds[device] = family.predict(family.fit(X, y, [], params, seed=5, groups=groups), Xt)
    assert np.corrcoef(preds["cpu"], preds["cuda"])[0, 1] > 0.99
    assert abs(_within_ic(preds["cpu"], yt, gt) - _within_ic(preds["cuda"], yt, gt)) < 0.01
