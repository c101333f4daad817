"""The lake under ``RESULTS/lake``: hive-partitioned parquet tables, one folder per table and interval.

``RESULTS/lake/<table>/interval=<minutes>/date=<YYYY-MM-DD>/part-0.parquet`` — every partition file is
written atomically, so a reader sees whole partitions only and a re-write of a day replaces it.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from contracts.io import write_atomic_bytes


def table_dir(results: str | Path, table: str, interval_minutes: float) -> Path:
    """``RESULTS/lake/<table>/interval=<minutes>``."""
    return Path(results) / "lake" / table / f"interval={int(interval_minutes)}"


def write_partitions(df: pl.DataFrame, directory: Path) -> list[str]:
    """Write ``df`` as one parquet file per UTC date of ``ts``; returns the partition keys written."""
    keyed = df.with_columns(pl.col("ts").dt.date().cast(pl.String).alias("_date"))
    written = []
    for (date,), part in keyed.partition_by("_date", as_dict=True, maintain_order=True).items():
        buf = io.BytesIO()
        part.drop("_date").sort("symbol", "ts").write_parquet(buf, compression="zstd", statistics=True)
        write_atomic_bytes(directory / f"date={date}" / "part-0.parquet", buf.getvalue())
        written.append(str(date))
    return sorted(written)


def read_table(directory: Path, since: str | None = None) -> pl.DataFrame:
    """Read a partitioned table (optionally only dates >= ``since``), sorted by (symbol, ts)."""
    files = sorted(directory.glob("date=*/part-0.parquet"))
    if since is not None:
        files = [f for f in files if f.parent.name.removeprefix("date=") >= since]
    if not files:
        raise FileNotFoundError(f"{directory}: no partitions")
    return pl.read_parquet(files).sort("symbol", "ts")


def partitions(directory: Path) -> list[str]:
    """The dates a table holds."""
    return sorted(p.name.removeprefix("date=") for p in directory.glob("date=*") if (p / "part-0.parquet").exists())
