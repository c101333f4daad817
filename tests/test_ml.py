"""Unit tests of the pure-compute layer ``ml/``: synthetic market, bars, features, targets, metrics, CV,
routing, ranking across families, the LightGBM family, run config and the lake.

Everything runs on small seeded markets (no mocks); the whole file takes well under a minute.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from contracts.routing import parse_routing
from ml.bars import BarSchemaError, validate_bars
from ml.config import RoutingThresholds, RunConfig, load_run_config
from ml.cv import CVConfig, Fold, HoldoutConfig, walk_forward_folds
from ml.families import get_family
from ml.features import (
    ALL_FEATURES,
    FEATURES_BY_NAME,
    build_features,
    is_target_like,
    max_lookback_bars,
    resolve,
)
from ml.lake import partitions, read_table, table_dir, write_partitions
from ml.metrics import (
    EvaluationConfig,
    cross_sectional_metrics,
    per_timestamp_ic,
    skill01,
    summarize_ic,
    time_series_metrics,
)
from ml.ranking import OOS, TargetEvaluation, evaluate_target, oos_predictions, training_rows
from ml.routing import route_target
from ml.selection import SelectionConfig
from ml.synthetic import SyntheticMarketConfig, documented_ics, make_market, planted_symbols, symbol_truth
from ml.targets import TargetSpec, add_targets

REPO = Path(__file__).resolve().parents[1]
# 24 symbols: six carry a per-symbol gap effect and six a wick effect, each with balanced ± signs
SMALL = SyntheticMarketConfig(n_symbols=24, n_bars=2000)
PLANTED = TargetSpec(horizon_bars=1)  # fwd_ret_5m: the volume signal, common to every symbol
GAP = TargetSpec(horizon_bars=1, delay_bars=1)  # fwd_ret_5m_delay5m: weak common + strong per-symbol gap signal
WICK = TargetSpec(horizon_bars=1, delay_bars=2)  # fwd_ret_5m_delay10m: per-symbol wick signal only
NOISE = TargetSpec(horizon_bars=3, delay_bars=3)  # fwd_ret_15m_delay15m: starts 4 bars after t, pure noise
NO_SIGNAL = {"rho_volume": 0.0, "rho_gap_common": 0.0, "rho_gap_symbol": 0.0, "rho_wick_symbol": 0.0}
RANKING_FAMILIES = ["LightGBM", "Ridge"]
FAST_LGBM = {"num_boost_round": 30}
# the demo's venue cost (configs/demo.yaml): the planted 5-minute signals break even at ~0.7 bp, so at a typical
# 2 bp every target would be (rightly) not tradable
VENUE = EvaluationConfig(cost_bps=0.25)
IC_TOL = 0.015  # ~3 standard errors of a mean per-timestamp IC over 24 symbols x 2000 bars
SYMBOL_NOISE_IC = 0.08  # ~3.5 standard errors of one symbol's time-series IC over 2000 bars


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return validate_bars(make_market(SMALL), source="synthetic")


@pytest.fixture(scope="module")
def panel(bars) -> pl.DataFrame:
    return add_targets(build_features(bars), bars, [PLANTED, GAP, WICK, NOISE], SMALL.interval_minutes)


def _with_value(df: pl.DataFrame, row: int, column: str, value) -> pl.DataFrame:
    """``df`` with one cell replaced (row is the 0-based position)."""
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )


def _assert_frames_close(
    a: pl.DataFrame, b: pl.DataFrame, columns: list[str], rtol: float = 1e-9, atol: float = 1e-9
) -> None:
    """Same keys, same null pattern, values equal within a tolerance.

    Features recomputed from a different slice of history may differ by ~1e-11 (floating-point accumulation in
    rolling sums); any real dependence on other bars shows up orders of magnitude above the tolerance.
    """
    assert a.select("ts", "symbol").equals(b.select("ts", "symbol"))
    for c in columns:
        x, y = a[c], b[c]
        assert x.is_null().to_list() == y.is_null().to_list(), f"{c}: null pattern differs"
        xv = x.fill_null(0.0).to_numpy().astype(float)
        yv = y.fill_null(0.0).to_numpy().astype(float)
        assert np.allclose(xv, yv, rtol=rtol, atol=atol), f"{c}: max abs diff {np.nanmax(np.abs(xv - yv))}"


def _cs_ic(frame: pl.DataFrame, feature: str, target: str) -> float:
    """Mean per-timestamp (cross-sectional) IC of a raw feature against a target."""
    return float(per_timestamp_ic(frame, feature, target)["IC"].mean())


def _ts_ics(frame: pl.DataFrame, feature: str, target: str) -> dict[str, float]:
    """Per symbol, the time-series correlation of a raw feature with a target."""
    out = {}
    for (symbol,), part in frame.drop_nulls([feature, target]).partition_by("symbol", as_dict=True).items():
        out[symbol] = float(np.corrcoef(part[feature].to_numpy(), part[target].to_numpy())[0, 1])
    return out


# --- 1. synthetic market ------------------------------------------------------------------------------


def test_market_is_deterministic_per_config_and_seed():
    a = make_market(SMALL)
    b = make_market(SyntheticMarketConfig(n_symbols=24, n_bars=2000))
    assert a.equals(b)
    other = make_market(SMALL.model_copy(update={"seed": SMALL.seed + 1}))
    assert other.shape == a.shape
    assert not other.equals(a)
    assert not np.allclose(other["close"].to_numpy(), a["close"].to_numpy())


def test_market_shape_ohlc_consistency_and_schema(bars):
    raw = make_market(SMALL)
    assert raw.height == SMALL.n_symbols * SMALL.n_bars
    assert raw["symbol"].n_unique() == SMALL.n_symbols
    # already valid, sorted and unique: validation changes nothing
    assert validate_bars(raw, source="synthetic").equals(raw)
    o, h, lo, c = (raw[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (o > 0).all() and (h > 0).all() and (lo > 0).all() and (c > 0).all()
    assert (raw["volume"].to_numpy() >= 0).all()
    vwap = raw["vwap"].to_numpy()
    assert ((vwap >= lo) & (vwap <= h)).all()
    assert raw.select(pl.struct("symbol", "ts").is_unique().all()).item()


def test_intraday_timestamps_lie_in_the_session_on_weekdays():
    cfg = SyntheticMarketConfig(n_symbols=2, n_bars=78 * 7, interval_minutes=5)
    ts = make_market(cfg).filter(pl.col("symbol") == "SYM000")["ts"].to_list()
    assert len(ts) == cfg.n_bars
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in ts)
    assert all(t.weekday() < 5 for t in ts)
    assert all(time(14, 30) < t.time() <= time(21, 0) for t in ts)
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    per_day: dict[date, int] = {}
    for t in ts:
        per_day[t.date()] = per_day.get(t.date(), 0) + 1
    assert set(per_day.values()) == {78}  # 390 minutes / 5
    assert min(ts) == datetime(2024, 1, 2, 14, 35, tzinfo=UTC)


def test_daily_interval_gives_one_bar_per_weekday():
    cfg = SyntheticMarketConfig(n_symbols=3, n_bars=60, interval_minutes=1440)
    ts = make_market(cfg).filter(pl.col("symbol") == "SYM001")["ts"].to_list()
    days = [t.date() for t in ts]
    assert len(days) == 60 and len(set(days)) == 60
    expected, d = [], date(2024, 1, 2)
    while len(expected) < 60:
        if d.weekday() < 5:
            expected.append(d)
        d += timedelta(days=1)
    assert days == expected
    assert all(t.time() == time(21, 0) for t in ts)


def test_interval_must_divide_the_session():
    with pytest.raises(ValueError, match="390"):
        make_market(SyntheticMarketConfig(n_symbols=2, n_bars=100, interval_minutes=7))


def test_signal_loadings_must_fit_in_the_return_variance():
    with pytest.raises(ValueError, match="variance"):
        SyntheticMarketConfig(rho_gap_common=0.5, rho_gap_symbol=0.5, rho_wick_symbol=0.5)


def test_planted_symbols_are_disjoint_deterministic_and_signed():
    planted = planted_symbols(SMALL)
    assert planted == planted_symbols(SyntheticMarketConfig(n_symbols=24, n_bars=2000))
    gap, wick = planted["gap"], planted["wick"]
    assert len(gap) == round(SMALL.frac_gap_symbols * SMALL.n_symbols) == 6
    assert len(wick) == round(SMALL.frac_wick_symbols * SMALL.n_symbols) == 6
    assert not set(gap) & set(wick)
    assert set(gap) | set(wick) <= set(make_market(SMALL)["symbol"].unique().to_list())
    assert set(gap.values()) == set(wick.values()) == {-1, 1}
    assert planted_symbols(SMALL.model_copy(update={"seed": SMALL.seed + 1})) != planted
    none = planted_symbols(SMALL.model_copy(update={"frac_gap_symbols": 0.0, "frac_wick_symbols": 0.0}))
    assert none == {"gap": {}, "wick": {}}


@pytest.mark.parametrize(
    "n_symbols",
    [
        8,
        24,
        12,
    ],
)
def test_per_symbol_signs_balance_across_the_universe(n_symbols):
    # module docstring: "g_i, w_i = ±1 are per-symbol signs, balanced so that the symbol-specific effects average
    # to zero across the universe (a pooled model cannot use them, a per-symbol model can)"
    planted = planted_symbols(SyntheticMarketConfig(n_symbols=n_symbols, n_bars=50))
    assert planted["gap"] and planted["wick"]
    assert sum(planted["gap"].values()) == 0
    assert sum(planted["wick"].values()) == 0


def test_documented_ics_follow_the_signal_layout():
    v = SMALL.rho_volume * SMALL.volume_loading
    c = SMALL.rho_gap_common * SMALL.gap_loading
    s = (SMALL.rho_gap_common + SMALL.rho_gap_symbol) * SMALL.gap_loading
    n = abs(SMALL.rho_gap_common - SMALL.rho_gap_symbol) * SMALL.gap_loading  # the sign -1 gap symbols
    w = SMALL.rho_wick_symbol * SMALL.wick_loading
    assert SMALL.wick_loading == pytest.approx(0.8165, abs=1e-4)
    next_bar = documented_ics(SMALL, PLANTED.horizon_bars, PLANTED.delay_bars)
    assert next_bar == pytest.approx(
        {"cs_ic": v, "gap_symbol_ic": v, "gap_symbol_ic_negative": v, "wick_symbol_ic": v, "plain_symbol_ic": v}
    )
    gap = documented_ics(SMALL, GAP.horizon_bars, GAP.delay_bars)
    assert gap == pytest.approx(
        {"cs_ic": c, "gap_symbol_ic": s, "gap_symbol_ic_negative": n, "wick_symbol_ic": c, "plain_symbol_ic": c}
    )
    wick = documented_ics(SMALL, WICK.horizon_bars, WICK.delay_bars)
    assert wick == pytest.approx(
        {"cs_ic": 0.0, "gap_symbol_ic": 0.0, "gap_symbol_ic_negative": 0.0, "wick_symbol_ic": w, "plain_symbol_ic": 0.0}
    )
    for h, d in [(NOISE.horizon_bars, NOISE.delay_bars), (1, 3), (6, 6)]:
        assert set(documented_ics(SMALL, h, d).values()) == {0.0}, (h, d)
    # a 3-bar return starting at t spans all three signals, each diluted by sqrt(3)
    three = documented_ics(SMALL, 3)
    assert three["cs_ic"] == pytest.approx(math.hypot(v, c) / math.sqrt(3))
    assert three["gap_symbol_ic"] == pytest.approx(math.hypot(v, s) / math.sqrt(3))
    assert three["wick_symbol_ic"] == pytest.approx(math.sqrt(v**2 + c**2 + w**2) / math.sqrt(3))
    symbols = planted_symbols(SMALL)
    plus, minus = (next(s for s, g in symbols["gap"].items() if g == sign) for sign in (1, -1))
    assert symbol_truth(SMALL, plus, 1, 1) == pytest.approx(s) and symbol_truth(SMALL, minus, 1, 1) == pytest.approx(n)


def test_each_signal_moves_only_its_own_bar(panel):
    """The observable of each signal predicts exactly the forward bar the design says, at the documented IC."""
    targets = {spec: spec.name(5) for spec in (PLANTED, GAP, WICK, NOISE)}
    observable = {
        "volume_z_50": PLANTED,
        "cs_rank_volume_z_20": PLANTED,
        "open_gap": GAP,
        "wick_log_ratio": WICK,  # cs IC 0: its effects are per symbol, with balanced signs
    }
    for feature, planted_in in observable.items():
        for spec, target in targets.items():
            expected = documented_ics(SMALL, spec.horizon_bars, spec.delay_bars)["cs_ic"] if spec == planted_in else 0
            ic = _cs_ic(panel, feature, target)
            assert abs(ic - expected) < IC_TOL, (feature, target, ic, expected)
    assert documented_ics(SMALL, GAP.horizon_bars, GAP.delay_bars)["cs_ic"] > 2 * IC_TOL  # the checks can fail
    assert documented_ics(SMALL)["cs_ic"] > 2 * IC_TOL


def test_per_symbol_effects_live_in_the_planted_symbols(panel):
    planted = planted_symbols(SMALL)
    a_g, rho_c, rho_s = SMALL.gap_loading, SMALL.rho_gap_common, SMALL.rho_gap_symbol
    gap_truth = documented_ics(SMALL, GAP.horizon_bars, GAP.delay_bars)
    wick_truth = documented_ics(SMALL, WICK.horizon_bars, WICK.delay_bars)
    assert gap_truth["gap_symbol_ic"] == pytest.approx((rho_c + rho_s) * a_g)  # the g = +1 symbols
    cases = [
        # feature, target, carriers, expected time-series IC of a carrier with sign +1 / -1, truth elsewhere
        ("open_gap", GAP, planted["gap"], {1: gap_truth["gap_symbol_ic"], -1: (rho_c - rho_s) * a_g}, gap_truth),
        (
            "wick_log_ratio",
            WICK,
            planted["wick"],
            {1: wick_truth["wick_symbol_ic"], -1: -wick_truth["wick_symbol_ic"]},
            wick_truth,
        ),
    ]
    for feature, spec, carriers, by_sign, truth in cases:
        ics = _ts_ics(panel, feature, spec.name(5))
        assert len(ics) == SMALL.n_symbols
        for symbol, sign in carriers.items():
            # the planted sign, at about the planted strength (the market factor dilutes a time-series IC a little)
            assert np.sign(ics[symbol]) == sign, (feature, symbol, ics[symbol])
            assert ics[symbol] == pytest.approx(by_sign[sign], abs=SYMBOL_NOISE_IC), (feature, symbol, by_sign[sign])
        plain = [ic for symbol, ic in ics.items() if symbol not in carriers]
        assert abs(float(np.mean(plain)) - truth["plain_symbol_ic"]) < 0.03, (feature, plain)
        assert max(abs(ic - truth["plain_symbol_ic"]) for ic in plain) < SYMBOL_NOISE_IC, (feature, plain)


def test_multi_bar_return_spreads_each_signal_over_its_horizon(bars):
    three = TargetSpec(horizon_bars=3)
    p3 = add_targets(build_features(bars, ["volume_z_50", "open_gap"]), bars, [three], 5)
    only_volume = SMALL.model_copy(update={k: v for k, v in NO_SIGNAL.items() if k != "rho_volume"})
    only_gap = SMALL.model_copy(update={"rho_volume": 0.0, "rho_gap_symbol": 0.0, "rho_wick_symbol": 0.0})
    for feature, cfg in (("volume_z_50", only_volume), ("open_gap", only_gap)):
        expected = documented_ics(cfg, 3)["cs_ic"]  # one signal over 3 bars: rho * a / sqrt(3)
        assert expected > 0
        ic = _cs_ic(p3, feature, three.name(5))
        assert abs(ic - expected) < IC_TOL, (feature, ic, expected)


def test_market_without_signal_has_no_ic():
    cfg = SyntheticMarketConfig(**{**SMALL.model_dump(), **NO_SIGNAL})
    assert (cfg.rho_volume, cfg.rho_gap_common, cfg.rho_gap_symbol, cfg.rho_wick_symbol) == (0, 0, 0, 0)
    for spec in (PLANTED, GAP, WICK, NOISE):
        assert set(documented_ics(cfg, spec.horizon_bars, spec.delay_bars).values()) == {0.0}
    b = make_market(cfg)
    p = add_targets(build_features(b, ["volume_z_50", "open_gap", "wick_log_ratio"]), b, [PLANTED, GAP, WICK], 5)
    assert abs(_cs_ic(p, "volume_z_50", PLANTED.name(5))) < IC_TOL
    assert abs(_cs_ic(p, "open_gap", GAP.name(5))) < IC_TOL
    planted = planted_symbols(cfg)  # the symbols are still chosen, but carry no effect
    gap_ics, wick_ics = _ts_ics(p, "open_gap", GAP.name(5)), _ts_ics(p, "wick_log_ratio", WICK.name(5))
    assert max(abs(gap_ics[s]) for s in planted["gap"]) < SYMBOL_NOISE_IC
    assert max(abs(wick_ics[s]) for s in planted["wick"]) < SYMBOL_NOISE_IC


# --- 2. validate_bars -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def few_bars() -> pl.DataFrame:
    return make_market(SyntheticMarketConfig(n_symbols=3, n_bars=60))


def test_negative_close_names_source_row_and_column(few_bars):
    bad = _with_value(few_bars, 7, "close", -1.0)
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(bad, source="feed_x.csv")
    msg = str(exc.value)
    assert "feed_x.csv" in msg and "row 7" in msg and "'close'" in msg


def test_high_below_low_names_source_row_and_column(few_bars):
    low7 = few_bars["low"][7]
    bad = _with_value(few_bars, 7, "high", low7 * 0.5)
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(bad, source="feed_y")
    msg = str(exc.value)
    assert "feed_y" in msg and "row 7" in msg and "'high'" in msg


def test_missing_column_names_source_and_column(few_bars):
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(few_bars.drop("volume"), source="feed_z")
    assert "feed_z" in str(exc.value) and "volume" in str(exc.value)


def _unparsable_close(df: pl.DataFrame) -> pl.DataFrame:
    as_text = df.with_columns(pl.col("close").cast(pl.String))
    return _with_value(as_text, 7, "close", "abc")


def test_unparsable_value_names_source_and_column(few_bars):
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(_unparsable_close(few_bars), source="feed_w")
    assert "feed_w" in str(exc.value) and "close" in str(exc.value)


def test_unparsable_value_names_row(few_bars):
    # validate_bars documents: "BarSchemaError naming source, the first bad row (0-based) and the column"
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(_unparsable_close(few_bars), source="feed_w")
    assert "row 7" in str(exc.value)


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
def test_nan_value_is_rejected(few_bars, column):
    bad = _with_value(few_bars, 7, column, float("nan"))
    with pytest.raises(BarSchemaError) as exc:
        validate_bars(bad, source="feed_nan")
    msg = str(exc.value)
    assert "feed_nan" in msg and "row 7" in msg and f"'{column}'" in msg


def test_duplicates_removed_keeping_last_and_output_sorted(few_bars):
    dup = few_bars[5].with_columns(pl.col("close") * 1.0001, pl.col("high") * 1.0001)
    # the later copy of the duplicate key is the edited one, and it wins
    shuffled = pl.concat([few_bars.sample(fraction=1.0, shuffle=True, seed=3), dup])
    out = validate_bars(shuffled, source="dups")
    assert out.height == few_bars.height
    assert out.select(pl.struct("symbol", "ts").is_unique().all()).item()
    assert out.equals(out.sort("symbol", "ts"))
    key = (few_bars["symbol"][5], few_bars["ts"][5])
    row = out.filter((pl.col("symbol") == key[0]) & (pl.col("ts") == key[1]))
    assert row["close"].item() == dup["close"].item()
    untouched = out.filter(~((pl.col("symbol") == key[0]) & (pl.col("ts") == key[1])))
    expected = few_bars.filter(~((pl.col("symbol") == key[0]) & (pl.col("ts") == key[1])))
    assert untouched.equals(expected)


def test_validate_bars_casts_to_the_schema(few_bars):
    loose = few_bars.with_columns(pl.col("volume").cast(pl.Int64), pl.col("trades").cast(pl.Int32))
    out = validate_bars(loose)
    assert out.schema["volume"] == pl.Float64 and out.schema["trades"] == pl.Int64


# --- 3. features -----------------------------------------------------------------------------------------


def test_features_never_read_future_bars(bars):
    base = build_features(bars)
    uts = bars["ts"].unique().sort()
    t0 = uts[800]
    rng = np.random.default_rng(11)
    after = (bars["ts"] > t0).to_numpy()
    factor = np.where(after, np.exp(rng.normal(0, 0.05, bars.height)), 1.0)
    vol_factor = np.where(after, rng.uniform(0.2, 5.0, bars.height), 1.0)
    edited = bars.with_columns(
        *[(pl.col(c) * pl.Series(factor)).alias(c) for c in ("open", "high", "low", "close", "vwap")],
        (pl.col("volume") * pl.Series(vol_factor)).round(0).alias("volume"),
    )
    validate_bars(edited)
    redone = build_features(edited)
    past = pl.col("ts") <= t0
    _assert_frames_close(base.filter(past), redone.filter(past), [*ALL_FEATURES, "close"])
    # the edit did change later features, so the comparison above could have failed
    fut_a = base.filter(~past)["volume_z_20"].fill_null(0).to_numpy()
    fut_b = redone.filter(~past)["volume_z_20"].fill_null(0).to_numpy()
    assert not np.allclose(fut_a, fut_b)


def _last_bars(bars: pl.DataFrame, n: int, until=None) -> pl.DataFrame:
    src = bars if until is None else bars.filter(pl.col("ts") <= until)
    return src.sort("symbol", "ts").group_by("symbol", maintain_order=True).tail(n)


@pytest.mark.parametrize("until_index", [None, 700])
def test_live_features_from_max_lookback_window_equal_training(bars, until_index):
    until = None if until_index is None else bars["ts"].unique().sort()[until_index]
    full = build_features(bars)
    at = full["ts"].max() if until is None else until
    full_at = full.filter(pl.col("ts") == at)
    lookback = max_lookback_bars(ALL_FEATURES)
    assert lookback == max(f.lookback_bars for f in FEATURES_BY_NAME.values())
    live = build_features(_last_bars(bars, lookback + 1, until))
    live_at = live.filter(pl.col("ts") == at)
    assert live_at.height == SMALL.n_symbols
    assert live_at.select(ALL_FEATURES).null_count().sum_horizontal().item() == 0
    _assert_frames_close(full_at, live_at, list(ALL_FEATURES))


@pytest.mark.parametrize("name", ALL_FEATURES)
def test_each_feature_lookback_is_enough(bars, name):
    full = build_features(bars, [name])
    at = full["ts"].max()
    live = build_features(_last_bars(bars, FEATURES_BY_NAME[name].lookback_bars + 1), [name])
    a, b = full.filter(pl.col("ts") == at), live.filter(pl.col("ts") == at)
    assert b[name].null_count() == 0
    _assert_frames_close(a, b, [name])


def test_resolve_refuses_targets_and_unknown_names():
    for target_like in (
        "fwd_ret_5m",
        "fwd_ret_15m_delay5m",
        "y_up",
        "cs_zscore_fwd_ret_5m",
        "cs_percentile_fwd_ret_5m",
        "vol_scaled_fwd_ret_5m",
    ):
        with pytest.raises((KeyError, ValueError)):
            resolve([target_like])
        with pytest.raises((KeyError, ValueError)):
            build_features(pl.DataFrame(), ["ret_1", target_like])
    with pytest.raises(KeyError, match="no_such_feature"):
        resolve(["ret_1", "no_such_feature"])
    assert is_target_like("fwd_ret_5m") and is_target_like("y_class") and not is_target_like("ret_1")
    assert all(is_target_like(f"{k}_fwd_ret_5m") for k in ("cs_zscore", "cs_percentile", "vol_scaled"))
    assert not any(is_target_like(n) for n in ALL_FEATURES)


def test_feature_registry_is_sorted_and_resolve_sorts():
    assert list(ALL_FEATURES) == sorted(ALL_FEATURES)
    assert len(set(ALL_FEATURES)) == len(ALL_FEATURES)
    assert resolve(None) == list(ALL_FEATURES)
    assert resolve(["ret_5", "ret_1", "ret_5"]) == ["ret_1", "ret_5"]


def test_build_features_columns_and_warmup(bars):
    out = build_features(bars, ["volume_z_50", "ret_1"])
    assert out.columns == ["ts", "symbol", "close", "ret_1", "volume_z_50"]
    assert out.height == bars.height
    first = out.group_by("symbol", maintain_order=True).head(60)
    for sym_rows in first.partition_by("symbol"):
        z = sym_rows["volume_z_50"]
        assert z[:49].is_null().all() and z[49:].is_not_null().all()
        assert sym_rows["ret_1"][0] is None and sym_rows["ret_1"][1:].is_not_null().all()


# --- 4. targets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [PLANTED, GAP, NOISE, TargetSpec(horizon_bars=4, delay_bars=2)])
def test_forward_returns_match_hand_computation(bars, spec):
    out = add_targets(bars.select("ts", "symbol"), bars, [spec], 5)
    name = spec.name(5)
    for sym in ("SYM000", "SYM007"):
        close = bars.filter(pl.col("symbol") == sym)["close"].to_numpy()
        y = out.filter(pl.col("symbol") == sym)[name]
        n, d, r = len(close), spec.delay_bars, spec.reach_bars
        expected = close[r:] / close[d : n - spec.horizon_bars] - 1.0  # close[t+d+h] / close[t+d] - 1
        assert np.allclose(y[: n - r].to_numpy(), expected, rtol=1e-12, atol=0)
        assert y[n - r :].is_null().all() and y[: n - r].is_not_null().all()
        assert y.len() == n


def test_targets_are_joined_by_key_not_position(bars):
    frame = bars.select("ts", "symbol").sample(fraction=1.0, shuffle=True, seed=5)
    out = add_targets(frame, bars, [PLANTED], 5)
    ref = add_targets(bars.select("ts", "symbol"), bars, [PLANTED], 5)
    assert out.sort("symbol", "ts").equals(ref.sort("symbol", "ts"))


@pytest.mark.parametrize(
    ("spec", "interval", "name"),
    [
        (TargetSpec(horizon_bars=1), 5, "fwd_ret_5m"),
        (TargetSpec(horizon_bars=3, delay_bars=1), 5, "fwd_ret_15m_delay5m"),
        (TargetSpec(horizon_bars=12), 5, "fwd_ret_1h"),
        (TargetSpec(horizon_bars=1), 1440, "fwd_ret_1d"),
        (TargetSpec(horizon_bars=5, delay_bars=1), 1440, "fwd_ret_5d_delay1d"),
        (TargetSpec(kind="cs_zscore", horizon_bars=1), 5, "cs_zscore_fwd_ret_5m"),
        (TargetSpec(kind="cs_percentile", horizon_bars=3, delay_bars=1), 5, "cs_percentile_fwd_ret_15m_delay5m"),
        (TargetSpec(kind="vol_scaled", horizon_bars=12), 5, "vol_scaled_fwd_ret_1h"),
        (TargetSpec(kind="cs_zscore", horizon_bars=1), 1440, "cs_zscore_fwd_ret_1d"),
    ],
)
def test_target_name_round_trip(spec, interval, name):
    assert spec.name(interval) == name
    assert TargetSpec.from_name(name, interval) == spec
    assert spec.reach_bars == spec.horizon_bars + spec.delay_bars
    # the variant is a transform of the same forward return: same base name, same reach
    assert spec.base_name(interval) == TargetSpec(horizon_bars=spec.horizon_bars, delay_bars=spec.delay_bars).name(
        interval
    )


@pytest.mark.parametrize(
    ("name", "interval"),
    [
        ("fwd_ret_5", 5),
        ("ret_5m", 5),
        ("fwd_ret_5m_delay", 5),
        ("fwd_ret_5x", 5),
        ("garbage", 5),
        ("fwd_ret_7m", 5),  # not a whole number of 5-minute bars
        ("fwd_ret_1h", 1440),
        ("fwd_ret_0m", 5),
        ("cs_rank_fwd_ret_5m", 5),
        ("zscore_fwd_ret_5m", 5),
        ("cs_zscore_fwd_ret_7m", 5),
        ("cs_zscore_", 5),
        ("fwd_ret_5m_cs_zscore", 5),
    ],
)
def test_target_from_name_rejects_garbage(name, interval):
    with pytest.raises(ValueError):
        TargetSpec.from_name(name, interval)


@pytest.fixture(scope="module")
def target_variants(bars) -> tuple[pl.DataFrame, list[TargetSpec]]:
    specs = [
        TargetSpec(kind=kind, horizon_bars=h, delay_bars=d)
        for kind in ("fwd_ret", "cs_zscore", "cs_percentile", "vol_scaled")
        for h, d in ((1, 0), (3, 1))
    ]
    frame = build_features(bars, ["rvol_20"])
    return add_targets(frame, bars, specs, 5), specs


def test_cs_zscore_target_is_the_forward_return_standardised_per_timestamp(target_variants):
    out, specs = target_variants
    for spec in (s for s in specs if s.kind == "cs_zscore"):
        raw, z = spec.base_name(5), spec.name(5)
        assert out[z].is_null().to_list() == out[raw].is_null().to_list()
        stats = (
            out.drop_nulls(z)
            .group_by("ts")
            .agg(pl.col(z).mean().alias("mean"), pl.col(z).std().alias("std"), pl.len().alias("n"))
        )
        assert stats.height >= SMALL.n_bars - spec.reach_bars
        assert (stats["n"] == SMALL.n_symbols).all()
        assert np.allclose(stats["mean"].to_numpy(), 0.0, atol=1e-12)
        assert np.allclose(stats["std"].to_numpy(), 1.0, rtol=1e-12)
        for part in out.drop_nulls(raw).partition_by("ts")[100:103]:
            y = part[raw].to_numpy()
            assert np.allclose(part[z].to_numpy(), (y - y.mean()) / y.std(ddof=1), rtol=1e-9, atol=1e-12)
        # an increasing affine map per timestamp: perfectly correlated with the raw return at every timestamp
        per_t = per_timestamp_ic(out, raw, z)
        assert per_t["IC"].min() == pytest.approx(1.0) and per_t["RankIC"].min() == pytest.approx(1.0)


def test_cs_percentile_target_is_the_rank_in_unit_interval(target_variants):
    out, specs = target_variants
    for spec in (s for s in specs if s.kind == "cs_percentile"):
        raw, pct = spec.base_name(5), spec.name(5)
        assert out[pct].is_null().to_list() == out[raw].is_null().to_list()
        values = out[pct].drop_nulls().to_numpy()
        assert values.min() >= 0.0 and values.max() <= 1.0
        stats = out.drop_nulls(pct).group_by("ts").agg(pl.col(pct).min().alias("lo"), pl.col(pct).max().alias("hi"))
        assert (stats["lo"] == 0.0).all() and (stats["hi"] == 1.0).all()
        n = SMALL.n_symbols
        for part in out.drop_nulls(raw).partition_by("ts")[100:105]:
            y = part[raw].to_numpy()
            expected = np.argsort(np.argsort(y)) / (n - 1)  # no ties in continuous returns
            assert np.allclose(part[pct].to_numpy(), expected, atol=1e-12)


def test_vol_scaled_target_divides_by_trailing_volatility(target_variants, bars):
    out, specs = target_variants
    for spec in (s for s in specs if s.kind == "vol_scaled"):
        raw, scaled = spec.base_name(5), spec.name(5)
        both = out.drop_nulls([raw, "rvol_20"])
        expected = both[raw] / (both["rvol_20"] * math.sqrt(spec.horizon_bars))
        assert np.allclose(both[scaled].to_numpy(), expected.to_numpy(), rtol=1e-9, atol=0)
        # null where either the forward return or the trailing volatility (warm-up) is missing
        missing = out[raw].is_null() | out["rvol_20"].is_null()
        assert out[scaled].is_null().to_list() == missing.to_list()
        # the volatility is the one known at t: the stdev of the 20 one-bar log returns ending at t, by hand
        sym = out.filter(pl.col("symbol") == "SYM003")
        close = bars.filter(pl.col("symbol") == "SYM003")["close"].to_numpy()
        log_ret = np.diff(np.log(close))
        t = 500
        vol_t = np.std(log_ret[t - 20 : t], ddof=1)  # returns of bars t-19 .. t
        fwd = close[t + spec.reach_bars] / close[t + spec.delay_bars] - 1.0
        assert sym[scaled][t] == pytest.approx(fwd / (vol_t * math.sqrt(spec.horizon_bars)), rel=1e-9)


# --- 5. metrics ------------------------------------------------------------------------------------------


def _rank(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


def test_per_timestamp_ic_equals_numpy_pearson_and_spearman():
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    rows, expected = [], {}
    for k in range(5):
        ts = t0 + timedelta(minutes=5 * k)
        s = rng.normal(size=7)
        y = 0.5 * s + rng.normal(size=7)
        rows += [{"ts": ts, "symbol": f"S{i}", "score": s[i], "y": y[i]} for i in range(7)]
        expected[ts] = (np.corrcoef(s, y)[0, 1], np.corrcoef(_rank(s), _rank(y))[0, 1], 7, True)
    # excluded: only 2 symbols; nulls are dropped before counting (5 nulls: nothing left)
    rows += [{"ts": t0 + timedelta(hours=1), "symbol": f"S{i}", "score": float(i), "y": float(-i)} for i in range(2)]
    rows += [{"ts": t0 + timedelta(hours=3), "symbol": f"S{i}", "score": float(i), "y": None} for i in range(5)]
    # a constant score shows no skill: IC 0, counted, marked undefined (never dropped, which would inflate the mean)
    constant = t0 + timedelta(hours=2)
    rows += [{"ts": constant, "symbol": f"S{i}", "score": 1.0, "y": float(i)} for i in range(5)]
    expected[constant] = (0.0, 0.0, 5, False)
    out = per_timestamp_ic(pl.DataFrame(rows), "score", "y")
    assert out.columns == ["ts", "n", "IC", "RankIC", "defined"]
    assert out["ts"].to_list() == sorted(expected)
    for r in out.iter_rows(named=True):
        ic, ric, n, defined = expected[r["ts"]]
        assert (r["n"], r["defined"]) == (n, defined)
        assert r["IC"] == pytest.approx(ic, abs=1e-12)
        assert r["RankIC"] == pytest.approx(ric, abs=1e-12)


def test_constant_score_timestamps_count_as_zero_and_lower_the_coverage():
    rng = np.random.default_rng(5)
    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    rows = []
    for k in range(40):
        s = rng.normal(size=8)
        y = s + 0.5 * rng.normal(size=8)
        if k % 4 == 0:
            s = np.full(8, 0.25)  # a tree's tied leaves: no ranking at all at this timestamp
        rows += [{"ts": t0 + timedelta(minutes=5 * k), "symbol": f"S{i}", "score": s[i], "y": y[i]} for i in range(8)]
    m = cross_sectional_metrics(pl.DataFrame(rows))
    per_t = per_timestamp_ic(pl.DataFrame(rows))
    assert m["n_timestamps"] == 40 and m["ic_coverage"] == pytest.approx(0.75)
    assert m["mean_IC"] == pytest.approx(per_t["IC"].mean())
    assert m["mean_IC"] == pytest.approx(0.75 * per_t.filter(pl.col("defined"))["IC"].mean())
    assert m["hit_rate"] <= 0.75


def test_summarize_ic_definitions():
    rng = np.random.default_rng(1)
    ic = rng.normal(0.05, 0.1, 400)
    ric = rng.normal(0.04, 0.1, 400)
    m = summarize_ic(ic, ric, horizon_bars=1)
    assert m["mean_IC"] == pytest.approx(ic.mean())
    assert m["mean_RankIC"] == pytest.approx(ric.mean())
    assert m["IC_IR"] == pytest.approx(ic.mean() / ic.std(ddof=1))
    assert m["RankIC_IR"] == pytest.approx(ric.mean() / ric.std(ddof=1))
    assert m["t_stat"] == pytest.approx(ic.mean() / ic.std(ddof=1) * math.sqrt(400))
    assert m["hit_rate"] == pytest.approx((ic > 0).mean())
    assert m["n_timestamps"] == 400
    # overlapping targets: the t-stat uses every horizon-th timestamp only
    m3 = summarize_ic(ic, ric, horizon_bars=3)
    s = ic[::3]
    assert m3["t_stat"] == pytest.approx(s.mean() / s.std(ddof=1) * math.sqrt(len(s)))
    assert m3["IC_IR"] == pytest.approx(m["IC_IR"])
    assert summarize_ic(np.array([0.3]), np.array([0.3]))["t_stat"] == 0.0


@pytest.mark.parametrize(
    ("score", "expected"), [(0.0, 0.5), (0.1, 0.55), (-0.2, 0.4), (1.0, 1.0), (5.0, 1.0), (-1.0, 0.0), (-3.0, 0.0)]
)
def test_skill01_is_clamped(score, expected):
    assert skill01(score) == pytest.approx(expected)
    assert 0.0 <= skill01(score) <= 1.0


def test_mean_ic_is_per_timestamp_not_pooled():
    rng = np.random.default_rng(2)
    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    rows = []
    for k in range(40):
        level = rng.normal(0, 10)  # a per-timestamp shift common to score and target
        a = rng.normal(size=10)
        b = -a + 0.3 * rng.normal(size=10)  # within each timestamp: strongly negative
        rows += [
            {"ts": t0 + timedelta(minutes=5 * k), "symbol": f"S{i}", "score": level + a[i], "y": level + b[i]}
            for i in range(10)
        ]
    df = pl.DataFrame(rows)
    pooled = np.corrcoef(df["score"].to_numpy(), df["y"].to_numpy())[0, 1]
    m = cross_sectional_metrics(df)
    per_t = per_timestamp_ic(df)
    assert pooled > 0.8
    assert m["mean_IC"] < -0.8
    assert m["mean_IC"] == pytest.approx(per_t["IC"].mean())
    assert m["mean_RankIC"] == pytest.approx(per_t["RankIC"].mean())
    assert m["n_timestamps"] == 40


def _portfolio_frame(scores: list[list[float]], rets: list[list[float]]) -> pl.DataFrame:
    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    rows = []
    for k, (s, r) in enumerate(zip(scores, rets, strict=True)):
        rows += [
            {"ts": t0 + timedelta(minutes=5 * k), "symbol": f"S{i}", "score": s[i], "y": r[i]} for i in range(len(s))
        ]
    return pl.DataFrame(rows)


def test_quantile_spread_turnover_and_net_spread_by_hand():
    # 5 symbols, quantile 0.2: long the top 1, short the bottom 1
    scores = [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1], [1, 2, 3, 4, 5]]
    rets = [[0.002, 0, 0, 0, -0.001], [0.001, 0, 0, 0, 0.0], [0.0, 0, 0, 0, 0.003]]
    cfg = EvaluationConfig(cost_bps=1.5, quantile_frac=0.2)
    m = cross_sectional_metrics(_portfolio_frame(scores, rets), cfg=cfg)
    spreads = [0.002 + 0.001, 0.001 - 0.0, 0.003 - 0.0]  # long leg minus short leg, per rebalance
    assert m["spread_bps"] == pytest.approx(np.mean(spreads) * 1e4)
    # unchanged book, then both legs swap: one-way turnover 1/2 * (|+1 - -1| + |-1 - +1|) = 2
    assert m["turnover_frac"] == pytest.approx(np.mean([0.0, 2.0]))
    assert m["net_spread_bps"] == pytest.approx(m["spread_bps"] - 1.5 * 2 * m["turnover_frac"])
    assert m["breakeven_cost_bps"] == pytest.approx(m["spread_bps"] / (2 * m["turnover_frac"]))
    assert m["cost_bps"] == 1.5


def test_a_zscore_target_measures_its_spread_in_the_return_column():
    scores = [[5, 4, 3, 2, 1]] * 2
    frame = _portfolio_frame(scores, [[1.0, 0, 0, 0, -1.0]] * 2).with_columns(
        ret=pl.Series([0.001, 0, 0, 0, -0.001] * 2)
    )
    assert cross_sectional_metrics(frame, ret="ret")["spread_bps"] == pytest.approx(20.0)
    assert cross_sectional_metrics(frame)["spread_bps"] == pytest.approx(2e4)  # a z-score is not a return


def test_multi_bar_targets_rebalance_on_the_bar_grid_every_horizon():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(30, 6)).tolist()
    rets = rng.normal(0, 0.001, size=(30, 6)).tolist()
    frame = _portfolio_frame(scores, rets)
    m3 = cross_sectional_metrics(frame, horizon_bars=3)
    sampled = frame.filter(pl.col("ts").rank("dense").cast(pl.Int64).sub(1) % 3 == 0)
    assert m3["spread_bps"] == pytest.approx(cross_sectional_metrics(sampled)["spread_bps"])
    assert m3["turnover_frac"] == pytest.approx(cross_sectional_metrics(sampled)["turnover_frac"])


def test_time_series_metrics_windows_and_position():
    rng = np.random.default_rng(3)
    n = 1000
    score = rng.normal(size=n)
    y = 0.2 * score + rng.normal(size=n)
    m = time_series_metrics(score, y * 0.001, horizon_bars=1, ret=y * 0.001)
    assert m["ts_IC"] == pytest.approx(np.corrcoef(score, y)[0, 1])
    assert m["n_windows"] == 20 and m["IC_IR"] is not None and m["IC_IR"] > 1.0  # 20 windows of 50 bars
    position = np.sign(score - np.median(score))
    assert m["spread_bps"] == pytest.approx(np.mean(position * y * 0.001) * 1e4)
    assert m["turnover_frac"] == pytest.approx(0.5 * np.abs(np.diff(position)).mean())
    # too few windows: no IC_IR (3 folds' ICs make a meaningless ratio), the IC itself stays
    short = time_series_metrics(score[:300], y[:300], horizon_bars=1)
    assert short["n_windows"] == 6 and short["IC_IR"] is None and short["ts_IC"] != 0.0
    # the t-stat samples non-overlapping observations on the bar grid, whatever rows are missing
    rows = np.arange(n) * 2  # every other grid bar (a halted symbol)
    m2 = time_series_metrics(score, y, horizon_bars=2, grid_rows=rows)
    assert m2["t_stat"] == pytest.approx(time_series_metrics(score, y, horizon_bars=1)["t_stat"])
    assert time_series_metrics(np.full(n, 0.3), y)["ic_coverage"] == 0.0


# --- 6. CV -----------------------------------------------------------------------------------------------


def _utc(t: np.datetime64) -> datetime:
    return datetime.fromisoformat(str(np.datetime64(t, "us"))).replace(tzinfo=UTC)


def _grid(n: int) -> np.ndarray:
    return np.datetime64("2024-01-02T14:35", "us") + np.arange(n) * np.timedelta64(5, "m")


def _rows(grid: np.ndarray, reach: int, n_symbols: int = 4) -> pl.DataFrame:
    """A full panel: every symbol at every grid timestamp, its target ending ``reach`` grid bars later."""
    ts = np.tile(grid, n_symbols)
    end = np.tile(np.concatenate([grid[reach:], np.full(reach, np.datetime64("NaT"))]), n_symbols)
    return pl.DataFrame(
        {"ts": ts, "symbol": np.repeat([f"S{i}" for i in range(n_symbols)], len(grid)), "y__end_ts": end}
    ).with_columns(pl.col("ts", "y__end_ts").dt.replace_time_zone("UTC"))


@pytest.mark.parametrize(("reach", "purge_bars", "n_folds"), [(1, 0, 3), (4, 2, 3), (3, 5, 5)])
def test_walk_forward_folds_are_purged_on_target_end_and_expanding(reach, purge_bars, n_folds):
    grid = _grid(1000)
    rows = _rows(grid, reach)
    cfg = CVConfig(n_folds=n_folds, purge_bars=purge_bars, min_train_timestamps=50)
    folds = walk_forward_folds(rows["ts"], cfg, reach_bars=reach)
    assert [f.index for f in folds] == list(range(n_folds))
    pos = {t: i for i, t in enumerate(grid)}
    prev_train, prev_val_end = 0, -1
    for f in folds:
        train, val = f.train(rows, "y__end_ts"), f.validation(rows)
        train_pos = sorted({pos[t] for t in train["ts"].dt.replace_time_zone(None).to_numpy()})
        val_pos = sorted({pos[t] for t in val["ts"].dt.replace_time_zone(None).to_numpy()})
        first_val = val_pos[0]
        assert val_pos == list(range(first_val, first_val + len(val_pos)))  # contiguous block
        assert first_val == prev_val_end + 1 or prev_val_end == -1
        assert train_pos == list(range(len(train_pos)))  # expanding window from the start
        # every training target ends before the cut, purge_bars before the validation window
        assert (train["y__end_ts"].dt.replace_time_zone(None).to_numpy() < grid[first_val - purge_bars]).all()
        assert first_val - len(train_pos) == reach + purge_bars  # exactly the reach and the purge are dropped
        assert len(train_pos) > prev_train
        prev_train, prev_val_end = len(train_pos), val_pos[-1]
    assert prev_val_end == len(grid) - 1  # the last fold validates up to the end


def test_purge_on_a_ragged_panel_uses_each_rows_target_end():
    """A halted symbol's next bar is days later: positions on the union grid would let its target leak."""
    from ml.cv import make_holdout

    base = SyntheticMarketConfig(n_symbols=6, n_bars=900, seed=4)
    bars = make_market(base)
    stamps = bars["ts"].unique().sort()
    halt = (stamps[290], stamps[420])  # SYM000 halted around the first validation window
    late = stamps[500]  # SYM001 listed late
    bars = bars.filter(
        ~((pl.col("symbol") == "SYM000") & pl.col("ts").is_between(*halt))
        & ~((pl.col("symbol") == "SYM001") & (pl.col("ts") < late))
    )
    spec = TargetSpec(horizon_bars=2)
    panel = add_targets(bars.select("ts", "symbol", "close"), bars, [spec], 5)
    end = "fwd_ret_10m__end_ts"
    halted = panel.filter((pl.col("symbol") == "SYM000") & (pl.col("ts") < halt[0])).tail(1)
    assert halted[end].item() > halt[1]  # its 2-bar target reads bars after the halt
    holdout = make_holdout(panel["ts"], HoldoutConfig())
    development = holdout.development(panel, end)
    assert development[end].max() < _utc(holdout.start)  # no development target reads a holdout bar
    folds = walk_forward_folds(development["ts"], CVConfig(n_folds=3, min_train_timestamps=50), spec.reach_bars)
    for f in folds:
        train = f.train(development, end)
        assert (train[end] < _utc(f.val_start)).all()
        assert train.height < development.filter(pl.col("ts") < _utc(f.val_start)).height  # something was purged
    first = next(f for f in folds if _utc(f.val_start) > halt[0])
    trained = first.train(development, end).filter(pl.col("symbol") == "SYM000")["ts"].to_list()
    assert halted["ts"].item() not in trained  # on positions (2 bars before the cut) it would have trained


