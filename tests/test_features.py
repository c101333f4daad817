"""Tests of the feature library ``ml.features``: the registry, the look-ahead guard, honest (finite, tight)
lookbacks, bars without ``vwap``, and agreement with the independent pandas implementation of ``bench/features.py``.

Small seeded synthetic markets only; the whole file runs in a few seconds.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml.features import (
    ALL_FEATURES,
    FEATURES_BY_NAME,
    build_features,
    is_target_like,
    latest_features,
    max_lookback_bars,
    resolve,
)
from ml.synthetic import SyntheticMarketConfig, make_market

REPO = Path(__file__).resolve().parents[1]
MARKET = SyntheticMarketConfig(n_symbols=6, n_bars=500, seed=5)
TOL = 1e-9
PRICES = ("open", "high", "low", "close", "vwap")
TIME_ONLY = {"tod_sin", "tod_cos"}  # read only the bar's timestamp: rewriting prices cannot change them


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return make_market(MARKET)


@pytest.fixture(scope="module")
def full(bars) -> pl.DataFrame:
    return build_features(bars)


def _assert_same(a: pl.DataFrame, b: pl.DataFrame, names, tol: float = TOL) -> None:
    """Same keys, same null pattern, values within ``tol`` (0 = bitwise equal, NaN never expected)."""
    assert a.select("ts", "symbol").equals(b.select("ts", "symbol"))
    for name in names:
        x, y = a[name], b[name]
        assert x.is_null().to_list() == y.is_null().to_list(), f"{name}: null pattern differs"
        xv = x.drop_nulls().to_numpy().astype(float)
        yv = y.drop_nulls().to_numpy().astype(float)
        diff = np.abs(xv - yv)
        worst = float(diff.max()) if diff.size else 0.0
        assert worst <= tol, f"{name}: max |diff| {worst:.3e} > {tol:g}"


def _last_bars(bars: pl.DataFrame, n: int, until=None) -> pl.DataFrame:
    """Each symbol's last ``n`` bars at or before ``until``."""
    src = bars if until is None else bars.filter(pl.col("ts") <= until)
    return src.sort("symbol", "ts").group_by("symbol", maintain_order=True).tail(n)


def _rewrite_future(bars: pl.DataFrame, t0, seed: int) -> pl.DataFrame:
    """Bars after ``t0`` rescaled by random factors (each price column its own, OHLC kept consistent)."""
    rng = np.random.default_rng(seed)
    after = (bars["ts"] > t0).to_numpy()

    def factor(sigma: float) -> pl.Series:
        return pl.Series(np.where(after, np.exp(rng.normal(0.0, sigma, bars.height)), 1.0))

    o, c = pl.col("open") * factor(0.05), pl.col("close") * factor(0.05)
    h = pl.max_horizontal(pl.col("high") * factor(0.05), o, c)
    lo = pl.min_horizontal(pl.col("low") * factor(0.05), o, c)
    out = bars.with_columns(o.alias("open"), c.alias("close"), h.alias("high"), lo.alias("low"))
    return out.with_columns(
        (pl.col("vwap") * factor(0.01)).clip(pl.col("low"), pl.col("high")).alias("vwap"),
        (pl.col("volume") * factor(1.0)).round(0).alias("volume"),
    )


# --- registry ------------------------------------------------------------------------------------------


def test_library_has_at_least_30_features_sorted_and_no_target_names():
    assert len(ALL_FEATURES) >= 30
    assert list(ALL_FEATURES) == sorted(set(ALL_FEATURES))
    assert not any(is_target_like(n) for n in ALL_FEATURES)
    assert not any(n.startswith("_") for n in ALL_FEATURES)
    assert resolve(None) == list(ALL_FEATURES)


def test_public_signatures_are_unchanged():
    assert list(inspect.signature(build_features).parameters) == ["bars", "names"]
    assert inspect.signature(build_features).parameters["names"].default is None
    assert list(inspect.signature(max_lookback_bars).parameters) == ["names"]
    assert list(inspect.signature(resolve).parameters) == ["names"]
    f = FEATURES_BY_NAME["ret_1"]
    assert (f.name, f.lookback_bars, f.cross_sectional) == ("ret_1", 1, False)


def test_declared_lookbacks_are_finite_and_consistent():
    for name in ALL_FEATURES:
        f = FEATURES_BY_NAME[name]
        assert isinstance(f.lookback_bars, int) and 0 <= f.lookback_bars < 500, name
        for source in f.sources:
            assert source.startswith("__") or FEATURES_BY_NAME[source].lookback_bars <= f.lookback_bars, name
        if f.cross_sectional:
            assert f.sources and f.lookback_bars == max(FEATURES_BY_NAME[s].lookback_bars for s in f.sources)
    assert max_lookback_bars(ALL_FEATURES) == max(FEATURES_BY_NAME[n].lookback_bars for n in ALL_FEATURES)
    assert max_lookback_bars([]) == 0


