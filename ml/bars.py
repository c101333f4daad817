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
    for c, t in cols.items():
        cast = df[c].cast(t, strict=False)
        broken = cast.is_null() & df[c].is_not_null()
        if broken.any():
            row = int(broken.arg_max())
            raise BarSchemaError(f"{source}: row {row}, column '{c}': cannot read {df[c][row]!r} as {t}")
    df = df.select([pl.col(c).cast(t, strict=False) for c, t in cols.items()])

    def bad_number(c: str) -> pl.Expr:
        return pl.col(c).is_null() | pl.col(c).is_nan() | pl.col(c).is_infinite()

    checks = {
        "ts": pl.col("ts").is_null(),
        "symbol": pl.col("symbol").is_null() | (pl.col("symbol").str.len_chars() == 0),
        "open": bad_number("open") | ~(pl.col("open") > 0),
        "close": bad_number("close") | ~(pl.col("close") > 0),
        "high": bad_number("high") | ~(pl.col("high") >= pl.max_horizontal("open", "close", "low")),
        "low": bad_number("low") | ~(pl.col("low") > 0) | ~(pl.col("low") <= pl.min_horizontal("open", "close")),
        "volume": bad_number("volume") | ~(pl.col("volume") >= 0),
    }
    if "vwap" in df.columns:
        checks["vwap"] = pl.col("vwap").is_not_null() & (pl.col("vwap").is_nan() | ~(pl.col("vwap") > 0))
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


def check_interval(df: pl.DataFrame, declared_minutes: float, source: str) -> float:
    """The bars' measured interval (:func:`infer_interval_minutes`), which must equal the declared one.

    Bars too few to measure (one per symbol) pass with the declared interval.

    Raises:
        ValueError: naming ``source`` and both intervals, e.g. daily bars declared as 5-minute.
    """
    try:
        measured = infer_interval_minutes(df)
    except ValueError:
        return float(declared_minutes)
    if abs(measured - float(declared_minutes)) > 1e-9:
        raise ValueError(
            f"{source}: declared interval {declared_minutes:g} minutes, but its bars are {measured:g} minutes apart "
            "(the most common gap between a symbol's bars)"
        )
    return measured