def test_embargo_bars_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="embargo_bars was removed: walk-forward training never follows"):
        CVConfig.model_validate({"embargo_bars": 3})


def test_holdout_is_the_final_stretch_and_configurable():
    from ml.cv import make_holdout

    grid = _grid(1000)
    default = make_holdout(grid, HoldoutConfig())
    assert default.n_timestamps == 200 and default.start == grid[800] and default.cut == grid[800]
    assert make_holdout(grid, HoldoutConfig(n_timestamps=120)).start == grid[880]
    assert make_holdout(grid, HoldoutConfig(fraction=0.3, purge_bars=5)).cut == grid[700 - 5]
    by_date = make_holdout(grid, HoldoutConfig(start=str(grid[900])))
    assert by_date.start == grid[900]
    with pytest.raises(ValueError, match="give one of"):
        HoldoutConfig(fraction=0.2, n_timestamps=10)
    with pytest.raises(ValueError, match="fewer than holdout.min_timestamps"):
        make_holdout(grid, HoldoutConfig(n_timestamps=20))
    record = default.describe()
    assert record["n_timestamps"] == 200 and record["start"].endswith("Z")


def test_walk_forward_folds_too_few_timestamps():
    with pytest.raises(ValueError, match="no usable CV fold") as exc:
        walk_forward_folds(_grid(60), CVConfig(n_folds=3, min_train_timestamps=100), reach_bars=1)
    assert "60 development timestamps" in str(exc.value) and "min_train_timestamps 100" in str(exc.value)