def test_original_features_and_lookbacks_are_kept():
    original = {
        "close_location": 0, "cs_rank_ret_1": 1, "cs_rank_volume_z_20": 19, "parkinson_vol_20": 19,
        "range_frac": 0, "ret_1": 1, "ret_20": 20, "ret_5": 5, "rsi_14": 14, "rvol_20": 20,
        "volume_z_20": 19, "volume_z_50": 49,
    }  # fmt: skip
    assert {n: FEATURES_BY_NAME[n].lookback_bars for n in original} == original


# --- (b) look-ahead guard --------------------------------------------------------------------------------


@pytest.mark.parametrize("t0_index", [150, 380])
def test_rewriting_the_future_leaves_every_feature_up_to_t0_unchanged(bars, full, t0_index):
    t0 = bars["ts"].unique().sort()[t0_index]
    edited = _rewrite_future(bars, t0, seed=t0_index)
    redone = build_features(edited)
    past = pl.col("ts") <= t0
    _assert_same(full.filter(past), redone.filter(past), ALL_FEATURES, tol=0.0)  # bitwise
    # the rewrite did reach every feature that reads prices or volumes, so the check above had teeth
    future_a, future_b = full.filter(~past), redone.filter(~past)
    unchanged = [
        n for n in ALL_FEATURES
        if np.array_equal(future_a[n].to_numpy(), future_b[n].to_numpy(), equal_nan=True)
    ]  # fmt: skip
    assert set(unchanged) == TIME_ONLY


# --- (c) finite, honest lookbacks -------------------------------------------------------------------------


@pytest.mark.parametrize("until_index", [None, 260])
def test_last_max_lookback_bars_reproduce_full_history(bars, full, until_index):
    until = None if until_index is None else bars["ts"].unique().sort()[until_index]
    at = full["ts"].max() if until is None else until
    history = _last_bars(bars, max_lookback_bars(ALL_FEATURES) + 1, until)
    assert history.group_by("symbol").len()["len"].max() == max_lookback_bars(ALL_FEATURES) + 1
    live = build_features(history).filter(pl.col("ts") == at)
    assert live.height == MARKET.n_symbols
    assert live.select(ALL_FEATURES).null_count().sum_horizontal().item() == 0
    _assert_same(full.filter(pl.col("ts") == at), live, ALL_FEATURES)


def test_latest_features_are_the_training_rows_of_the_newest_bar(bars, full):
    """The live engine's form: the newest bar's rows of a window, where one symbol has a short history (a new
    listing: the features it has too few bars for are null, as in warm-up) and one has no bar at the newest ts."""
    symbols = sorted(bars["symbol"].unique().to_list())
    at = full["ts"].max()
    window = _last_bars(bars, max_lookback_bars(ALL_FEATURES) + 1).filter(
        (pl.col("symbol") != symbols[1]) | (pl.int_range(pl.len()).over("symbol") >= pl.len().over("symbol") - 30),
        (pl.col("symbol") != symbols[2]) | (pl.col("ts") < at),
    )
    got = latest_features(window)
    assert got["symbol"].to_list() == [s for s in symbols if s != symbols[2]] and (got["ts"] == at).all()
    _assert_same(build_features(window).filter(pl.col("ts") == at), got, ALL_FEATURES)
    short = got.filter(pl.col("symbol") == symbols[1])
    for name in ALL_FEATURES:
        if not FEATURES_BY_NAME[name].cross_sectional:
            assert (short[name][0] is None) == (FEATURES_BY_NAME[name].lookback_bars >= 30), name
    ok = [s for s in symbols if s not in symbols[1:3]]
    ts_features = [n for n in ALL_FEATURES if not FEATURES_BY_NAME[n].cross_sectional]
    _assert_same(
        full.filter(pl.col("ts") == at, pl.col("symbol").is_in(ok)),
        got.filter(pl.col("symbol").is_in(ok)),
        ts_features,
    )


