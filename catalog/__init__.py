"""The DuckDB catalog: an index of every model_meta, manifest and routing decision under RESULTS."""

from catalog.indexer import IndexReport, build_catalog, catalog_path
from catalog.query import connect, format_table, sql, sql_arrow

__all__ = ["IndexReport", "build_catalog", "catalog_path", "connect", "format_table", "sql", "sql_arrow"]
