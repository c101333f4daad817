"""Model aliases (``champion``, ``challenger``, …): a name that points at one model directory, with history.

The record is ``RESULTS/catalog/aliases.jsonl``, one JSON object per line, appended (and fsynced) under the
catalog's writer lock; the catalog's ``aliases`` table is reloaded from it on every index, so aliases survive
a full rebuild. Setting an alias appends a row; the latest row of each alias is its ``active`` one.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from catalog.alias_file import ALIAS_FILE, check_alias
from catalog.indexer import index_lock, index_locked
from contracts.io import fsync_dir


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def normalize_model_dir(root: Path, model_dir: str | Path) -> str:
    """``model_dir`` relative to RESULTS, POSIX style (absolute paths under RESULTS are accepted)."""
    p = Path(model_dir)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(root)
        except ValueError:
            raise ValueError(f"{model_dir}: not under RESULTS ({root})") from None
    rel = p.as_posix().strip("/")
    if p.name == "model_meta.json":
        rel = p.parent.as_posix()
    if not rel.startswith("runs/") or ".." in Path(rel).parts:
        raise ValueError(f"{model_dir}: a model directory is runs/<run_id>/<run_instance_id>/targets/.../family=<F>")
    return rel


def _append(root: Path, record: dict) -> None:
    path = root / ALIAS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if os.fstat(fd).st_size:  # a line torn by a crash must not swallow this one
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _user() -> str:
    try:
        return os.environ.get("FOXLAKE_USER") or getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "unknown"


def set_alias(
    results: str | Path,
    alias: str,
    model_dir: str | Path,
    *,
    note: str | None = None,
    set_by: str | None = None,
    check: bool = True,
) -> dict:
    """Point ``alias`` at ``model_dir`` (the previous target stays in the history); re-indexes the catalog.

    Args:
        check: refuse a model directory that is not an indexed (accepted) model of the catalog.

    Returns the record appended to ``aliases.jsonl``.
    """
    from catalog.query import sql

    root = Path(results).resolve()
    check_alias(alias)
    rel = normalize_model_dir(root, model_dir)
    record = {"action": "set", "alias": alias, "model_dir": rel, "note": note, "set_by": set_by or _user(),
              "set_at": _now().isoformat()}  # fmt: skip
    with index_lock(root):
        index_locked(root)  # the check below sees every model on disk
        if check and sql(root, "select 1 from models where model_dir = ?", [rel]).height == 0:
            raise ValueError(f"{rel}: not an indexed model (rejected, or not under RESULTS/runs); see `rejected`")
        _append(root, record)
        index_locked(root)
    return record


def clear_alias(results: str | Path, alias: str, *, note: str | None = None, set_by: str | None = None) -> dict:
    """Make ``alias`` point nowhere (kept in the history)."""
    root = Path(results).resolve()
    record = {"action": "clear", "alias": check_alias(alias), "model_dir": None, "note": note,
              "set_by": set_by or _user(), "set_at": _now().isoformat()}  # fmt: skip
    with index_lock(root):
        _append(root, record)
        index_locked(root)
    return record


def get_alias(results: str | Path, alias: str) -> str | None:
    """The model directory ``alias`` points at now (relative to RESULTS), or None."""
    from catalog.query import sql

    df = sql(results, "select model_dir from aliases where alias = ? and active", [alias])
    return df["model_dir"][0] if df.height else None


def alias_history(results: str | Path, alias: str | None = None) -> pl.DataFrame:
    """Every row of ``alias`` (or of every alias), oldest first."""
    from catalog.query import sql

    where, params = ("where alias = ?", [alias]) if alias else ("", None)
    return sql(results, f"select alias, model_dir, set_at, set_by, note, active, seq from aliases {where} "
                        "order by alias, seq", params)  # fmt: skip


def list_aliases(results: str | Path) -> pl.DataFrame:
    """The active aliases with the model each points at (``indexed`` is false for a model no longer indexed)."""
    from catalog.query import sql

    return sql(results, "select * from active_aliases order by alias")