def test_bars_older_than_the_lookback_cannot_move_a_feature(bars, full):
    """Finite memory, checked hard: bars before the lookback rescaled 10x leave each feature's last value as is.

    (Within rounding: polars' rolling sums carry their running total, so a 10x older level moves the last digits.)
    """
    at = full["ts"].max()
    for name in ALL_FEATURES:
        lookback = FEATURES_BY_NAME[name].lookback_bars
        old = pl.int_range(pl.len()).over("symbol") < pl.len().over("symbol") - 1 - lookback
        edited = bars.sort("symbol", "ts").with_columns(
            [pl.when(old).then(pl.col(c) * 10.0).otherwise(pl.col(c)).alias(c) for c in (*PRICES, "volume")]
        )
        got = build_features(edited, [name]).filter(pl.col("ts") == at)[name].to_numpy()
        want = full.filter(pl.col("ts") == at)[name].to_numpy()
        assert np.allclose(got, want, rtol=1e-9, atol=1e-12), name


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_each_feature_needs_exactly_its_own_lookback(bars, full, name):
    lookback = FEATURES_BY_NAME[name].lookback_bars
    at = full["ts"].max()
    enough = build_features(_last_bars(bars, lookback + 1), [name]).filter(pl.col("ts") == at)
    assert enough[name].null_count() == 0
    _assert_same(full.filter(pl.col("ts") == at), enough, [name])
    if lookback:  # one bar fewer is not enough: the declared lookback is tight, not padded
        short = build_features(_last_bars(bars, lookback), [name]).filter(pl.col("ts") == at)
        assert short[name].null_count() == MARKET.n_symbols


def test_warm_up_is_exactly_the_declared_lookback(full):
    first_valid = (
        full.with_columns(pl.int_range(pl.len()).over("symbol").alias("_i"))
        .group_by("symbol")
        .agg([pl.col("_i").filter(pl.col(n).is_not_null()).min().alias(n) for n in ALL_FEATURES])
    )
    for name in ALL_FEATURES:
        assert first_valid[name].to_list() == [FEATURES_BY_NAME[name].lookback_bars] * MARKET.n_symbols, name


def test_each_symbol_alone_gives_the_same_values(bars, full):
    ts_features = [n for n in ALL_FEATURES if not FEATURES_BY_NAME[n].cross_sectional]
    alone = pl.concat([build_features(b, ts_features) for b in bars.partition_by("symbol", maintain_order=True)])
    _assert_same(full.select("ts", "symbol", *ts_features), alone.sort("symbol", "ts"), ts_features, tol=0.0)


# --- (d) coverage on a 500-bar market --------------------------------------------------------------------


def test_no_feature_is_all_null_and_values_are_finite(full):
    assert full.height == MARKET.n_symbols * MARKET.n_bars
    for name in ALL_FEATURES:
        col = full[name]
        assert col.null_count() < col.len(), f"{name} is all null"
        assert col.drop_nulls().is_finite().all(), f"{name} has inf/NaN"
    assert full["tod_sin"].n_unique() > 1  # 5-minute bars: time of day varies
    ranks = full.select(pl.col("^cs_rank_.*$")).to_numpy()
    assert np.nanmin(ranks) == 0.0 and np.nanmax(ranks) == 1.0


# --- (e) bars without vwap --------------------------------------------------------------------------------


def test_bars_without_vwap_use_the_typical_price(bars, full):
    no_vwap = build_features(bars.drop("vwap"))
    typical = build_features(bars.with_columns(((pl.col("high") + pl.col("low") + pl.col("close")) / 3).alias("vwap")))
    vwap_features = [n for n in ALL_FEATURES if "vwap" in n]
    assert set(vwap_features) >= {"vwap_dev", "vwap_dev_20", "cs_rank_vwap_dev"}
    _assert_same(typical, no_vwap, ALL_FEATURES, tol=0.0)
    others = [n for n in ALL_FEATURES if n not in vwap_features]
    _assert_same(full, no_vwap, others, tol=0.0)
    assert not np.allclose(full["vwap_dev"].to_numpy(), no_vwap["vwap_dev"].to_numpy())
    assert no_vwap.select(vwap_features).null_count().to_numpy().max() < no_vwap.height


def test_empty_vwap_cells_take_the_typical_price_row_by_row(bars, full):
    holes = bars.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 3).then(None).otherwise(pl.col("vwap")).alias("vwap")
    )
    got = build_features(holes, ["vwap_dev"])
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    want = build_features(holes.with_columns(pl.col("vwap").fill_null(typical)), ["vwap_dev"])
    _assert_same(want, got, ["vwap_dev"], tol=0.0)
    assert got["vwap_dev"].null_count() == full["vwap_dev"].null_count()  # an empty cell is not a null feature
    kept = pl.int_range(pl.len()) % 7 != 3  # cells with a VWAP keep their own
    _assert_same(full.filter(kept), got.filter(kept), ["vwap_dev"], tol=0.0)


