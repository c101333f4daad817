"""Reading the catalog: read-only connections, SQL to polars/arrow, and a plain-text table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from catalog.indexer import catalog_path


def connect(results: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to ``RESULTS/catalog.duckdb`` (never blocks an index build).

    Raises:
        FileNotFoundError: no catalog yet; run ``foxlake catalog index``.
    """
    path = catalog_path(results)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no catalog; run `foxlake catalog index` first")
    return duckdb.connect(str(path), read_only=True)


def sql(results: str | Path, query: str, params: list | None = None) -> pl.DataFrame:
    """Run ``query`` against the catalog; the result as a polars DataFrame."""
    con = connect(results)
    try:
        return pl.from_arrow(con.sql(query, params=params).to_arrow_table())
    finally:
        con.close()


def sql_arrow(results: str | Path, query: str, params: list | None = None):
    """Run ``query``; the result as a pyarrow Table."""
    con = connect(results)
    try:
        return con.sql(query, params=params).to_arrow_table()
    finally:
        con.close()


def format_table(df: pl.DataFrame, max_rows: int = 50, max_width: int = 60) -> str:
    """A plain-text table of ``df`` (header, separator, rows) for the terminal."""
    shown = df.head(max_rows)
    cols = shown.columns
    cells = [[_cell(v, max_width) for v in row] for row in shown.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({df.height} row{'s' if df.height != 1 else ''}"
    footer += f", first {max_rows} shown)" if df.height > max_rows else ")"
    return "\n".join(lines + [footer])


def _cell(value: object, max_width: int) -> str:
    text = "NULL" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