def test_folds_with_too_little_training_are_skipped():
    folds = walk_forward_folds(_grid(400), CVConfig(n_folds=3, min_train_timestamps=150), reach_bars=1)
    assert [f.index for f in folds] == [1, 2]


# --- 7. routing ------------------------------------------------------------------------------------------

GOOD_SYM = {"ts_IC": 0.05, "t_stat": 4.0, "net_spread_bps": 1.0}
BAD_SYM = {"ts_IC": 0.0, "t_stat": 0.1, "net_spread_bps": -0.5}


def _cs(ic: float, t: float, net: float = 1.0) -> dict:
    return {"mean_IC": ic, "t_stat": t, "IC_IR": t / 30, "mean_RankIC": ic, "net_spread_bps": net, "cost_bps": 2.0}


def _evaluation(
    ic: float, t: float, n_good: int, n_total: int, target: str = "fwd_ret_5m", net: float = 1.0
) -> TargetEvaluation:
    symbols = {f"S{i:02d}": dict(GOOD_SYM if i < n_good else BAD_SYM) for i in range(n_total)}
    return TargetEvaluation(target, 1, cs=_cs(ic, t, net), symbols=symbols)


@pytest.mark.parametrize(
    ("ic", "t", "n_good", "n_total", "cap", "rule", "route"),
    [
        (0.001, 0.5, 0, 10, 200, "no_skill", "BLOCKED"),
        (0.05, 1.0, 0, 10, 200, "no_skill", "BLOCKED"),  # IC high enough but t too small
        (0.85, 10.0, 10, 10, 200, "suspicious", "BLOCKED"),
        (0.30, 600.0, 10, 10, 200, "suspicious", "BLOCKED"),  # a huge t makes a leak more certain, never less
        (-0.40, -80.0, 0, 10, 200, "suspicious", "BLOCKED"),  # the bound is on |IC|
        (0.05, 6.0, 6, 10, 200, "cs_and_most_symbols", "CROSS_SECTIONAL"),
        (0.05, 6.0, 5, 10, 200, "cs_and_most_symbols", "CROSS_SECTIONAL"),  # frac_most is inclusive
        (0.05, 6.0, 0, 10, 200, "cs_only", "CROSS_SECTIONAL"),
        (0.001, 0.5, 3, 10, 200, "symbols_only", "SYMBOL_SPECIFIC"),
        (0.05, 6.0, 3, 10, 200, "cs_and_some_symbols", "BOTH"),
        (0.05, 6.0, 3, 10, 2, "too_many_symbols", "CROSS_SECTIONAL"),  # 3 good symbols > cap 2
        (0.05, 6.0, 3, 10, 3, "cs_and_some_symbols", "BOTH"),  # the cap compares good symbols, not all 10
        (0.05, 6.0, 8, 10, 5, "too_many_symbols", "CROSS_SECTIONAL"),
        (0.001, 0.5, 3, 10, 2, "too_many_symbols", "BLOCKED"),
    ],
)
def test_routing_rules(ic, t, n_good, n_total, cap, rule, route):
    th = RoutingThresholds(max_symbols_symbol_specific=cap)
    ev = _evaluation(ic, t, n_good, n_total)
    d = route_target(ev, th)
    assert d["route"] == route
    assert d["rule"] == rule
    assert d["reason"].startswith(f"rule {rule}")
    if rule == "suspicious":
        assert f"|IC_cs|={abs(ic):.4f} > max_abs_ic_cs {th.max_abs_ic_cs}" in d["reason"]
    else:
        assert f"{ic:.4f}" in d["reason"] and f"{t:.2f}" in d["reason"]
        assert f"{n_good}/{n_total}" in d["reason"]
    if rule == "too_many_symbols":
        assert f"{n_good} good symbols > cap {cap}" in d["reason"]
    assert d["frac_symbols_good"] == pytest.approx(n_good / n_total)
    assert d["n_symbols_evaluated"] == n_total
    assert d["skill01_cs"] == pytest.approx(skill01(ic))
    assert d["thresholds"]["max_symbols_symbol_specific"] == cap
    parsed = parse_routing({"fwd_ret_5m": d})
    assert parsed.root["fwd_ret_5m"].route == route


