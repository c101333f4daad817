"""The README's "Your own data" section, followed to the letter: a CSV of two symbols goes through to models and a
paper-trading replay of the bars that land after them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from ml.synthetic import SyntheticMarketConfig, make_market

REPO = Path(__file__).resolve().parents[1]


def _readme_steps() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_a_two_symbol_csv_goes_through_to_models_and_a_replay_following_the_readme(tmp_path: Path) -> None:
    # "your" bars: two symbols of 5-minute bars (a strong volume signal, so that each symbol's own model has skill)
    bars = make_market(SyntheticMarketConfig(n_symbols=2, n_bars=3120, seed=4, rho_volume=0.15)).drop("vwap", "trades")
    cut = bars["ts"].unique().sort()[2964]
    bars.filter(pl.col("ts") < cut).write_csv(tmp_path / "my_bars.csv")
    bars.filter(pl.col("ts") >= cut).write_csv(tmp_path / "my_newer_bars.csv")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "FOXLAKE_RESULTS": str(tmp_path / "RESULTS")}
    outputs = []
    for step in _readme_steps():
        argv = shlex.split(step)
        if argv[0] == "mkdir":
            (tmp_path / argv[-1]).mkdir(parents=True, exist_ok=True)
        elif argv[0] == "cp":
            shutil.copy(tmp_path / argv[1], tmp_path / argv[2])
        else:
            assert argv[0] == "foxlake", step
            out = subprocess.run([sys.executable, "-m", "foxlake.cli", *argv[1:]], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
            assert out.returncode == 0, (step, out.stderr)
            assert "Traceback" not in out.stderr and "Warning" not in out.stderr, out.stderr
            outputs.append(out.stdout)
    assert "mydata/foxlake.yaml" in outputs[0] and (tmp_path / "mydata" / "foxlake.yaml").is_file()  # foxlake init
    (models,) = [out for out in outputs if "model_dir" in out]  # foxlake catalog models
    assert "family=Ridge" in models and "symbol=SYM000" in models and "symbol=SYM001" in models
    replay = outputs[-1]
    traded = re.search(r"traded (\d+) bar\(s\)", replay)
    assert traded and int(traded.group(1)) == 156, replay
    assert "models: 2 traded" in replay and "in-sample cycles: 0" in replay
