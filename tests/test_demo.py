"""``make demo`` as a person sees it: its output read through a filter, and its training run as the instance
recorded it (the ``training_pipeline`` job, steps in their own processes, two of them at once)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"\[[#.]{30}\]\s+(?P<pct>[\d.]+)% (?P<stage>\S+)")
NOT_FOR_A_PERSON = re.compile(r"Warning: |warnings\.warn|Traceback \(most recent call last\)| - dagster - ")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, Path, Path]:
    """``foxlake demo`` (what ``make demo`` runs once installed) in a folder of its own: output, RESULTS, home."""
    root = tmp_path_factory.mktemp("demo")
    results, home = root / "RESULTS", root / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("PYTHONWARNINGS", None)
    cmd = [str(Path(sys.executable).parent / "foxlake"), "--results", str(results), "demo"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr, results, home


def test_the_demo_prints_no_warning_no_traceback_and_progress_only_forward(demo) -> None:
    text, results, _ = demo
    lines = text.splitlines()
    assert not [line for line in lines if NOT_FOR_A_PERSON.search(line)], "\n".join(lines[:80])
    summary = [line for line in lines if "library warning(s) written to" in line]
    log = results / "logs" / "foxlake.log"
    if summary:  # the warnings are in the log, counted
        (line,) = summary
        assert int(line.split("foxlake: ", 1)[1].split()[0]) == len(re.findall(r": \w*Warning: ", log.read_text()))
    seen: dict[str, float] = {}
    for line in lines:
        if m := PROGRESS.search(line):
            stage, pct = m["stage"], float(m["pct"])
            assert pct >= seen.get(stage, 0.0), f"{stage} went back to {pct}% after {seen[stage]}%"
            seen[stage] = pct
    assert seen == {"ranking": 100.0, "feature_selection": 100.0, "training": 100.0}  # every stage ends, honestly
    assert "run complete: 5 target(s) trained" in text and "net P&L" in text


def test_the_demo_trains_under_training_pipeline_with_the_multiprocess_executor(demo, monkeypatch) -> None:
    text, _, home = demo
    run_id = re.search(r"Dagster run ([0-9a-f-]{36})", text)[1]
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance's dagster.yaml reads it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.job_name == "training_pipeline" and run.status == dg.DagsterRunStatus.SUCCESS
        assert "multiprocess" in run.run_config["execution"]["config"]
        records = instance.all_logs(run_id)
        events = [r.dagster_event for r in records if r.dagster_event]
        starts = [e for e in events if e.event_type_value == "STEP_START"]
        pids = {event.pid for event in starts}
        assert os.getpid() not in pids and len(pids) >= 10  # every step in a process of its own
        stats = [s for s in instance.get_run_step_stats(run_id) if "train_model_group" in s.step_key]
    assert len(stats) == 6
    # two groups trained at once: some group started before another had finished
    spans = sorted((s.start_time, s.end_time) for s in stats)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