def test_a_signal_that_does_not_pay_its_costs_is_not_tradable():
    d = route_target(_evaluation(0.02, 8.0, 0, 10, net=-0.4), RoutingThresholds())
    assert (d["route"], d["rule"]) == ("BLOCKED", "not_tradable"), d["reason"]
    assert "net_spread_cs=-0.40 bps at cost 2.0 bps (min 0.0)" in d["reason"]
    # symbols that pay their costs still route it
    d = route_target(_evaluation(0.02, 8.0, 3, 10, net=-0.4), RoutingThresholds())
    assert (d["route"], d["rule"]) == ("SYMBOL_SPECIFIC", "symbols_only")
    assert route_target(_evaluation(0.02, 8.0, 0, 10, net=-0.4), RoutingThresholds(min_net_spread_bps=-1))["route"] == (
        "CROSS_SECTIONAL"
    )
    # a symbol with skill but costs above its spread is not good
    ev = _evaluation(0.001, 0.5, 0, 10)
    ev.symbols["S00"] = {"ts_IC": 0.2, "t_stat": 9.0, "net_spread_bps": -0.1}
    assert route_target(ev, RoutingThresholds())["winner_symbols"] == []


def test_routing_winner_symbols_are_only_good_symbols_best_first():
    net = {"net_spread_bps": 1.0}
    symbols = {
        "AAA": {"ts_IC": 0.04, "t_stat": 3.5, **net},  # good
        "BBB": {"ts_IC": 0.09, "t_stat": 6.0, **net},  # good, best
        "CCC": {"ts_IC": 0.30, "t_stat": 1.0, **net},  # high IC, t too small
        "DDD": {"ts_IC": 0.01, "t_stat": 20.0, **net},  # large t, IC too small
        "EEE": {"ts_IC": -0.05, "t_stat": -4.0, **net},
        "FFF": {"ts_IC": 0.02, "t_stat": 3.0, "net_spread_bps": 0.0},  # exactly at every threshold: good
    }
    for k in range(4):
        symbols[f"Z{k}"] = dict(BAD_SYM)
    ev = TargetEvaluation("fwd_ret_5m", 1, cs=_cs(0.03, 5.0), symbols=symbols)
    d = route_target(ev, RoutingThresholds())
    assert d["winner_symbols"] == ["BBB", "AAA", "FFF"]
    assert d["route"] == "BOTH" and d["frac_symbols_good"] == pytest.approx(0.3)
    assert "suspicious" not in d["reason"]
    expected_sym_mean = np.mean([skill01(m["ts_IC"]) for m in symbols.values()])
    assert d["skill01_sym_mean"] == pytest.approx(expected_sym_mean)
    parse_routing({"fwd_ret_5m": d})


