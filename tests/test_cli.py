"""The command line as a person meets it: global options anywhere, help on every option, a version, readable
"choose a command" messages, user errors in two lines with status 2 and nothing written, tables whose paths paste
into the next command, filters that ignore case and say why nothing matched."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from foxlake.cli import build_parser, hoist_global_options

REPO = Path(__file__).resolve().parents[1]


def _foxlake(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foxlake.cli", *args], capture_output=True, text=True, cwd=cwd or REPO, timeout=300
    )


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its sha256 (what "nothing already written changed" compares)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith((".lock", ".wal"))
    }


def _assert_user_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("foxlake")]
    assert lines and lines[0].startswith("foxlake: error: ") and len(out.stderr.strip().splitlines()) <= 4, out.stderr
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


def test_every_option_has_help_and_the_version_prints() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                missing.append((" ".join(path), action.option_strings or action.dest))

    walk(build_parser(), [])
    assert not missing, missing
    out = _foxlake("--version")
    assert out.returncode == 0 and re.fullmatch(r"foxlake \d+\.\d+\.\d+\S*\n", out.stdout), out.stdout


def test_global_options_may_come_anywhere() -> None:
    assert hoist_global_options(["catalog", "runs", "--results", "R", "--json", "--debug"]) == [
        "--results", "R", "--debug", "catalog", "runs", "--json",
    ]  # fmt: skip
    assert hoist_global_options(["catalog", "sql", "--results=R", "select 1"]) == [
        "--results=R", "catalog", "sql", "select 1",
    ]  # fmt: skip
    args = build_parser().parse_args(hoist_global_options(["catalog", "runs", "--results", "R"]))
    assert args.results == "R"


def test_a_missing_subcommand_says_which_to_choose() -> None:
    out = _foxlake("catalog")
    assert out.returncode == 2 and "choose a command: index, sql, models, runs, best, rejected, alias" in out.stderr


def test_bad_sql_is_two_lines_with_duckdbs_hint_and_writes_nothing(results_copy: Path) -> None:
    before = _digest(results_copy)
    typo = _foxlake("catalog", "sql", "select * from modles", "--results", str(results_copy))
    _assert_user_error(typo, 'Did you mean "models"')
    write = _foxlake("catalog", "sql", "delete from models", "--results", str(results_copy))
    _assert_user_error(write, "read-only")
    assert _digest(results_copy) == before
    debug = _foxlake("--debug", "catalog", "sql", "select * from modles", "--results", str(results_copy))
    assert debug.returncode == 2 and "Traceback" in debug.stderr  # --debug shows it


def test_a_bad_config_and_an_unknown_policy_name_the_file_and_field(results_copy: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_id: x\nholdout: {fraction: 2.5}\nfamiles: [Ridge]\n")
    before = _digest(results_copy)
    out = _foxlake("materialize", "--config", str(bad), "--results", str(results_copy))
    _assert_user_error(out, str(bad), "holdout.fraction", "famil")
    out = _foxlake("live", "run", "--policy", "no_such_policy", "--results", str(results_copy))
    _assert_user_error(out, "unknown selection policy 'no_such_policy'", "holdout_per_family")
    assert _digest(results_copy) == before


def test_a_bad_landing_file_names_file_line_and_column_and_the_lake_is_unchanged(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS"
    landing = results / "lake" / "landing"
    landing.mkdir(parents=True)
    rows = ["ts,symbol,open,high,low,close,volume"]
    rows += [f"2024-01-02T14:{35 + 5 * (i % 5):02d}:00Z,S{i // 5},10,11,9,10.5,100" for i in range(10)]
    rows[7] = rows[7].replace(",100", ",-5")  # line 8 of the file: a negative volume
    (landing / "bad.csv").write_text("\n".join(rows) + "\n")
    before = _digest(results)
    env_home = tmp_path / "dagster"
    env_home.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "foxlake.cli", "materialize", "--config", "configs/landing-example.yaml",
         "--results", str(results)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**__import__("os").environ, "DAGSTER_HOME": str(env_home)},
    )  # fmt: skip
    _assert_user_error(out, "bad.csv", "line 8", "volume")
    assert not (results / "lake" / "bars").exists() or not any((results / "lake" / "bars").rglob("*.parquet"))
    assert {k: v for k, v in _digest(results).items() if k.startswith("lake/landing/bad")} == {
        k: v for k, v in before.items() if k.startswith("lake/landing/bad")
    }


def test_a_model_dir_from_the_models_table_pastes_into_alias_set(results_copy: Path) -> None:
    table = _foxlake("catalog", "models", "--family", "ridge", "--view", "cross_sectional", "--results",
                     str(results_copy))  # fmt: skip
    assert table.returncode == 0, table.stderr
    rows = [ln for ln in table.stdout.splitlines() if ln.startswith("runs/")]
    assert rows and all("…" not in ln for ln in rows)
    model_dir = rows[0].split(" | ")[0].strip()
    assert "family=Ridge" in model_dir and "view=CROSS_SECTIONAL" in model_dir  # the filters ignored case
    out = _foxlake("catalog", "alias", "set", "pasted", model_dir, "--results", str(results_copy))
    assert out.returncode == 0, out.stderr
    shown = _foxlake("catalog", "alias", "list", "--json", "--results", str(results_copy))
    assert {"alias": "pasted", "model_dir": model_dir} in [
        {k: r[k] for k in ("alias", "model_dir")} for r in json.loads(shown.stdout)
    ]


def test_a_filter_that_matches_nothing_says_why(results_copy: Path) -> None:
    out = _foxlake("catalog", "models", "--family", "ridgee", "--results", str(results_copy))
    assert out.returncode == 0 and "(0 rows)" in out.stdout
    assert "no model has family = 'ridgee'" in out.stderr and "Ridge" in out.stderr


@pytest.mark.parametrize("argv", [["catalog", "runs"], ["live", "status"]])
def test_results_after_the_subcommand_is_the_same_as_before(results_copy: Path, argv: list[str]) -> None:
    before = _foxlake("--results", str(results_copy), *argv, "--json")
    after = _foxlake(*argv, "--json", "--results", str(results_copy))
    assert before.returncode == after.returncode and before.stdout == after.stdout


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize("tty", [True, False])
def test_the_progress_view_only_moves_forward(tmp_path: Path, tty: bool) -> None:
    """Several ops of one stage report their own counts (100 -> 20 -> 100 -> 33): the view shows only progress."""
    from foxlake.progress_view import ProgressView
    from ml.progress import training_events_path

    events = [("stage_change", "ranking", 0.0, None)]
    events += [("progress", "ranking", p, f"t{i}") for i, p in enumerate([14.3, 57.1, 100.0])]
    events += [("stage_change", "training", 0.0, None)]
    events += [("progress", "training", p, f"t{i}") for i, p in enumerate([100.0, 20.0, 50.0, 100.0, 33.0])]
    path = training_events_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    stream = _Stream(tty)
    with ProgressView(tmp_path, stream=stream, poll_seconds=0.05):
        path.write_text(
            "".join(
                json.dumps({"event_type": k, "stage": s, "progress_pct": p, "current_target": t}) + "\n"
                for k, s, p, t in events
            )
        )
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # the terminal's redraws, as text
    lines = text.splitlines()
    if tty:  # a live display: every redraw shows each stage's bar and the whole run's, never going back
        for stage in ("ranking", "training", "whole run"):
            shown = [float(m[1]) for ln in lines if (m := re.search(rf"^\s+{stage}\s+\S*\s+(\d+\.\d)%", ln))]
            assert shown and shown == sorted(shown), (stage, shown)
            assert shown[-1] == (100.0 if stage != "whole run" else 66.7), (stage, shown)  # 2 of 3 stages
        assert re.search(r"ranking\s+\S+\s+100\.0% t2", text) and "training" in text
    else:  # a stage's start and its end, one line each, only forward
        assert len(lines) == 4, lines
        for stage in ("ranking", "training"):
            shown = [float(re.search(r"(\d+\.\d)%", ln).group(1)) for ln in lines if f"% {stage}" in ln]
            assert shown == [0.0, 100.0], lines
        assert "ranking started" in text and "stage ranking" not in text


def test_init_lays_out_a_folder_and_never_overwrites_its_config(tmp_path: Path) -> None:
    out = _foxlake("init", str(tmp_path / "mine"), "--json")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    landing = Path(made["landing"])
    assert landing == tmp_path / "mine" / "RESULTS" / "lake" / "landing" and landing.is_dir()
    config = Path(made["config"])
    from ml.config import load_run_config

    assert load_run_config(config).data_source == "landing"  # a config that loads, for landed files
    config.write_text(config.read_text() + "# my edits\n")
    before = _digest(tmp_path / "mine")
    _assert_user_error(_foxlake("init", str(tmp_path / "mine")), "foxlake.yaml: exists", "nothing was written")
    assert _digest(tmp_path / "mine") == before


def test_completion_scripts_know_the_commands_and_their_options() -> None:
    out = _foxlake("completion", "bash")
    assert out.returncode == 0, out.stderr
    for word in ("materialize", "catalog", "alias", "--pool-wait-seconds", "--results"):
        assert word in out.stdout, word
    assert _foxlake("completion", "fish").returncode == 2  # argparse: not one of bash, zsh, tcsh


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """``foxlake completion bash | head -1``: the pipe closes before foxlake writes; it stops quietly (status 141)."""
    proc = subprocess.Popen([sys.executable, "-m", "foxlake.cli", "completion", "bash"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()  # the reader is gone before foxlake has imported anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and "Traceback" not in err and "BrokenPipe" not in err, (proc.returncode, err)
