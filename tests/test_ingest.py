"""Landing-zone ingestion (ml.ingest): schema, interval inference, de-dup, merge, all-or-nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ml.ingest import (
    IngestError,
    ingest_landing,
    landing_dir,
    ledger_path,
    read_landing_file,
    read_ledger,
    write_landing_csv,
    write_landing_parquet,
)
from ml.lake import partitions, read_table, table_dir
from ml.synthetic import SyntheticMarketConfig, make_market


@pytest.fixture(scope="module")
def daily() -> pl.DataFrame:
    return make_market(SyntheticMarketConfig(n_symbols=6, n_bars=300, interval_minutes=1440)).sort("symbol", "ts")


@pytest.fixture(scope="module")
def five_min() -> pl.DataFrame:
    # 78 five-minute bars per session: two trading days
    return make_market(SyntheticMarketConfig(n_symbols=3, n_bars=156, interval_minutes=5)).sort("symbol", "ts")


def snapshot(results: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under RESULTS/lake: bytes and mtime."""
    lake = results / "lake"
    return {str(p.relative_to(lake)): (p.read_bytes(), p.stat().st_mtime_ns) for p in lake.rglob("*") if p.is_file()}


def bar_files(results: Path) -> dict[str, tuple[bytes, int]]:
    return {k: v for k, v in snapshot(results).items() if k.startswith("bars/")}


def dates_of(df: pl.DataFrame) -> list[str]:
    return sorted(df["ts"].dt.date().cast(pl.String).unique().to_list())


# ------------------------------------------------------------------------------------------ (1) daily CSV


def test_daily_csv_ingests_one_partition_per_trading_day(tmp_path, daily):
    src = landing_dir(tmp_path) / "daily.csv"
    write_landing_csv(daily, src)
    assert src.read_text().splitlines()[1].startswith("2024-01-02T21:00:00Z,SYM000,")

    report = ingest_landing(tmp_path)

    directory = table_dir(tmp_path, "bars", 1440)
    assert directory == tmp_path / "lake" / "bars" / "interval=1440"
    assert report.files_ingested == ["daily.csv"] and report.files_skipped == []
    assert report.intervals == [1440] and report.file_intervals == {"daily.csv": 1440}
    assert report.rows_read == report.rows_after_dedup == report.rows_written == daily.height == 6 * 300
    assert report.partitions_written == {1440: dates_of(daily)}
    assert partitions(directory) == dates_of(daily) and len(partitions(directory)) == 300
    for d in partitions(directory):  # one file per trading day, six symbols each
        day = pl.read_parquet(directory / f"date={d}" / "part-0.parquet")
        assert day.height == 6 and date.fromisoformat(d).weekday() < 5
    assert_frame_equal(read_table(directory), daily)  # exact values, bar schema dtypes, sorted (symbol, ts)

    ledger = json.loads(ledger_path(tmp_path).read_text())
    entry = ledger["files"]["daily.csv"]
    assert entry["rows"] == 1800 and entry["interval_minutes"] == 1440 and len(entry["sha256"]) == 64


# ------------------------------------------------------------------------------------------ (2) 5-minute parquet


def test_five_minute_parquet_ingests_into_interval_5(tmp_path, five_min):
    write_landing_parquet(five_min, landing_dir(tmp_path) / "bars_5m.parquet")
    report = ingest_landing(tmp_path)
    assert report.intervals == [5] and report.file_intervals == {"bars_5m.parquet": 5}
    assert report.partitions_written == {5: dates_of(five_min)} and len(dates_of(five_min)) == 2
    assert_frame_equal(read_table(table_dir(tmp_path, "bars", 5)), five_min)
    assert not table_dir(tmp_path, "bars", 1440).exists()


def test_parquet_with_naive_or_other_zone_ts_is_taken_as_utc(tmp_path, five_min):
    landing_dir(tmp_path).mkdir(parents=True)
    five_min.with_columns(pl.col("ts").dt.replace_time_zone(None)).write_parquet(landing_dir(tmp_path) / "a.parquet")
    ny = five_min.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    ny.write_parquet(landing_dir(tmp_path) / "b.parquet")
    report = ingest_landing(tmp_path)
    assert report.rows_read == 2 * five_min.height and report.rows_after_dedup == five_min.height
    assert_frame_equal(read_table(table_dir(tmp_path, "bars", 5)), five_min)