def test_suspicious_symbols_are_excluded_and_named_whatever_their_t_stat():
    th = RoutingThresholds()
    net = {"net_spread_bps": 1.0}
    symbols = {f"G{i}": {"ts_IC": 0.08 + 0.01 * i, "t_stat": 5.0, **net} for i in range(3)}
    symbols |= {f"Z{i}": dict(BAD_SYM) for i in range(5)}
    symbols["LEAK"] = {"ts_IC": 0.85, "t_stat": 12.0, **net}
    symbols["LOUD"] = {"ts_IC": 0.60, "t_stat": 400.0, **net}  # the t-stat does not make it believable
    symbols["NEG"] = {"ts_IC": -0.50, "t_stat": -30.0, **net}
    symbols["REAL"] = {"ts_IC": 0.30, "t_stat": 9.0, **net}  # strong but under the bound: good, and best
    d = route_target(TargetEvaluation("t", 1, cs=_cs(0.03, 5.0), symbols=symbols), th)
    assert d["winner_symbols"] == ["REAL", "G2", "G1", "G0"]
    assert d["suspicious_symbols"] == ["LEAK", "LOUD", "NEG"]
    assert d["frac_symbols_good"] == pytest.approx(4 / 12) and d["n_symbols_evaluated"] == 12
    assert "suspicious symbols excluded ['LEAK', 'LOUD', 'NEG'] (|ts_IC| > 0.35, LEAK: 0.850)" in d["reason"]
    assert "4/12" in d["reason"] and d["rule"] == "cs_and_some_symbols"
    parse_routing({"t": d})
    # with only suspicious symbols "good", a target without CS skill has no skill at all
    only_leaks = {"LEAK": symbols["LEAK"], **{f"Z{i}": dict(BAD_SYM) for i in range(3)}}
    d = route_target(TargetEvaluation("t", 1, cs=_cs(0.001, 0.5), symbols=only_leaks), th)
    assert (d["route"], d["rule"], d["winner_symbols"]) == ("BLOCKED", "no_skill", [])
    assert "LEAK" in d["reason"]


