"""The closed loop's sensors: landing files → ingest; new data → retrain; live decay → retrain.

Why sensors and not declarative automation here: each decision reads state outside Dagster's asset graph (the
landing folder's files and their digests, the catalog's newest data end, the live ledger's realised IC) and must
say why in the run's tags. An ``AutomationCondition`` sees only the graph's own materializations and their
partitions, so it fits where the rule is about the graph: ``features`` is ``eager()`` (recomputed whenever
``bars`` lands new rows, see ``assets.data``). ``multi_asset_sensor`` is not used (discouraged in current Dagster).
"""

from __future__ import annotations

import json
import time

import dagster as dg

from assets.jobs import ingest_job, retrain_job
from assets.partitions import LAKE_DAYS, days_to_load, new_days, range_tags
from assets.resources import LakeResource
from live.config import EngineConfig
from live.ledger.schema import ledger_file
from live.ledger.writer import append_event
from loop.config import loop_config
from loop.decay import ledger_decay
from loop.triggers import new_partitions, out_of_cooldown
from ml.ingest import IngestError, check_landing_file, pending_landing_files, reject_landing_file

REASON = "foxlake/reason"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
"""Sensor runs execute their steps in the run's own process: one import of the libraries, not one per step."""


@dg.sensor(job=ingest_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """New or changed landing files → one ingest run per tick, which ingests every file pending then. Its run key
    is the newest file's sha256 (a tick that finds the same files pending asks again under the same key, which
    Dagster drops: a file is requested once, and ingestion itself skips a digest it recorded). A file that fails
    validation is moved to ``landing/rejected/`` with a reason file naming file, line and column; the files after
    it are not held up. The run covers the files' days, added as ``lake_days`` partitions first. With synthetic
    data it registers the history's days (so the UI can materialize them) and requests nothing."""
    cfg = lake.run_config()
    if cfg.data_source != "landing":  # the synthetic history's days, so that the UI can materialize them
        added = new_days(context.instance, days_to_load(lake.results(), cfg))
        return dg.SensorResult(
            dynamic_partitions_requests=[LAKE_DAYS.build_add_request(added)] if added else [],
            skip_reason=f"data_source is {cfg.data_source!r}: no landing zone to watch"
            + (f"; registered its {len(added)} day(s)" if added else ""),
        )
    good, rows, days, rejected = [], 0, set(), []
    for path, digest in pending_landing_files(lake.results()):
        try:
            n, file_days = check_landing_file(path)
            rows, days = rows + n, days | set(file_days)
        except IngestError as exc:
            moved = reject_landing_file(lake.results(), path, str(exc))
            rejected.append(moved.name)
            context.log.warning(f"rejected {path.name}: {exc}")
            continue
        good.append((path.name, digest))
    if not good:
        return dg.SkipReason(f"rejected {', '.join(rejected)}" if rejected else "no new landing file")
    name, digest = good[-1]
    tags = {REASON: "landing files", "foxlake/landing_files": ",".join(n for n, _ in good)[:2000],
            "foxlake/newest_file": name, "foxlake/sha256": digest, "foxlake/rows": str(rows),
            **range_tags(days)}  # fmt: skip
    added = new_days(context.instance, days)  # the UI shows each new day as a partition of bars and features
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"landing-{digest}", tags=tags, run_config=IN_PROCESS)],
        dynamic_partitions_requests=[LAKE_DAYS.build_add_request(added)] if added else [],
    )


@dg.sensor(job=retrain_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.STOPPED)
def retrain_on_new_data(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Training when the bars hold ``loop.retrain.min_new_partitions`` daily partitions after the newest complete
    run's data end, at most once per ``loop.retrain.min_minutes_between_runs`` (cursor: the last request's time).
    Off by default: turn it on in the UI (or ``dagster sensor start``) where new bars arrive."""
    cfg = lake.run_config()
    rule = loop_config(cfg.loop).retrain
    dates, end = new_partitions(lake.results(), cfg.bar_interval_minutes)
    if len(dates) < rule.min_new_partitions:
        return dg.SkipReason(f"{len(dates)} new partition(s) since the newest run's data end {end} "
                             f"(< {rule.min_new_partitions})")  # fmt: skip
    last = float(context.cursor) if context.cursor else None
    now = time.time()
    if last is not None and now - last < rule.min_minutes_between_runs * 60:
        return dg.SkipReason(f"rate limit: the last retrain was requested {(now - last) / 60:.1f} min ago "
                             f"(< {rule.min_minutes_between_runs})")  # fmt: skip
    context.update_cursor(repr(now))
    tags = {REASON: "new data", "foxlake/partitions": ",".join(dates)[:2000], "foxlake/data_end": str(end)}
    return dg.RunRequest(run_key=f"new-data-{dates[-1]}-{len(dates)}", tags=tags, run_config=IN_PROCESS)


@dg.sensor(job=retrain_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.STOPPED)
def retrain_on_decay(context: dg.SensorEvaluationContext, lake: LakeResource):
    """A retrain when a traded target's realised IC is significantly below its holdout IC (``loop.decay``), at
    most once per target per ``loop.decay.cooldown_cycles`` engine cycles (cursor: target -> cycle it fired).
    The evidence goes into the run's tags and, as a ``decay_detected`` event, into the ledger."""
    cfg = lake.run_config()
    account = EngineConfig.model_validate(cfg.live).account
    if not ledger_file(lake.results(), account).exists():
        return dg.SkipReason(f"no ledger for account {account!r} yet")
    fired: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    rule = loop_config(cfg.loop).decay
    decays = ledger_decay(lake.results(), account, rule)
    due = out_of_cooldown(decays, fired, rule)
    if not due:
        flagged = [d.target for d in decays if d.decayed]
        return dg.SkipReason(f"in cooldown: {flagged}" if flagged else "no traded target has decayed")
    requests = []
    for d in due:
        m = d.models[0]
        summary = (f"{d.target}: realised IC {m.realised_mean_ic:+.4f} over {m.n_horizons} horizons vs holdout "
                   f"{m.holdout_ic:+.4f} (t {m.t_stat:.2f}, p {m.p_value:.2g})")  # fmt: skip
        append_event(lake.results(), account, "decay_detected", summary, "warning", **d.evidence())
        fired[d.target] = d.last_cycle
        tags = {REASON: "decay", "foxlake/target": d.target, "foxlake/evidence": summary,
                "foxlake/ledger_cycle": str(d.last_cycle)}  # fmt: skip
        requests.append(dg.RunRequest(run_key=f"decay-{d.target}-{d.last_cycle}", tags=tags, run_config=IN_PROCESS))
    context.update_cursor(json.dumps(fired, sort_keys=True))
    return dg.SensorResult(run_requests=requests)


LOOP_SENSORS = [landing_sensor, retrain_on_new_data, retrain_on_decay]
