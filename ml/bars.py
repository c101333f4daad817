"""The bar schema every data source is normalised to, and its validation."""

from __future__ import annotations

import polars as pl

REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {"vwap": pl.Float64(), "trades": pl.Int64()}
"""Bars: ``ts`` is the bar's close time in UTC; prices in quote currency; volume in shares."""


class BarSchemaError(ValueError):
    """Bars that break the schema; the message names the source, row and column."""


def validate_bars(df: pl.DataFrame, source: str = "<bars>") -> pl.DataFrame:
    """Check columns, types, positivity and OHLC consistency; return the bars cast and sorted by (symbol, ts).

    Raises:
        BarSchemaError: naming ``source``, the first bad row (0-based) and the column.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise BarSchemaError(f"{source}: missing column(s) {missing}; have {df.columns}")
    cols = {**REQUIRED_COLUMNS, **{k: v for k, v in OPTIONAL_COLUMNS.items() if k in df.columns}}
    try:
        df = df.select([pl.col(c).cast(t, strict=True) for c, t in cols.items()])
    except pl.exceptions.PolarsError as exc:
        raise BarSchemaError(f"{source}: cannot cast to the bar schema: {exc}") from None
    checks = {
        "ts": pl.col("ts").is_null(),
        "symbol": pl.col("symbol").is_null() | (pl.col("symbol").str.len_chars() == 0),
        "open": ~(pl.col("open") > 0) | pl.col("open").is_null() | pl.col("open").is_nan(),
        "close": ~(pl.col("close") > 0) | pl.col("close").is_null() | pl.col("close").is_nan(),
        "high": ~(pl.col("high") >= pl.max_horizontal("open", "close", "low")) | pl.col("high").is_null(),
        "low": ~(pl.col("low") <= pl.min_horizontal("open", "close")) | ~(pl.col("low") > 0) | pl.col("low").is_null(),
        "volume": ~(pl.col("volume") >= 0) | pl.col("volume").is_null(),
    }
    flags = df.with_row_index("_row").select("_row", *[e.fill_null(True).alias(c) for c, e in checks.items()])
    for col in checks:
        bad = flags.filter(pl.col(col))
        if bad.height:
            row = int(bad["_row"][0])
            raise BarSchemaError(
                f"{source}: row {row}, column '{col}': invalid value {df[col][row]!r} ({bad.height} bad row(s))"
            )
    return df.unique(subset=["symbol", "ts"], keep="last", maintain_order=True).sort("symbol", "ts")


def infer_interval_minutes(df: pl.DataFrame) -> float:
    """The bar interval in minutes: the most common gap between consecutive bars of a symbol."""
    gaps = (
        df.sort("symbol", "ts")
        .select((pl.col("ts").diff().over("symbol").dt.total_seconds() / 60).alias("gap"))
        .drop_nulls()
        .filter(pl.col("gap") > 0)
    )
    if gaps.height == 0:
        raise ValueError("cannot infer the bar interval from fewer than two bars per symbol")
    return float(gaps["gap"].mode().min())