def test_no_good_symbol_never_counts_as_some_symbols():
    # frac_some = 0 makes "0 of 10 good" reach the "some symbols" share; no good symbol must still mean none
    th = RoutingThresholds(frac_some=0.0)
    d = route_target(_evaluation(0.001, 0.5, 0, 10), th)
    assert (d["route"], d["rule"]) == ("BLOCKED", "no_skill")
    d = route_target(_evaluation(0.05, 6.0, 0, 10), th)
    assert (d["route"], d["rule"]) == ("CROSS_SECTIONAL", "cs_only")
    # one good symbol is enough then
    assert route_target(_evaluation(0.001, 0.5, 1, 10), th)["rule"] == "symbols_only"
    assert route_target(_evaluation(0.05, 6.0, 1, 10), th)["rule"] == "cs_and_some_symbols"


def test_routing_thresholds_are_configurable_and_validated():
    ev = _evaluation(0.008, 6.0, 0, 10)
    assert route_target(ev, RoutingThresholds())["route"] == "BLOCKED"
    assert route_target(ev, RoutingThresholds(cs_ic_min=0.005))["route"] == "CROSS_SECTIONAL"
    assert "min 0.005" in route_target(ev, RoutingThresholds(cs_ic_min=0.005))["reason"]
    with pytest.raises(ValueError, match="frac_some 0.6 must not exceed frac_most 0.5"):
        RoutingThresholds(frac_some=0.6, frac_most=0.5)
    with pytest.raises(ValueError, match="were removed: a leak has a huge IC and a huge t together"):
        RoutingThresholds.model_validate({"suspicious_skill01": 0.9})
    with pytest.raises(ValueError, match="extra"):
        RoutingThresholds.model_validate({"cs_ic_mn": 0.02})  # a typo is an error, not a silent default


def test_routing_without_symbols():
    d = route_target(TargetEvaluation("t", 1, _cs(0.03, 5.0)), RoutingThresholds())
    assert d["route"] == "CROSS_SECTIONAL" and d["winner_symbols"] == [] and d["skill01_sym_mean"] is None
    parse_routing({"t": d})
    with pytest.raises(KeyError, match="net_spread_bps"):
        route_target(TargetEvaluation("t", 1, {"mean_IC": 0.03, "t_stat": 5.0}), RoutingThresholds())


# --- 8. ranking end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluations(panel) -> dict[str, TargetEvaluation]:
    features = list(ALL_FEATURES)
    return {
        spec.name(5): evaluate_target(
            panel,
            features,
            spec.name(5),
            spec.horizon_bars,
            spec.reach_bars,
            RANKING_FAMILIES,
            {"LightGBM": FAST_LGBM},
            CVConfig(),
            42,
            evaluation=VENUE,
            ret=spec.base_name(5),
        )
        for spec in (PLANTED, GAP, WICK, NOISE)
    }


def test_evaluation_averages_the_families(evaluations):
    for ev in evaluations.values():
        assert list(ev.cs_by_family) == RANKING_FAMILIES
        lgbm, ridge = ev.cs_by_family["LightGBM"], ev.cs_by_family["Ridge"]
        assert lgbm != ridge  # two different models, really fitted
        assert set(ev.cs) == set(lgbm) == set(ridge)
        for k, v in ev.cs.items():
            if k == "breakeven_cost_bps":  # the mean spread over the mean turnover, not a mean of ratios
                assert v == pytest.approx(ev.cs["spread_bps"] / (2 * ev.cs["turnover_frac"]))
            else:
                assert v == pytest.approx((lgbm[k] + ridge[k]) / 2), (ev.target, k)
        assert ev.cs["cost_bps"] == VENUE.cost_bps and {"net_spread_bps", "ic_coverage"} <= set(ev.cs)
        assert list(ev.importance) == RANKING_FAMILIES
        for imp in ev.importance.values():
            assert set(imp) == set(ALL_FEATURES) and sum(imp.values()) == pytest.approx(1.0)
        assert set(ev.symbols) == set(ev.symbol_importance) == set(make_market(SMALL)["symbol"].unique())
        for imp in ev.symbol_importance.values():
            assert set(imp) == set(ALL_FEATURES) and sum(imp.values()) == pytest.approx(1.0)
        row = ev.to_row()
        assert row["cs_IC_LightGBM"] == lgbm["mean_IC"] and row["cs_IC_Ridge"] == ridge["mean_IC"]
        assert row["cs_mean_IC"] == ev.cs["mean_IC"]