# ------------------------------------------------------------------------------------------ (3) de-duplication


def test_duplicates_within_and_across_files_keep_the_last(tmp_path, daily):
    first = daily.filter(pl.col("symbol").is_in(["SYM000", "SYM001"]))
    # inside file a: the SYM000 rows repeated with volume + 1; the later (repeated) occurrence must win
    repeated = first.filter(pl.col("symbol") == "SYM000").with_columns(pl.col("volume") + 1)
    write_landing_csv(pl.concat([first, repeated]), landing_dir(tmp_path) / "a_first.csv")
    # file b (later by name): SYM001's first 50 days with volume + 2 — they must win over file a
    later = first.filter(pl.col("symbol") == "SYM001").head(50).with_columns(pl.col("volume") + 2)
    write_landing_csv(later, landing_dir(tmp_path) / "b_second.csv")

    report = ingest_landing(tmp_path)

    assert report.files_ingested == ["a_first.csv", "b_second.csv"]
    assert report.rows_read == first.height + repeated.height + later.height
    assert report.rows_after_dedup == first.height == 600
    got = read_table(table_dir(tmp_path, "bars", 1440))
    expected = first.with_columns(
        pl.when(pl.col("symbol") == "SYM000")
        .then(pl.col("volume") + 1)
        .when((pl.col("symbol") == "SYM001") & (pl.col("ts") <= later["ts"].max()))
        .then(pl.col("volume") + 2)
        .otherwise(pl.col("volume"))
    )
    assert_frame_equal(got, expected)


# ------------------------------------------------------------------------------ (4) bad values: nothing written


def _corrupt(df: pl.DataFrame, kind: str, row: int) -> tuple[pl.DataFrame, str]:
    """``df`` with one bad value at data row ``row``; returns it and the column the error must name."""
    if kind == "negative_close":
        # close below zero: low must stay <= close for the close check to be the one that fires
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(-1.0).otherwise(pl.col("close")).alias("close")
        ), "close"
    if kind == "text_volume":
        vol = pl.col("volume").cast(pl.String)
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(pl.lit("lots")).otherwise(vol).alias("volume")
        ), "volume"
    if kind == "high_below_low":
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == row).then(pl.col("low") * 0.9).otherwise(pl.col("high")).alias("high")
        ), "high"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["negative_close", "text_volume", "high_below_low"])
def test_bad_csv_value_names_file_line_and_column_and_writes_nothing(tmp_path, daily, kind):
    part1, part2 = daily.filter(pl.col("symbol") <= "SYM002"), daily.filter(pl.col("symbol") > "SYM002")
    write_landing_csv(part1, landing_dir(tmp_path) / "001_good.csv")
    ingest_landing(tmp_path)  # a lake and a ledger already exist
    before = snapshot(tmp_path)

    row = 37
    bad, column = _corrupt(part2.head(100), kind, row)
    write_landing_csv(part2.tail(100), landing_dir(tmp_path) / "002_good.csv")  # good file in the same batch
    write_landing_csv(bad, landing_dir(tmp_path) / "003_bad.csv")
    with pytest.raises(IngestError) as info:
        ingest_landing(tmp_path)

    msg = str(info.value)
    assert "003_bad.csv" in msg and f"line {row + 2}" in msg and f"data row {row}" in msg
    assert f"column '{column}'" in msg and "nothing was ingested" in msg
    assert "002_good.csv" not in msg and len(info.value.problems) == 1
    assert isinstance(info.value, ValueError)
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("landing/")} == {
        k: v for k, v in before.items() if not k.startswith("landing/")
    }
    assert after["landing/_ingested.json"] == before["landing/_ingested.json"]
    assert list(read_ledger(tmp_path)) == ["001_good.csv"]


