"""The DuckDB catalog: an index of every model_meta, manifest and routing decision under RESULTS.

Files under RESULTS are the record; ``RESULTS/catalog.duckdb`` can always be rebuilt from them.
"""

from catalog.aliases import alias_history, clear_alias, get_alias, list_aliases, set_alias
from catalog.indexer import IndexReport, build_catalog, catalog_path
from catalog.query import (
    best_models,
    connect,
    explain_no_match,
    format_table,
    models,
    rejected,
    runs,
    sql,
    sql_arrow,
)

__all__ = [
    "IndexReport",
    "alias_history",
    "best_models",
    "build_catalog",
    "catalog_path",
    "clear_alias",
    "connect",
    "explain_no_match",
    "format_table",
    "get_alias",
    "list_aliases",
    "models",
    "rejected",
    "runs",
    "set_alias",
    "sql",
    "sql_arrow",
]