def test_planted_target_is_found_and_routed_cross_sectional(evaluations):
    ev = evaluations[PLANTED.name(5)]
    truth = documented_ics(SMALL)["cs_ic"]
    assert 0.5 * truth < ev.cs["mean_IC"] < truth + 0.01  # out of sample: at most the planted IC, most of it
    assert ev.cs["t_stat"] > 3.0
    for family, m in ev.cs_by_family.items():  # each family finds it on its own
        assert m["mean_IC"] > 0.4 * truth and m["t_stat"] > 3.0, (family, m)
    assert len(ev.symbols) == SMALL.n_symbols
    d = route_target(ev, RoutingThresholds())
    assert d["route"] in ("CROSS_SECTIONAL", "BOTH"), d["reason"]
    row = ev.to_row()
    assert row["skill01_cs"] == pytest.approx(skill01(ev.cs["mean_IC"]))
    assert row["n_symbols_evaluated"] == SMALL.n_symbols


def test_gap_target_is_routed_to_both_views_with_gap_symbols_winning(evaluations):
    ev = evaluations[GAP.name(5)]
    gap_symbols = planted_symbols(SMALL)["gap"]
    assert ev.cs["mean_IC"] > RoutingThresholds().cs_ic_min and ev.cs["t_stat"] > 3.0
    d = route_target(ev, RoutingThresholds())
    assert d["route"] == "BOTH", d["reason"]
    assert d["winner_symbols"] and set(d["winner_symbols"]) <= set(gap_symbols), (d["winner_symbols"], gap_symbols)
    carriers = np.mean([ev.symbols[s]["ts_IC"] for s in gap_symbols])
    others = np.mean([m["ts_IC"] for s, m in ev.symbols.items() if s not in gap_symbols])
    assert carriers > others + 0.03, (carriers, others)
    parse_routing({ev.target: d})


def test_wick_target_is_symbol_specific_in_the_wick_symbols(evaluations):
    ev = evaluations[WICK.name(5)]
    wick_symbols = planted_symbols(SMALL)["wick"]
    assert abs(ev.cs["mean_IC"]) < IC_TOL  # no pooled signal: the signs cancel across the universe
    d = route_target(ev, RoutingThresholds())
    assert (d["route"], d["rule"]) == ("SYMBOL_SPECIFIC", "symbols_only"), d["reason"]
    # only symbols that carry the effect can win, and most of them do, whatever their sign
    assert set(d["winner_symbols"]) <= set(wick_symbols), (d["winner_symbols"], wick_symbols)
    assert len(d["winner_symbols"]) >= len(wick_symbols) // 2
    assert {wick_symbols[s] for s in d["winner_symbols"]} == {-1, 1}
    # a per-symbol model learns the relation of its own symbol: the wick observable matters there
    for s in d["winner_symbols"]:
        imp = ev.symbol_importance[s]
        assert imp["wick_log_ratio"] == max(imp.values()), (s, sorted(imp, key=imp.get, reverse=True)[:3])
    parse_routing({ev.target: d})


def test_noise_target_is_blocked(evaluations):
    ev = evaluations[NOISE.name(5)]
    assert abs(ev.cs["mean_IC"]) < IC_TOL
    d = route_target(ev, RoutingThresholds())
    assert (d["route"], d["rule"]) == ("BLOCKED", "no_skill"), d["reason"]
    parse_routing({ev.target: d})


def test_evaluate_target_is_reproducible_and_takes_flat_params_for_one_family(panel, evaluations):
    reference = evaluations[PLANTED.name(5)]
    # a single family name and a flat parameter dict: the same LightGBM fit as inside the two-family ranking
    again = evaluate_target(
        panel, list(ALL_FEATURES), "fwd_ret_5m", 1, 1, "LightGBM", FAST_LGBM, CVConfig(), 42, per_symbol=False,
        evaluation=VENUE,
    )  # fmt: skip
    assert list(again.cs_by_family) == ["LightGBM"]
    assert again.cs == again.cs_by_family["LightGBM"] == reference.cs_by_family["LightGBM"]
    assert again.importance == {"LightGBM": reference.importance["LightGBM"]}
    assert again.symbols == {} and again.symbol_importance == {}
    # the overrides do reach the family: the default number of rounds gives another model
    default = evaluate_target(
        panel, list(ALL_FEATURES), "fwd_ret_5m", 1, 1, ["LightGBM"], {}, CVConfig(), 42, per_symbol=False
    )
    assert default.cs != again.cs


def test_oos_predictions_score_each_validation_block(panel, evaluations):
    features, target = list(ALL_FEATURES), PLANTED.name(5)
    end = f"{target}__end_ts"
    rows = training_rows(panel, features, target)
    assert rows.select(*features, target).null_count().sum_horizontal().item() == 0
    assert rows.height < panel.height  # warm-up rows and the last bar of each symbol are dropped
    folds = walk_forward_folds(rows["ts"], CVConfig(), PLANTED.reach_bars)
    oos = oos_predictions(rows, features, target, "Ridge", {}, folds, 42)
    assert isinstance(oos, OOS)
    pred = oos.predictions
    assert pred.columns == ["ts", "symbol", "y", "ret", "score", "fold"]
    assert sorted(pred["fold"].unique().to_list()) == [f.index for f in folds]
    for f in folds:
        part = pred.filter(pl.col("fold") == f.index)
        assert (
            part.sort("ts", "symbol")
            .select("ts", "symbol")
            .equals(f.validation(rows).sort("ts", "symbol").select("ts", "symbol"))
        )
        assert f.train(rows, end)[end].max() < part["ts"].min()  # purged: no training target reaches validation
    assert pred["score"].is_finite().all()
    # what evaluate_target reports for the family is exactly this
    assert cross_sectional_metrics(pred, horizon_bars=1, cfg=VENUE) == evaluations[target].cs_by_family["Ridge"]
    assert oos.importance == evaluations[target].importance["Ridge"]
    empty = oos_predictions(rows, features, target, "Ridge", {}, [], 42)
    assert empty.predictions.is_empty() and empty.predictions.columns == pred.columns and empty.importance == {}
    tiny = [Fold(0, rows["ts"].unique().sort()[2].replace(tzinfo=None), folds[0].val_start, folds[0].val_end)]
    assert oos_predictions(rows, features, target, "Ridge", {}, tiny, 42).predictions.is_empty()  # < 50 rows


def test_models_fit_before_the_holdout_report_it_and_may_refit_on_everything(panel, tmp_path):
    from contracts.model_meta import load_model_meta
    from ml.cv import make_holdout
    from ml.training import ModelJob, train_and_write

    holdout = make_holdout(panel["ts"], HoldoutConfig())
    features = ["volume_z_20", "ret_1", "rvol_20"]
    job = ModelJob("fwd_ret_5m", "CROSS_SECTIONAL", "Ridge", None, 1, 1, tuple(sorted(features)), "fwd_ret_5m", True)
    kwargs = dict(
        interval_minutes=5.0, params={}, cv=CVConfig(), holdout=holdout, evaluation=VENUE, seed=1,
        provenance={"run_id": "t"},
    )  # fmt: skip
    pre = train_and_write(panel, features, job, tmp_path / "pre", **kwargs)
    refit = train_and_write(panel, features, job, tmp_path / "all", refit_on_all_data=True, **kwargs)
    assert (pre.fit_scope, refit.fit_scope) == ("pre_holdout", "all_data") and pre.research_only
    assert pre.metrics.model_dump() == refit.metrics.model_dump()  # the holdout scored the pre-holdout fit
    extra = pre.metrics.model_extra
    assert extra["evaluated_on"] == "holdout" and extra["n_timestamps"] <= holdout.n_timestamps
    assert extra["cv_mean_IC"] != pre.metrics.mean_IC and "cv_note" in extra
    assert refit.n_rows_train > pre.n_rows_train and refit.model_checksum != pre.model_checksum
    assert load_model_meta(tmp_path / "pre" / "model_meta.json").fit_scope == "pre_holdout"


# --- 9. LightGBM family ----------------------------------------------------------------------------------


def _regression_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random(size=(n, 4)) < 0.02] = np.nan
    y = 0.8 * np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) ** 2 + 0.3 * rng.normal(size=n)
    return X, y


def test_lightgbm_fit_save_load_predict_identical(tmp_path):
    fam = get_family("lightgbm")
    assert fam.name == "LightGBM" and fam.extension == ".txt"
    X, y = _regression_data()
    names = ["f0", "f1", "f2", "f3"]
    model = fam.fit(X, y, names, fam.params(FAST_LGBM), seed=42)
    pred = fam.predict(model, X)
    assert pred.shape == (len(y),) and np.isfinite(pred).all()
    assert np.corrcoef(pred, y)[0, 1] > 0.5  # it learned something
    path = tmp_path / "model.txt"
    fam.save(model, path)
    assert path.exists() and path.stat().st_size > 0
    loaded = get_family("LIGHTGBM").load(path)
    assert np.array_equal(fam.predict(loaded, X), pred)
    assert loaded.feature_name() == names
    imp = fam.importance(model, names)
    assert set(imp) == set(names) and sum(imp.values()) == pytest.approx(1.0)
    assert imp["f0"] > imp["f3"]


def test_lightgbm_is_deterministic_per_seed():
    fam = get_family("LightGBM")
    X, y = _regression_data(seed=1)
    p = fam.params(FAST_LGBM)
    a = fam.predict(fam.fit(X, y, ["a", "b", "c", "d"], p, seed=7), X)
    b = fam.predict(fam.fit(X, y, ["a", "b", "c", "d"], p, seed=7), X)
    assert np.array_equal(a, b)
    assert p["num_boost_round"] == 30 and fam.params()["num_boost_round"] != 30


