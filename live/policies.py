"""Model-selection policies: SQL over the catalog that returns the models live trading loads, or an alias.

A policy is one of:

* a **named policy**: built in (below) or from ``configs/policies.yaml`` (``$FOXLAKE_POLICIES`` to point
  elsewhere), validated by :class:`PolicyFile`; a YAML policy of the same name replaces the built-in one;
* ``champions``: the models the closed loop promoted (every ``champion.<target>`` alias, :mod:`loop.promotion`);
* an **alias**: ``alias:champion`` (several: ``alias:champion,challenger``) resolves to the model directories
  the aliases point at now (``foxlake catalog alias set …``);
* a literal ``select …`` / ``with …`` returning a ``model_dir`` column: exactly one SELECT statement (parsed by
  DuckDB), run on the sandboxed read-only catalog connection (``catalog.query.connect``); every ``model_dir`` it
  returns must be an indexed model.

A policy query may use ``$interval_minutes`` (the live data's bar interval), so models trained on another
interval are never chosen.

The built-in policies pick by **holdout** metrics only, under the catalog's selection rule (``catalog.schema``):
tradable targets, complete runs, verified checksums; a floor (holdout mean IC above ``MIN_HOLDOUT_IC`` = 0, holdout
t-stat at least ``MIN_HOLDOUT_T`` = 2: ``passes_floor``) and a recency rule (the newest run that trained a target and
view, or the best of the ``RECENT_RUNS`` = 3 newest), so that picking the best of many runs by the same number does
not compound its luck and a lucky old model cannot stay. A policy of one's own (``configs/policies.yaml``) may use
other numbers over the ``eligible_models`` view.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from catalog.query import single_select

POLICIES_ENV = "FOXLAKE_POLICIES"
DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[1] / "configs" / "policies.yaml"
ALIAS_PREFIX = "alias:"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

POLICIES: dict[str, str] = {
    # Per target/view/symbol/family: the model of the newest complete run that trained the target and view at this
    # interval, if its holdout metrics pass the floor (read from pick_candidates: tradable targets only).
    "holdout_per_family": """
        select model_dir from pick_candidates
        where interval_minutes = $interval_minutes and recency = 1 and passes_floor
        order by target, view, symbol nulls first, family
    """,
    # Per target/view/symbol: the one model of that newest run with the best holdout pick_score (IC_IR for a pooled
    # model, t-stat for a per-symbol one) among those passing the floor.
    "holdout_best_per_view": """
        select model_dir from pick_candidates
        where interval_minutes = $interval_minutes and best_in_view
        order by target, view, symbol nulls first
    """,
    # Per target/view/symbol: the best holdout pick_score over the RECENT_RUNS (3) newest runs, passing the floor.
    "holdout_best_of_recent": """
        select model_dir from pick_candidates
        where interval_minutes = $interval_minutes and best_of_recent
        order by target, view, symbol nulls first
    """,
    # Every tradable model of the newest complete run at this interval that passes the floor.
    "latest_run": """
        select model_dir from pick_candidates
        where interval_minutes = $interval_minutes and passes_floor
          and run_dir = (select run_dir from runs where complete and interval_minutes = $interval_minutes
                         order by timestamp desc, run_dir desc limit 1)
        order by target, view, symbol nulls first, family
    """,
    # The champions of the closed loop (loop.promotion): every model a champion.<target> alias points at now.
    "champions": """
        select model_dir from active_aliases
        where alias like 'champion.%' and indexed and interval_minutes = $interval_minutes
        order by alias
    """,
}
DEFAULT_POLICY = "holdout_per_family"


class PolicySpec(BaseModel):
    """One named policy in ``policies.yaml``."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(description="a select (or with … select) returning model_dir; may use $interval_minutes")
    description: str = ""

    @field_validator("sql")
    @classmethod
    def _is_select(cls, v: str) -> str:
        return single_select(v)  # one SELECT statement, parsed (not prefix-matched)


class PolicyFile(BaseModel):
    """``policies.yaml``: ``policies: {name: {sql: …, description: …}}``."""

    model_config = ConfigDict(extra="forbid")

    policies: dict[str, PolicySpec] = Field(default_factory=dict)

    @field_validator("policies")
    @classmethod
    def _names(cls, v: dict[str, PolicySpec]) -> dict[str, PolicySpec]:
        for name in v:
            if not _NAME_RE.match(name) or name.startswith(ALIAS_PREFIX.rstrip(":")):
                raise ValueError(f"policy name {name!r}: letters, digits, '_', '.', '-'; not starting with 'alias'")
        return v


_cache: dict[tuple[str, int], dict[str, PolicySpec]] = {}


def policy_file() -> Path:
    """The policies file in use: ``$FOXLAKE_POLICIES`` or ``configs/policies.yaml`` of the repository."""
    return Path(os.environ.get(POLICIES_ENV) or DEFAULT_POLICY_FILE)


def load_policies(path: str | Path | None = None) -> dict[str, PolicySpec]:
    """The named policies of a YAML file (``{}`` when the file does not exist).

    Raises:
        ValueError: the file is not a valid policy file (the message names the file and the field).
    """
    path = Path(path) if path is not None else policy_file()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    key = (str(path), mtime)
    if key not in _cache:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            _cache[key] = PolicyFile.model_validate(doc).policies
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: not a valid policy file: {exc}") from None
    return _cache[key]


def all_policies() -> dict[str, str]:
    """Every named policy: the built-in ones, then the YAML file's (which win on a name clash)."""
    return POLICIES | {name: spec.sql for name, spec in load_policies().items()}


def alias_names(policy: str) -> list[str] | None:
    """The alias names of an ``alias:a[,b]`` policy, or None when ``policy`` is not an alias."""
    if not policy.startswith(ALIAS_PREFIX):
        return None
    names = [n.strip() for n in policy[len(ALIAS_PREFIX) :].split(",") if n.strip()]
    if not names:
        raise ValueError(f"{policy!r}: name at least one alias, e.g. alias:champion")
    return names


def policy_sql(name_or_sql: str) -> str:
    """The SQL of a named policy, or the text itself when it is already a ``select``."""
    named = all_policies()
    if name_or_sql in named:
        return named[name_or_sql]
    if name_or_sql.lstrip().lower().startswith(("select", "with")):
        return single_select(name_or_sql)
    raise KeyError(
        f"unknown selection policy {name_or_sql!r}; named policies: {sorted(named)}, or alias:<name>, or a select"
    )