def test_bad_batch_on_an_empty_lake_creates_nothing_and_names_every_bad_file(tmp_path, daily):
    write_landing_csv(daily.head(100), landing_dir(tmp_path) / "a_good.csv")
    bad_close, _ = _corrupt(daily.slice(100, 100), "negative_close", 5)
    write_landing_csv(bad_close, landing_dir(tmp_path) / "b_bad.csv")
    bad_volume, _ = _corrupt(daily.slice(200, 100), "text_volume", 0)
    write_landing_csv(bad_volume, landing_dir(tmp_path) / "c_bad.csv")

    with pytest.raises(IngestError) as info:
        ingest_landing(tmp_path)

    msg = str(info.value)
    assert "2 landing files rejected" in msg
    assert "b_bad.csv: line 7 (data row 5, 0-based), column 'close'" in msg
    assert "c_bad.csv: line 2 (data row 0, 0-based), column 'volume'" in msg and "'lots'" in msg
    assert not (tmp_path / "lake" / "bars").exists()
    assert not ledger_path(tmp_path).exists()


def test_parquet_errors_name_the_0_based_row(tmp_path, five_min):
    bad, _ = _corrupt(five_min, "negative_close", 11)
    write_landing_parquet(bad, landing_dir(tmp_path) / "x.parquet")
    with pytest.raises(IngestError, match=r"x\.parquet: row 11 \(0-based\), column 'close'"):
        ingest_landing(tmp_path)
    assert not (tmp_path / "lake" / "bars").exists()


# ------------------------------------------------------------------------------------------ (5) re-run


def test_rerun_without_new_files_writes_nothing(tmp_path, five_min):
    write_landing_parquet(five_min, landing_dir(tmp_path) / "bars_5m.parquet")
    ingest_landing(tmp_path)
    before = snapshot(tmp_path)

    report = ingest_landing(tmp_path)

    assert report.files_skipped == ["bars_5m.parquet"] and report.files_ingested == []
    assert report.partitions_written == {} and report.rows_read == 0 and not report.wrote_anything
    assert snapshot(tmp_path) == before


def test_changed_file_is_ingested_again(tmp_path, five_min):
    path = landing_dir(tmp_path) / "bars_5m.parquet"
    write_landing_parquet(five_min, path)
    ingest_landing(tmp_path)
    write_landing_parquet(five_min.with_columns(pl.col("volume") * 2), path)
    report = ingest_landing(tmp_path)
    assert report.files_ingested == ["bars_5m.parquet"]
    assert_frame_equal(read_table(table_dir(tmp_path, "bars", 5)), five_min.with_columns(pl.col("volume") * 2))


# ------------------------------------------------------------------------------------------ (6) append


def test_appending_a_later_file_rewrites_only_the_partitions_it_touches(tmp_path, daily):
    days = sorted(daily["ts"].unique().to_list())
    write_landing_csv(daily.filter(pl.col("ts") < days[200]), landing_dir(tmp_path) / "2024_part1.csv")
    ingest_landing(tmp_path)
    before = bar_files(tmp_path)
    assert len(before) == 200

    # days 195..249; for the 5 overlapping days SYM000 is absent (its stored bars must survive the merge) and
    # SYM001's volume changed (the new rows must win)
    second = daily.filter(
        (pl.col("ts") >= days[195])
        & (pl.col("ts") < days[250])
        & ~((pl.col("symbol") == "SYM000") & (pl.col("ts") < days[200]))
    ).with_columns(pl.when(pl.col("symbol") == "SYM001").then(pl.col("volume") + 3).otherwise(pl.col("volume")))
    write_landing_csv(second, landing_dir(tmp_path) / "2024_part2.csv")
    report = ingest_landing(tmp_path)

    touched = [str(d.date()) for d in days[195:250]]
    assert report.files_skipped == ["2024_part1.csv"] and report.files_ingested == ["2024_part2.csv"]
    assert report.partitions_written == {1440: touched}
    assert report.rows_after_dedup == second.height and report.rows_written == 55 * 6
    after = bar_files(tmp_path)
    assert len(after) == 250
    for key, value in before.items():
        if key.split("date=")[1][:10] not in touched:
            assert after[key] == value, key  # untouched partition: same bytes, same mtime
        else:
            assert after[key][1] != value[1], key  # overlapping day: rewritten (merged)
    expected = daily.filter(pl.col("ts") < days[250]).with_columns(
        pl.when((pl.col("symbol") == "SYM001") & (pl.col("ts") >= days[195]))
        .then(pl.col("volume") + 3)
        .otherwise(pl.col("volume"))
    )
    assert_frame_equal(read_table(table_dir(tmp_path, "bars", 1440)), expected)