def test_get_family_lookup():
    assert get_family("lightgbm").name == get_family(" LightGBM ").name == "LightGBM"
    with pytest.raises(KeyError, match="nope"):
        get_family("nope")


# --- 10. config ------------------------------------------------------------------------------------------


def test_load_demo_config():
    from live.config import load_engine_config

    cfg = load_run_config(REPO / "configs" / "demo.yaml")
    assert cfg.run_id == "demo" and cfg.data_source == "synthetic" and cfg.seed == 42
    assert cfg.families == ("LightGBM", "XGBoost", "CatBoost", "Ridge", "ElasticNet", "MLP")
    assert cfg.ranking_families == ("ElasticNet", "LightGBM")
    assert cfg.symbol_specific_families == cfg.ss_families == ("LightGBM", "Ridge")
    assert cfg.ranking_params == {"LightGBM": {"num_boost_round": 100, "num_leaves": 4, "min_data_in_leaf": 1000}}
    assert cfg.symbol_ranking_params == {"LightGBM": {"num_boost_round": 60, "num_leaves": 4, "min_data_in_leaf": 100}}
    assert cfg.selection == SelectionConfig(top_k=20, max_abs_corr=0.9)
    assert cfg.target_names() == [
        "fwd_ret_5m_from_open",
        "fwd_ret_5m_delay5m",
        "fwd_ret_5m_delay10m",
        "fwd_ret_15m_delay15m",
        "fwd_ret_30m_delay30m",
        "cs_percentile_fwd_ret_5m_from_open",
        "fwd_ret_5m",
    ]
    # the ranking target trains a ranker on the features and an LSTM on raw OHLCV windows, with a ranking loss
    assert cfg.families_for("cs_percentile_fwd_ret_5m_from_open") == ("LightGBMRanker", "LSTM")
    assert cfg.families_for("fwd_ret_5m") == cfg.families
    assert cfg.family_params["LSTM"]["loss"] == "listwise_softmax"
    assert cfg.target_spec("fwd_ret_15m_delay15m") == TargetSpec(horizon_bars=3, delay_bars=3)
    assert cfg.target_spec("fwd_ret_5m_from_open") == TargetSpec(horizon_bars=1, entry="next_open")
    # only the close-to-close target at delay 0 is research-only: no order fills at the close the features see
    assert [n for n in cfg.target_names() if not cfg.target_spec(n).tradable] == ["fwd_ret_5m"]
    assert cfg.interval_minutes is None and cfg.bar_interval_minutes == 5.0  # the synthetic market's
    assert cfg.market == SyntheticMarketConfig(n_symbols=24, n_bars=3042, live_bars=312, interval_minutes=5, seed=7)
    assert load_engine_config(REPO / "configs" / "demo.yaml").sizing.weight_per_z_frac == 0.3  # its live: section
    assert cfg.routing.cs_ic_min == 0.01 and cfg.cv.n_folds == 3
    assert cfg.holdout == HoldoutConfig(fraction=0.2) and cfg.evaluation.cost_bps == 0.25
    # the two noise targets: nothing is planted in them
    for name in ("fwd_ret_15m_delay15m", "fwd_ret_30m_delay30m"):
        spec = cfg.target_spec(name)
        assert set(documented_ics(cfg.market, spec.horizon_bars, spec.delay_bars).values()) == {0.0}
    assert cfg.digest() == load_run_config(REPO / "configs" / "demo.yaml").digest()
    with pytest.raises(KeyError):
        cfg.target_spec("fwd_ret_1h")


def test_targets_from_the_next_open_are_tradable_and_read_one_bar_further(bars):
    spec = TargetSpec(horizon_bars=2, delay_bars=1, entry="next_open")
    assert spec.name(5) == "fwd_ret_10m_delay5m_from_open" and spec.reach_bars == 4 and spec.tradable
    assert TargetSpec.from_name("fwd_ret_10m_delay5m_from_open", 5) == spec
    assert not TargetSpec(horizon_bars=1).tradable and TargetSpec(horizon_bars=1, delay_bars=1).tradable
    out = add_targets(bars.select("ts", "symbol"), bars, [spec], 5).sort("symbol", "ts")
    sym = bars.filter(pl.col("symbol") == "SYM003").sort("ts")
    mine = out.filter(pl.col("symbol") == "SYM003")
    t = 100
    assert mine[spec.name(5)][t] == pytest.approx(sym["open"][t + 4] / sym["open"][t + 2] - 1.0, rel=1e-12)
    assert mine[f"{spec.name(5)}__end_ts"][t] == sym["ts"][t + 4]
    assert mine[f"{spec.name(5)}__end_ts"].null_count() == mine[spec.name(5)].null_count() == 4


def test_open_to_open_truth_adds_the_two_gaps_to_the_variance():
    cfg = SyntheticMarketConfig()
    close = documented_ics(cfg, 1, 0)["cs_ic"]
    from_open = documented_ics(cfg, 1, 0, entry="next_open")["cs_ic"]
    assert from_open == pytest.approx(close / math.sqrt(1 + 2 * 0.25**2))


def test_ranking_needs_two_families_for_a_consensus():
    with pytest.raises(ValueError, match="at least two families"):
        RunConfig(ranking_families=("LightGBM",))
    assert len(RunConfig().ranking_families) >= 2


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("cv: {n_folds: 0}\n", "cv.n_folds"),
        ("bogus_key: 1\n", "bogus_key"),
        ("ranking_family: LightGBM\n", "ranking_family"),  # replaced by ranking_families
        ("routing: {frac_most: 2}\n", "routing.frac_most"),
        ("targets: [{horizon_bars: 0}]\n", "targets.0.horizon_bars"),
        ("targets: [{kind: zscore, horizon_bars: 1}]\n", "targets.0.kind"),
        ("market: {n_symbols: 1}\n", "market.n_symbols"),
        ("selection: {top_k: 0}\n", "selection.top_k"),
        ("data_source: landing\n", "interval_minutes"),  # landing data has no market to take it from
        ("interval_minutes: 15\n", "interval_minutes"),  # disagrees with the synthetic market's 5
    ],
)
def test_bad_config_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text("run_id: x\n" + text, encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_run_config(path)
    assert str(path) in str(exc.value) and field in str(exc.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("families: [LightGBM, nope]\n", "families"),
        ("ranking_families: [nope]\n", "ranking_families"),
        ("symbol_specific_families: [Ridge, nope]\n", "symbol_specific_families"),
        ("ranking_params: {nope: {num_boost_round: 5}}\n", "ranking_params"),
        ("family_params: {nope: {}}\n", "family_params"),
    ],
)
def test_bad_family_in_config_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad_family.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_run_config(path)
    msg = str(exc.value)
    # load_run_config documents "errors name the file and the field"
    assert f"{path}: {field}: " in msg and "'nope'" in msg


def test_config_family_names_are_canonical_and_interval_follows_the_source():
    cfg = RunConfig(
        families=("lightgbm", "RIDGE"),
        ranking_families=("ridge", "LightGBM"),
        symbol_specific_families=("catboost",),
        ranking_params={"lightGBM": {"num_boost_round": 5}},
        family_params={"xgboost": {"n_estimators": 10}},
    )
    assert cfg.families == ("LightGBM", "Ridge") and cfg.ranking_families == ("Ridge", "LightGBM")
    assert cfg.ss_families == ("CatBoost",)
    assert cfg.ranking_params == {"LightGBM": {"num_boost_round": 5}}
    assert cfg.family_params == {"XGBoost": {"n_estimators": 10}}
    assert RunConfig().ss_families == RunConfig().families  # symbol-specific families default to families
    landing = RunConfig(data_source="landing", interval_minutes=1440)
    assert landing.bar_interval_minutes == 1440.0
    assert landing.target_names() == ["fwd_ret_1d", "fwd_ret_3d_delay3d"]
    assert RunConfig(interval_minutes=5).bar_interval_minutes == 5.0


def test_unreadable_config_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("cv: [1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.yaml"):
        load_run_config(path)
    with pytest.raises(ValueError, match="missing.yaml"):
        load_run_config(tmp_path / "missing.yaml")


def test_config_digest_is_stable_and_sensitive():
    d = RunConfig().digest()
    assert d == RunConfig().digest()
    assert len(d) == 64 and all(c in "0123456789abcdef" for c in d)
    assert RunConfig(routing=RoutingThresholds(cs_ic_min=0.02)).digest() != d
    assert RunConfig(cv=CVConfig(n_folds=4)).digest() != d
    assert RunConfig(families=("lightgbm",)).digest() == d  # family spelling is canonicalised first
    assert RunConfig(ranking_families=("LightGBM", "Ridge")).digest() != d
    assert RunConfig(ranking_params={"LightGBM": {"num_boost_round": 61}}).digest() != d


# --- 11. lake --------------------------------------------------------------------------------------------


def test_lake_round_trip_and_day_rewrite(tmp_path):
    frame = make_market(SyntheticMarketConfig(n_symbols=3, n_bars=78 * 3))
    directory = table_dir(tmp_path, "bars", 5)
    assert directory == tmp_path / "lake" / "bars" / "interval=5"
    written = write_partitions(frame.sample(fraction=1.0, shuffle=True, seed=1), directory)
    assert written == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert partitions(directory) == written
    back = read_table(directory)
    assert back.schema == frame.schema
    assert back.equals(frame.sort("symbol", "ts"))
    assert read_table(directory, since="2024-01-03").equals(
        frame.filter(pl.col("ts").dt.date() >= date(2024, 1, 3)).sort("symbol", "ts")
    )

    other_files = {d: (directory / f"date={d}" / "part-0.parquet").read_bytes() for d in ("2024-01-02", "2024-01-04")}
    day = pl.col("ts").dt.date() == date(2024, 1, 3)
    edited_day = frame.filter(day).with_columns(pl.col("close") * 2.0, pl.col("high") * 2.0)
    assert write_partitions(edited_day, directory) == ["2024-01-03"]
    assert partitions(directory) == written
    for d, content in other_files.items():
        assert (directory / f"date={d}" / "part-0.parquet").read_bytes() == content
    after = read_table(directory)
    expected = pl.concat([frame.filter(~day), edited_day]).sort("symbol", "ts")
    assert after.equals(expected)
    assert after.height == frame.height


def test_read_empty_table_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nothing")