def test_a_zero_volume_bar_leaves_the_volume_z_scores_finite(bars, full):
    zero = bars.with_columns(
        pl.when((pl.col("symbol") == "SYM002") & (pl.int_range(pl.len()).over("symbol") == 300))
        .then(0.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    out = build_features(zero, ["volume_z_20", "volume_z_50"])
    for name in ("volume_z_20", "volume_z_50"):
        assert out[name].null_count() == full[name].null_count(), name  # not 20 or 50 bars of nulls
        sym = out.filter(pl.col("symbol") == "SYM002")[name]
        assert sym[300] < -3.0  # a halted bar is a very low volume, as it should read


# --- formulas ----------------------------------------------------------------------------------------------


def test_time_of_day_is_read_from_utc():
    ts = [datetime(2024, 1, 2, h, m, tzinfo=UTC) for h, m in ((0, 0), (6, 0), (12, 0), (21, 0))]
    df = pl.DataFrame({"ts": ts, "symbol": "A", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    out = build_features(df.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York")), ["tod_cos", "tod_sin"])
    angle = [2 * math.pi * (h * 60 + m) / 1440 for h, m in ((0, 0), (6, 0), (12, 0), (21, 0))]
    assert np.allclose(out["tod_sin"].to_numpy(), np.sin(angle), atol=1e-12)
    assert np.allclose(out["tod_cos"].to_numpy(), np.cos(angle), atol=1e-12)


def test_macd_is_a_truncated_normalised_ema_difference(bars):
    one = bars.filter(pl.col("symbol") == bars["symbol"][0]).sort("ts")
    close = one["close"].to_numpy()
    out = build_features(one, ["macd", "macd_hist", "macd_signal"])

    def ema(x: np.ndarray, span: int, window: int) -> np.ndarray:
        w = (1 - 2 / (span + 1)) ** np.arange(window)[::-1]  # oldest bar first
        res = np.full(len(x), np.nan)
        for t in range(window - 1, len(x)):
            res[t] = np.dot(x[t - window + 1 : t + 1], w) / w.sum()
        return res

    macd = (ema(close, 12, 36) - ema(close, 26, 78)) / close
    signal = ema(np.nan_to_num(macd), 9, 27)
    signal[: 77 + 26] = np.nan
    got = out.select("macd", "macd_signal", "macd_hist").to_numpy().astype(float)
    want = np.column_stack([macd, signal, macd - signal])
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want)) < 1e-12


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_features", REPO / "bench" / "features.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("drop_vwap", [False, True])
def test_agrees_with_the_independent_pandas_implementation(bars, full, drop_vwap):
    pytest.importorskip("pandas")
    bench = _load_bench()
    src = bars.drop("vwap") if drop_vwap else bars
    ours = build_features(src) if drop_vwap else full
    ref = bench.pandas_features(src.to_pandas())
    assert sorted(c for c in ref.columns if c not in ("ts", "symbol", "close")) == list(ALL_FEATURES)
    rows = bench.compare(ref, ours)
    bad = [r for r in rows if r[3] or r[2] > bench.TOL]
    assert not bad, bad


def test_live_realised_forward_returns_equal_training_targets() -> None:
    """The engine realises a forward return from each symbol's newest bars (``realised_forward_return``): the
    training target of the same bar, for every entry, delay and horizon, with symbols missing bars."""
    from live.features import FeatureBuffer, epoch_us
    from ml.targets import TargetSpec, add_targets, price_path, realised_forward_return

    bars = make_market(SyntheticMarketConfig(n_symbols=8, n_bars=120, seed=4)).sample(fraction=0.93, seed=3)
    specs = [
        TargetSpec(horizon_bars=1, entry="next_open"),
        TargetSpec(horizon_bars=3, delay_bars=1),
        TargetSpec(horizon_bars=2, delay_bars=2, entry="next_open"),
    ]
    stamps = bars["ts"].unique().sort().to_list()
    keys = bars.select("ts", "symbol")
    truth = add_targets(keys, bars, specs, 5).sort("symbol")
    buffer = FeatureBuffer([], min_bars=8)
    compared = 0
    for i, ts in enumerate(stamps):
        buffer.push(bars.filter(pl.col("ts") == ts))
        rows = np.arange(len(buffer.window.symbols))
        for spec in specs:
            column, _, end = price_path(spec)
            if i < end:
                continue
            at = stamps[i - end]
            got = realised_forward_return(
                spec,
                buffer.window.column(column, rows, end + 1),
                buffer.window.column("ts", rows, end + 1),
                epoch_us(at),
            )
            want = dict(truth.filter(pl.col("ts") == at).select("symbol", spec.name(5)).iter_rows())
            for symbol, value in zip(buffer.window.symbols, got.tolist(), strict=True):
                expected = want.get(symbol)
                if expected is None:  # no bar at ``at`` (or no later bars in the whole market)
                    assert np.isnan(value), (spec, at, symbol)
                else:
                    lagging = np.isnan(value)  # a bar missing since ``at``: not complete yet live
                    assert lagging or value == expected, (spec, at, symbol, value, expected)
                    compared += not lagging
    assert compared > 1500