# ------------------------------------------------------------------------------------------ (7) missing column


def test_missing_required_column_is_named(tmp_path, daily):
    write_landing_csv(daily.drop("volume"), landing_dir(tmp_path) / "novol.csv")
    with pytest.raises(IngestError, match=r"novol\.csv: column 'volume': missing required column\(s\) \['volume'\]"):
        ingest_landing(tmp_path)
    assert not (tmp_path / "lake" / "bars").exists() and not ledger_path(tmp_path).exists()


# ------------------------------------------------------------------------------------------ timestamps and intervals


def test_csv_timestamp_forms_and_optional_columns(tmp_path):
    text = (
        "ts,symbol,open,high,low,close,volume,vwap,trades\n"
        "2024-03-04T21:00:00Z,AAA,10,11,9,10.5,100,10.2,7\n"
        "2024-03-05 16:00:00-05:00,AAA,10.5,11,10,10.8,200,,\n"  # offset -> 21:00 UTC
        "\n"  # blank line: skipped, but lines keep counting
        "2024-03-06 21:00,AAA,10.8,11.2,10.1,11,0,10.9,3.0\n"  # naive -> taken as UTC
    )
    path = landing_dir(tmp_path) / "forms.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    bars, rows = read_landing_file(path)
    assert rows == 3
    assert [t.isoformat() for t in bars["ts"]] == [f"2024-03-0{d}T21:00:00+00:00" for d in (4, 5, 6)]
    assert bars["vwap"].to_list() == [10.2, None, 10.9] and bars["trades"].to_list() == [7, None, 3]
    assert bars.schema["trades"] == pl.Int64

    epoch = landing_dir(tmp_path) / "epoch.csv"
    epoch.write_text("ts,symbol,open,high,low,close,volume\n1709586000000,AAA,10,11,9,10.5,100\n")
    assert read_landing_file(epoch)[0]["ts"].to_list() == bars["ts"].head(1).to_list()  # milliseconds

    bad = landing_dir(tmp_path) / "late.csv"
    bad.write_text(text.replace("2024-03-06 21:00", "2024-03-06"))
    with pytest.raises(IngestError, match=r"late\.csv: line 5 \(data row 3, 0-based\), column 'ts': a date without"):
        read_landing_file(bad)


def test_single_bar_per_symbol_needs_interval_and_range_is_checked(tmp_path, daily):
    one_day = daily.filter(pl.col("ts") == pl.col("ts").min())
    write_landing_csv(one_day, landing_dir(tmp_path) / "day1.csv")
    with pytest.raises(IngestError, match=r"day1\.csv: cannot infer the bar interval.*pass interval_minutes"):
        ingest_landing(tmp_path)
    with pytest.raises(ValueError, match="outside 1..1440"):
        ingest_landing(tmp_path, interval_minutes=2880)
    with pytest.raises(ValueError, match="whole number of minutes"):
        ingest_landing(tmp_path, interval_minutes=2.5)
    assert not (tmp_path / "lake" / "bars").exists()

    report = ingest_landing(tmp_path, interval_minutes=1440)
    assert report.partitions_written == {1440: ["2024-01-02"]}

    weekly = daily.filter(pl.col("ts").dt.weekday() == 1)
    write_landing_csv(weekly, landing_dir(tmp_path) / "weekly.csv")
    with pytest.raises(IngestError, match=r"weekly\.csv: inferred: interval 10080 minutes is outside 1..1440"):
        ingest_landing(tmp_path)


def test_daily_bars_declared_as_5_minute_are_refused_naming_both_intervals(tmp_path, daily):
    write_landing_csv(daily, landing_dir(tmp_path) / "mislabelled.csv")
    with pytest.raises(IngestError, match=r"mislabelled\.csv: declared interval 5 minutes, but its bars are 1440 "):
        ingest_landing(tmp_path, interval_minutes=5)
    assert not (tmp_path / "lake" / "bars").exists() and not ledger_path(tmp_path).exists()
    assert ingest_landing(tmp_path, interval_minutes=1440).intervals == [1440]  # the true interval is accepted
