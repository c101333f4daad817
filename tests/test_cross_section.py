"""Tests of ``ml.cross_section`` (the timestamps × symbols kernels behind the cross-sectional features) and of the
chunked evaluation in ``ml.features.build_features``: polars' own per-timestamp window expressions are the oracle.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import ml.cross_section as cross_section
import ml.features as features
from ml.cross_section import Panel, demean, rank_pct
from ml.features import ALL_FEATURES, FEATURES_BY_NAME, build_features
from ml.synthetic import SyntheticMarketConfig, make_market

T0 = datetime(2024, 1, 2, tzinfo=UTC)


def _ragged_panel(seed: int, n_symbols: int = 9, n_ts: int = 40) -> pl.DataFrame:
    """Symbols that list late, delist early and skip bars; values with nulls, ties, +-inf and -0.0."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_symbols):
        first, last = int(rng.integers(0, 10)), int(rng.integers(30, n_ts + 1))
        for t in range(first, last):
            if rng.random() < 0.15:
                continue  # a missing bar
            u = rng.random()
            value = (
                None if u < 0.1 else
                float(rng.integers(-2, 3)) if u < 0.4 else  # ties
                float("inf") if u < 0.43 else
                float("-inf") if u < 0.46 else
                -0.0 if u < 0.5 else
                float(rng.normal())
            )  # fmt: skip
            rows.append((T0 + timedelta(minutes=5 * t), f"S{s:02d}", value))
    return pl.DataFrame(
        rows, schema={"ts": pl.Datetime("us", "UTC"), "symbol": pl.String, "x": pl.Float64}, orient="row"
    )


def _rank_over_ts(x: pl.Expr) -> pl.Expr:
    """Polars' window expression for ``rank_pct``: the definition the kernel must reproduce."""
    return (x.rank("average").over("ts") - 1) / (x.count().over("ts") - 1).clip(lower_bound=1)


def _demean_over_ts(x: pl.Expr) -> pl.Expr:
    """Polars' window expression for ``demean``."""
    return x - x.mean().over("ts")


def _oracle(df: pl.DataFrame) -> pl.DataFrame:
    """Both oracles on column ``x`` (NaN, e.g. inf - inf, is null)."""
    return df.with_columns(
        _rank_over_ts(pl.col("x")).alias("rank"), _demean_over_ts(pl.col("x")).fill_nan(None).alias("demean")
    )


def _assert_equal_columns(got: pl.Series, want: pl.Series) -> None:
    assert got.is_null().to_list() == want.is_null().to_list()
    a, b = got.drop_nulls().to_numpy(), want.drop_nulls().to_numpy()
    both_nan = np.isnan(a) & np.isnan(b)
    assert np.array_equal(a[~both_nan], b[~both_nan])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block_cells", [7, 1 << 16])
def test_kernels_match_polars_on_a_ragged_panel(monkeypatch, seed, block_cells):
    monkeypatch.setattr(cross_section, "BLOCK_CELLS", block_cells)  # 7: one timestamp per kernel call
    df = _ragged_panel(seed).sort("symbol", "ts")
    panel = Panel.of(df["ts"], df["symbol"])
    assert panel.by_ts is not None  # not the full grid
    want = _oracle(df)
    _assert_equal_columns(panel.apply(rank_pct, df["x"], "rank"), want["rank"])
    got = panel.apply(demean, df["x"], "demean")
    finite = want["demean"].is_finite().fill_null(False)
    assert got.is_null().to_list() == want["demean"].is_null().to_list()
    assert np.allclose(got.filter(finite).to_numpy(), want["demean"].filter(finite).to_numpy(), atol=1e-12)


def test_the_full_grid_needs_no_scatter_and_ranks_the_same():
    bars = make_market(SyntheticMarketConfig(n_symbols=7, n_bars=300, seed=3))
    df = bars.sort("symbol", "ts").select("ts", "symbol", (pl.col("close").pct_change().over("symbol")).alias("x"))
    panel = Panel.of(df["ts"], df["symbol"])
    assert panel.by_ts is None and (panel.n_ts, panel.n_symbols) == (300, 7)
    _assert_equal_columns(panel.apply(rank_pct, df["x"], "rank"), _oracle(df)["rank"])


