"""New data is an append: features for a new day use the earlier days' bars and equal a full recompute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ml.feature_store import update_features
from ml.lake import partitions, read_table, table_dir, write_partitions
from ml.synthetic import SyntheticMarketConfig, make_market


def _assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.height == b.height
    assert a.select("ts", "symbol").equals(b.select("ts", "symbol"))
    cols = [c for c in a.columns if c not in ("ts", "symbol")]
    x, y = a.select(cols).to_numpy(), b.select(cols).to_numpy()
    assert (np.isnan(x) == np.isnan(y)).all()
    ok = ~np.isnan(x)
    assert np.allclose(x[ok], y[ok], rtol=1e-9, atol=1e-9)


def test_appending_days_equals_a_full_recompute(tmp_path: Path) -> None:
    bars = make_market(SyntheticMarketConfig(n_symbols=6, n_bars=78 * 12, seed=4))
    days = sorted(bars["ts"].dt.date().unique().to_list())
    incremental, full = tmp_path / "inc", tmp_path / "full"

    write_partitions(bars.filter(pl.col("ts").dt.date() <= days[7]), table_dir(incremental, "bars", 5))
    first = update_features(incremental, 5)
    assert len(first["computed"]) == 8
    for day in days[8:]:  # one day at a time, as a live feed would arrive
        write_partitions(bars.filter(pl.col("ts").dt.date() == day), table_dir(incremental, "bars", 5))
        report = update_features(incremental, 5)
        assert report["computed"] == [str(day)]  # only the new day is computed
    assert update_features(incremental, 5)["computed"] == []  # nothing new, nothing computed

    write_partitions(bars, table_dir(full, "bars", 5))
    update_features(full, 5)
    _assert_same(read_table(table_dir(incremental, "features", 5)), read_table(table_dir(full, "features", 5)))
    assert partitions(table_dir(incremental, "features", 5)) == [str(d) for d in days]


def test_a_corrected_day_refreshes_the_days_whose_lookback_reaches_it(tmp_path: Path) -> None:
    bars = make_market(SyntheticMarketConfig(n_symbols=4, n_bars=78 * 6, seed=9))
    days = sorted(bars["ts"].dt.date().unique().to_list())
    write_partitions(bars, table_dir(tmp_path, "bars", 5))
    update_features(tmp_path, 5)
    fixed = bars.filter(pl.col("ts").dt.date() == days[2]).with_columns(pl.col("volume") * 2)
    write_partitions(fixed, table_dir(tmp_path, "bars", 5))
    report = update_features(tmp_path, 5)
    assert report["computed"][0] == str(days[2]) and str(days[3]) in report["computed"]
    assert str(days[0]) not in report["computed"]

    recomputed = tmp_path / "again"
    write_partitions(read_table(table_dir(tmp_path, "bars", 5)), table_dir(recomputed, "bars", 5))
    update_features(recomputed, 5)
    _assert_same(read_table(table_dir(tmp_path, "features", 5)), read_table(table_dir(recomputed, "features", 5)))
