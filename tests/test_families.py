"""Every model family: learns a simple signal through NaN, saves/loads in its native format, is deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.families import family_spec
from ml.families import available_families, get_family

FAMILIES = ["LightGBM", "XGBoost", "CatBoost", "Ridge", "ElasticNet", "MLP"]
N_TRAIN, N_TEST, N_FEATURES = 8_000, 4_000, 8
FEATURE_NAMES = [f"feat_{i:02d}" for i in range(N_FEATURES)]


def _problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y = 0.3*x0 - 0.2*x1 + noise, with ~10% NaN in X (and one fully-missing row), split train/test."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    X = rng.normal(size=(n, N_FEATURES))
    y = 0.3 * X[:, 0] - 0.2 * X[:, 1] + 0.5 * rng.normal(size=n)
    X[rng.random(X.shape) < 0.10] = np.nan
    X[5, :] = np.nan
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _problem(0)


@pytest.fixture(scope="module")
def fitted(data) -> dict[str, object]:
    """One model per family on the shared data (seed 11), reused by the tests that only read it."""
    X, y, _, _ = data
    out = {}
    for name in FAMILIES:
        family = get_family(name)
        out[name] = family.fit(X, y, FEATURE_NAMES, family.params(), seed=11)
    return out


def test_all_families_registered():
    assert set(FAMILIES) <= set(available_families())


def test_one_registry_names_every_implemented_family_and_its_class():
    """``contracts.families.FAMILIES`` is the only list: every family trained here is there with its class, whose
    own name and file extension agree with the spec."""
    from contracts.families import FAMILIES as SPECS
    from ml.families import family_class

    implemented = {name for name, spec in SPECS.items() if spec.implementation}
    assert implemented == set(available_families())
    for name in implemented:
        cls = family_class(name)
        assert cls.name == name and cls().extension == SPECS[name].extension, name


@pytest.mark.parametrize("name", FAMILIES)
def test_get_family_is_case_insensitive(name):
    for spelling in (name, name.lower(), name.upper(), f"  {name.swapcase()} "):
        family = get_family(spelling)
        assert family.name == name
        assert family.extension == family_spec(name).extension


@pytest.mark.parametrize("name", FAMILIES)
def test_learns_signal_through_nan(name, data, fitted):
    X, y, X_test, y_test = data
    family = get_family(name)
    pred = family.predict(fitted[name], X_test)
    assert isinstance(pred, np.ndarray) and pred.dtype == np.float64 and pred.shape == (len(X_test),)
    assert np.all(np.isfinite(pred))
    corr = np.corrcoef(pred, y_test)[0, 1]
    assert corr > 0.2, f"{name}: out-of-sample corr {corr:.3f}"
    # A fully-missing row still gets a finite score.
    assert np.all(np.isfinite(family.predict(fitted[name], np.full((3, N_FEATURES), np.nan))))


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_round_trip(name, data, fitted, tmp_path: Path):
    _, _, X_test, _ = data
    family = get_family(name)
    path = tmp_path / ("model" + family_spec(name).extension)
    family.save(fitted[name], path)
    assert path.is_file() and path.stat().st_size > 0
    loaded = family.load(path)
    diff = np.max(np.abs(family.predict(loaded, X_test) - family.predict(fitted[name], X_test)))
    assert diff < 1e-6, f"{name}: round-trip max abs diff {diff}"


@pytest.mark.parametrize("name", FAMILIES)
def test_deterministic_for_a_seed(name, data, fitted):
    X, y, X_test, _ = data
    family = get_family(name)
    again = family.fit(X, y, FEATURE_NAMES, family.params(), seed=11)
    diff = np.max(np.abs(family.predict(again, X_test) - family.predict(fitted[name], X_test)))
    assert diff <= 1e-9, f"{name}: refit with the same seed differs by {diff}"


@pytest.mark.parametrize("name", FAMILIES)
def test_importance_normalised_and_finds_signal(name, fitted):
    imp = get_family(name).importance(fitted[name], FEATURE_NAMES)
    assert list(imp) == FEATURE_NAMES
    assert all(v >= 0 for v in imp.values())
    assert sum(imp.values()) == pytest.approx(1.0)
    top_two = sorted(imp, key=imp.get, reverse=True)[:2]
    assert set(top_two) == {"feat_00", "feat_01"}, f"{name}: importance {imp}"


def test_mlp_file_loads_with_weights_only(fitted, tmp_path: Path):
    import torch

    family = get_family("MLP")
    path = tmp_path / "model.pt"
    family.save(fitted["MLP"], path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {"state_dict", "input_mean", "input_std", "input_median", "hidden", "n_features", "y_mean", "y_std"} <= set(
        state
    )
    assert state["n_features"] == N_FEATURES and state["hidden"] == [64, 64]
    assert all(isinstance(v, torch.Tensor) for v in state["state_dict"].values())
    assert isinstance(state["y_mean"], float) and isinstance(state["y_std"], float)


def test_mlp_does_not_disturb_global_torch_state(data):
    import torch

    X, y, _, _ = data
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    family = get_family("MLP")
    family.fit(X[:2000], y[:2000], FEATURE_NAMES, family.params({"epochs": 1}), seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("name", ["Ridge", "ElasticNet"])
def test_linear_model_file_holds_its_imputer_and_scaler(name, data, fitted, tmp_path):
    """One file, one checksum: the saved pipeline imputes and scales by itself (no companion pickles to verify)."""
    _, _, X_test, _ = data
    family = get_family(name)
    family.save(fitted[name], tmp_path / "model.joblib")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.joblib"]
    loaded = family.load(tmp_path / "model.joblib")
    assert list(loaded.named_steps) == ["imputer", "scaler", "model"]
    with_nan = X_test.copy()
    with_nan[0, 0] = np.nan
    assert np.all(np.isfinite(family.predict(loaded, with_nan)))
    assert np.array_equal(family.predict(loaded, X_test), family.predict(fitted[name], X_test))


def test_the_linear_imputer_takes_the_same_medians_as_sklearns():
    from sklearn.impute import SimpleImputer

    from ml.families.linear_family import MedianImputer

    rng = np.random.default_rng(3)
    X = rng.normal(size=(501, 7))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 2] = np.nan  # an all-missing column is kept, imputed to 0
    X[:250, 5] = np.nan
    ours, theirs = MedianImputer().fit(X), SimpleImputer(strategy="median", keep_empty_features=True).fit(X)
    assert np.array_equal(ours.statistics_, theirs.statistics_)
    assert np.array_equal(ours.transform(X), theirs.transform(X))
    with pytest.warns(UserWarning, match="without any observed values"):  # sklearn's, when it drops a column
        assert MedianImputer(keep_empty_features=False).fit(X).transform(X).shape == (501, 6)


def test_fits_on_threads_equal_fits_in_turn(data):
    """The pipeline fits models on several threads (``ml.parallel``): every family's result is the same as alone,
    the MLP's too (torch's global state is taken in turns)."""
    from ml.parallel import thread_map

    X, y, X_test, _ = data

    def fit(name: str) -> np.ndarray:
        family = get_family(name)
        return family.predict(family.fit(X[:3000], y[:3000], FEATURE_NAMES, family.params(), seed=5), X_test)

    families = [*FAMILIES, "MLP"]  # two MLPs at once
    alone = [fit(name) for name in families]
    together = thread_map(fit, families, workers=4)
    for name, a, b in zip(families, alone, together, strict=True):
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("name", ["Ridge", "ElasticNet"])
def test_linear_predict_is_the_pipelines(name, data, fitted):
    _, _, X_test, _ = data
    X = X_test.copy()
    X[0, :] = np.inf  # treated as missing, like NaN
    ours = get_family(name).predict(fitted[name], X)
    theirs = fitted[name].predict(np.where(np.isfinite(X), X, np.nan))
    assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="features"):
        get_family(name).predict(fitted[name], X[:, :3])
