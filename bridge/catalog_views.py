"""The dashboard's view of the catalog: recent training runs (read-only, sandboxed DuckDB connection)."""

from __future__ import annotations

from pathlib import Path

from bridge.payloads import TrainingRun
from catalog.query import connect


def recent_runs(results: str | Path, limit: int = 20) -> list[TrainingRun]:
    """The newest runs first, with their model count and best holdout IC (metrics measured on each run's holdout).

    Raises:
        FileNotFoundError: no catalog yet.
    """
    con = connect(results)
    try:
        rows = con.execute(
            "select r.run_dir, r.run_id, r.run_instance_id, r.timestamp, r.complete, r.n_targets, "
            "count(m.model_dir), max(m.mean_ic) filter (where m.evaluated_on = 'holdout') "
            "from runs r left join models m on m.run_dir = r.run_dir "
            "group by all order by r.timestamp desc nulls last, r.run_dir limit ?",
            [limit],
        ).fetchall()
    finally:
        con.close()
    return [
        TrainingRun(
            run_dir=r[0],
            run_id=r[1],
            run_instance_id=r[2],
            timestamp=r[3],
            complete=r[4],
            n_targets=r[5],
            n_models=r[6],
            best_holdout_ic=r[7],
        )
        for r in rows
    ]
