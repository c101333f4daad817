"""Reading the catalog: read-only, sandboxed connections, SQL to polars/arrow, ready-made queries, a plain-text
table.

A connection attaches ``RESULTS/catalog.duckdb`` read-only to a private in-memory DuckDB, so every new
connection sees the newest catalog file (DuckDB would otherwise hand a process the snapshot it already has
open) and never waits for, or blocks, an index run. Then it is locked down: no file or network access
(``enable_external_access = false``: no ``COPY … TO``, ``ATTACH``, ``read_csv``, ``glob``, ``INSTALL``), no
extension auto-install or auto-load, and the configuration locked so a query cannot undo it. What a user's SQL
or a selection policy can read is the catalog, nothing else on the machine.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from catalog.indexer import catalog_path
from catalog.schema import BEST_METRICS

ATTACH_NAME = "catalog"


def connect(results: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to ``RESULTS/catalog.duckdb`` (never blocks an index build).

    Raises:
        FileNotFoundError: no catalog yet; run ``foxlake catalog index``.
    """
    path = catalog_path(results)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no catalog; run `foxlake catalog index` first")
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute(f"attach '{_quote(str(path))}' as {ATTACH_NAME} (read_only)")
        con.execute(f"use {ATTACH_NAME}")
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


class CatalogQueryError(ValueError):
    """A query the catalog refused or could not run; the message is DuckDB's (what and why) with its hint line."""


def _arrow(con: duckdb.DuckDBPyConnection, query: str, params: list | dict | None) -> pa.Table:
    try:
        rel = con.sql(query, params=params)
        if rel is None:
            raise CatalogQueryError("the statement returns no rows; query the catalog with a SELECT")
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise CatalogQueryError(duckdb_message(exc)) from None


def duckdb_message(exc: BaseException) -> str:
    """DuckDB's message and its hint ("Did you mean …"), without the echoed query lines."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("LINE ")]
    lines = [ln for ln in lines if not ln.startswith("^")]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def single_select(query: str) -> str:
    """``query`` if it is exactly one ``SELECT`` (or ``WITH … SELECT``) statement, parsed by DuckDB.

    Raises:
        CatalogQueryError: not SQL, several statements, or a statement of another kind (named).
    """
    con = duckdb.connect(":memory:")
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise CatalogQueryError(f"not a valid query: {_first_line(exc)}") from None
    finally:
        con.close()
    if len(statements) != 1:
        raise CatalogQueryError(f"a policy is one SELECT statement; got {len(statements)} statements")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise CatalogQueryError(f"a policy is one SELECT statement; got a {kind.name} statement")
    return query


def _quote(text: str) -> str:
    return text.replace("'", "''")


def sql_arrow(results: str | Path, query: str, params: list | dict | None = None) -> pa.Table:
    """Run ``query``; the result as a pyarrow Table."""
    con = connect(results)
    try:
        return _arrow(con, query, params)
    finally:
        con.close()


def sql(results: str | Path, query: str, params: list | dict | None = None) -> pl.DataFrame:
    """Run ``query`` against the catalog; the result as a polars DataFrame."""
    return pl.from_arrow(sql_arrow(results, query, params))


def _where(filters: dict[str, object]) -> tuple[str, list]:
    """Equality filters, case-insensitive (``cross_sectional`` matches ``CROSS_SECTIONAL``, ``ridge`` Ridge)."""
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"lower({column}) = lower(?)")
            params.append(str(value))
    return (" where " + " and ".join(clauses)) if clauses else "", params


def explain_no_match(results: str | Path, filters: dict[str, object]) -> str:
    """Why filters of ``models`` matched nothing: each filter that matches no model alone, with the values there are
    (or, when each matches alone, that their combination matches none)."""
    given = {k: v for k, v in filters.items() if v is not None}
    reasons = []
    for column, value in given.items():
        where, params = _where({column: value})
        if sql(results, f"select count(*) as n from models{where}", params)["n"][0] == 0:
            known = sql(results, f"select distinct {column} as v from models where {column} is not null order by 1")
            values = known["v"].to_list()
            shown = ", ".join(map(str, values[:12])) + (f", … ({len(values)} in all)" if len(values) > 12 else "")
            reasons.append(f"no model has {column} = {value!r} (matched without regard to case); known: {shown}")
    if not reasons:
        reasons.append(f"each filter matches models, but none matches all of {given} together")
    return "no model matched: " + "; ".join(reasons)


MODEL_SUMMARY_COLUMNS = (
    "model_dir, target, view, symbol, family, interval_minutes, n_features, evaluated_on, mean_ic, ic_ir, t_stat, "
    "cv_mean_ic, net_spread_bps, research_only, checksum_ok, run_dir, dagster_run_id"
)


def models(
    results: str | Path,
    *,
    target: str | None = None,
    view: str | None = None,
    family: str | None = None,
    symbol: str | None = None,
    run_dir: str | None = None,
    columns: str = MODEL_SUMMARY_COLUMNS,
    arrow: bool = False,
) -> pl.DataFrame | pa.Table:
    """Indexed models, optionally filtered; ``columns="*"`` for every column."""
    where, params = _where({"target": target, "view": view, "family": family, "symbol": symbol, "run_dir": run_dir})
    q = f"select {columns} from models{where} order by target, view, symbol nulls first, family, model_dir"
    return sql_arrow(results, q, params) if arrow else sql(results, q, params)


def runs(results: str | Path, *, arrow: bool = False) -> pl.DataFrame | pa.Table:
    """One row per run (newest first) with its model count and best metrics."""
    q = "select * from run_summary order by timestamp desc, run_dir desc"
    return sql_arrow(results, q) if arrow else sql(results, q)


def best_models(results: str | Path, metric: str = "pick_score", *, arrow: bool = False) -> pl.DataFrame | pa.Table:
    """Per target/view/symbol, the model with the best holdout ``metric`` under the selection rule
    (``catalog.schema``: complete runs, good checksum, newest run of the target/view, above the holdout floor)."""
    if metric not in BEST_METRICS:
        raise ValueError(f"metric {metric!r} is not one of {BEST_METRICS}")
    q = "select * from best_models_by(?) order by target, view, symbol nulls first"
    return sql_arrow(results, q, [metric]) if arrow else sql(results, q, [metric])


def rejected(results: str | Path) -> pl.DataFrame:
    """Files that broke a contract, with the reason."""
    return sql(results, "select path, kind, reason, seen_at from rejected order by path")


def is_path_column(name: str) -> bool:
    """A column holding a path a later command takes (``model_dir``, ``run_dir``, ``model_path``, …): never cut."""
    return name.endswith(("_dir", "_path")) or name in ("path", "reused_from")


def format_table(df: pl.DataFrame, max_rows: int = 50, max_width: int = 60) -> str:
    """A plain-text table of ``df`` (header, separator, rows) for the terminal. Cells longer than ``max_width`` are
    cut with "…", except paths (:func:`is_path_column`), which a later command may need whole."""
    shown = df.head(max_rows)
    cols = shown.columns
    widths_max = [10**9 if is_path_column(c) else max_width for c in cols]
    cells = [[_cell(v, w) for v, w in zip(row, widths_max, strict=True)] for row in shown.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({df.height} row{'s' if df.height != 1 else ''}"
    footer += f", first {max_rows} shown)" if df.height > max_rows else ")"
    return "\n".join(lines + [footer])


def _cell(value: object, max_width: int) -> str:
    text = "NULL" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
