"""The alias record's format: ``RESULTS/catalog/aliases.jsonl``, one JSON object per line (``alias``, ``action``
``set``/``clear``, ``model_dir``, ``set_at``, ``set_by``, ``note``), and its reader. The indexer reloads the
catalog's ``aliases`` table from it; :mod:`catalog.aliases` appends to it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

ALIAS_FILE = "catalog/aliases.jsonl"
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid name, else a ValueError saying what a name may hold."""
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise ValueError(f"alias {alias!r}: use letters, digits, '_', '.', '-' (at most 128 characters)")
    return alias


def read_alias_file(root: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """(rows of the ``aliases`` table, [(path:line, reason)] of lines that cannot be used)."""
    path = Path(root) / ALIAS_FILE
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return [], []
    rows, bad = [], []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{ALIAS_FILE}:{lineno}"
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("a line is one JSON object")
            alias = check_alias(doc.get("alias"))
            action = doc.get("action", "set")
            if action not in ("set", "clear"):
                raise ValueError(f"action {action!r} is not 'set' or 'clear'")
            model_dir = doc.get("model_dir")
            if action == "set" and not (isinstance(model_dir, str) and model_dir.startswith("runs/")):
                raise ValueError(f"model_dir {model_dir!r} is not a model directory under runs/")
            set_at = datetime.fromisoformat(doc["set_at"]) if doc.get("set_at") else None
            if set_at is not None and set_at.tzinfo is not None:
                set_at = set_at.astimezone(UTC).replace(tzinfo=None)
            for key in ("set_by", "note"):
                if doc.get(key) is not None and not isinstance(doc[key], str):
                    raise ValueError(f"{key} must be a string")
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            bad.append((where, f"<line>: [alias] {exc}"))
            continue
        rows.append(
            {
                "seq": lineno,
                "alias": alias,
                "model_dir": model_dir if action == "set" else None,
                "set_at": set_at,
                "set_by": doc.get("set_by"),
                "note": doc.get("note"),
                "active": False,
                "_action": action,
            }
        )
    latest: dict[str, dict] = {}
    for row in rows:
        latest[row["alias"]] = row
    for row in latest.values():
        row["active"] = row["_action"] == "set"
    for row in rows:
        del row["_action"]
    return rows, bad