def test_rank_pct_averages_ties_and_keeps_nan():
    m = np.array([[3.0, 1.0, 3.0, np.nan, 2.0], [np.nan, np.nan, np.nan, np.nan, np.nan]])
    got = rank_pct(m, np.array([5, 5]))
    # ranks 1, 2, 3.5, 3.5 among the four values present, over (4 values - 1): the top value ranks 1
    assert np.allclose(got[0], [2.5 / 3, 0.0, 2.5 / 3, np.nan, 1 / 3], equal_nan=True)
    assert np.isnan(got[1]).all()


def test_repeated_symbol_and_timestamp_is_an_error_naming_them():
    df = pl.DataFrame(
        {"ts": [T0, T0, T0], "symbol": ["A", "B", "B"], "x": [1.0, 2.0, 3.0]},
        schema={"ts": pl.Datetime("us", "UTC"), "symbol": pl.String, "x": pl.Float64},
    )
    with pytest.raises(ValueError, match=r"repeated \(symbol, ts\).*'B'"):
        Panel.of(df["ts"], df["symbol"])


def test_no_bars_give_no_features():
    empty = make_market(SyntheticMarketConfig(n_symbols=2, n_bars=50, seed=1)).clear()
    out = build_features(empty)
    assert out.height == 0 and out.columns == ["ts", "symbol", "close", *ALL_FEATURES]


def test_chunked_evaluation_equals_one_chunk_bit_for_bit(monkeypatch):
    bars = make_market(SyntheticMarketConfig(n_symbols=7, n_bars=400, seed=9))
    whole = build_features(bars)
    monkeypatch.setattr(features, "_CHUNK_ROWS", 900)  # two symbols a chunk; a 400-bar symbol never splits
    assert len(features._symbol_chunks(bars.sort("symbol")["symbol"], 900)) == 4
    chunked = build_features(bars)
    assert chunked.equals(whole)
    monkeypatch.setattr(features, "_CHUNK_ROWS", 100)  # each symbol alone (longer than a chunk)
    assert build_features(bars).equals(whole)


def test_cross_sectional_features_on_a_ragged_panel_match_polars():
    """Through build_features: symbols missing bars at some timestamps are ranked among those present."""
    bars = make_market(SyntheticMarketConfig(n_symbols=8, n_bars=300, seed=4))
    rng = np.random.default_rng(0)
    ragged = bars.filter(pl.Series(rng.random(bars.height) > 0.2))
    out = build_features(ragged)
    for name in [n for n in ALL_FEATURES if FEATURES_BY_NAME[n].cross_sectional]:
        source = pl.col(FEATURES_BY_NAME[name].sources[0])
        oracle = _rank_over_ts(source) if name.startswith("cs_rank_") else _demean_over_ts(source)
        want = out.select(oracle.alias(name))[name]
        assert out[name].is_null().to_list() == want.is_null().to_list(), name
        assert np.allclose(out[name].drop_nulls().to_numpy(), want.drop_nulls().to_numpy(), rtol=0, atol=1e-12), name


def test_bars_in_any_row_order_give_the_same_features():
    """build_features sorts what is out of order and skips the sort of sorted bars: same result either way."""
    bars = make_market(SyntheticMarketConfig(n_symbols=5, n_bars=300, seed=2))
    in_order = build_features(bars)
    assert build_features(bars.sample(fraction=1.0, shuffle=True, seed=1)).equals(in_order)
    assert build_features(bars.lazy()).equals(in_order)


def test_a_sparse_panel_costs_memory_by_its_rows_not_by_timestamps_times_symbols():
    """400 symbols that never trade at the same time: a dense matrix would be 40,000 × 400 (128 MB)."""
    import tracemalloc

    n_symbols, n_bars = 400, 100
    ts = [T0 + timedelta(minutes=s * n_bars + i) for s in range(n_symbols) for i in range(n_bars)]
    df = pl.DataFrame(
        {
            "ts": ts,
            "symbol": [f"S{s:03d}" for s in range(n_symbols) for _ in range(n_bars)],
            "x": np.random.default_rng(0).normal(size=n_symbols * n_bars),
        },
        schema={"ts": pl.Datetime("us", "UTC"), "symbol": pl.String, "x": pl.Float64},
    )
    tracemalloc.start()
    panel = Panel.of(df["ts"], df["symbol"])
    ranks = panel.apply(rank_pct, df["x"], "rank")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (panel.n_ts, panel.n_symbols) == (40_000, 400)
    assert peak < 16_000_000, f"peak {peak / 1e6:.0f} MB"
    assert ranks.to_list() == [0.0] * df.height  # alone at its timestamp
