"""Named model-selection policies: SQL over the catalog that returns the models live trading loads.

A policy query returns at least ``model_dir`` and may use the parameter ``$interval_minutes`` (the live
data's bar interval), so models trained on another interval are never chosen.
"""

from __future__ import annotations

POLICIES: dict[str, str] = {
    # Per target/view/symbol, the model with the best IC_IR among complete runs whose checksum is ok.
    "best_ic_ir": """
        select m.model_dir from models m join runs r using (run_dir)
        where r.complete and m.checksum_ok and m.interval_minutes = $interval_minutes
        qualify row_number() over (partition by m.target, m.view, coalesce(m.symbol, ''), m.family
                                   order by m.ic_ir desc nulls last, m.model_dir) = 1
        order by m.target, m.view, m.symbol nulls first, m.family
    """,
    # Every model of the newest complete run at this interval.
    "latest_run": """
        select m.model_dir from models m join runs r using (run_dir)
        where m.interval_minutes = $interval_minutes and r.run_dir = (
            select run_dir from runs where complete and interval_minutes = $interval_minutes
            order by timestamp desc, run_dir desc limit 1)
        order by m.target, m.view, m.symbol nulls first, m.family
    """,
}
DEFAULT_POLICY = "best_ic_ir"


def policy_sql(name_or_sql: str) -> str:
    """The SQL of a named policy, or the text itself when it is already a ``select``."""
    if name_or_sql in POLICIES:
        return POLICIES[name_or_sql]
    if name_or_sql.lstrip().lower().startswith(("select", "with")):
        return name_or_sql
    raise KeyError(f"unknown selection policy {name_or_sql!r}; named policies: {sorted(POLICIES)}")
