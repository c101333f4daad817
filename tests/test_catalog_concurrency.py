"""Readers never wait: while 10,000 model metas are indexed (incrementally, then rebuilt in full), a second
process queries the catalog every 10 ms through the Python API, the live loader's policy and an alias, and
`foxlake catalog sql` runs alongside; not one query may fail or see a half-written catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from catalog import build_catalog, set_alias, sql
from catalog.synthetic import generate
from tests.conftest import REPO

N_METAS = 10_000
BATCHES = 4

READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from catalog import sql
    from live.loader import select_models

    results, stop = sys.argv[1], Path(sys.argv[2])
    queries, failures, counts, errors = 0, 0, [], []
    while not stop.exists():
        t0 = time.perf_counter()
        try:
            n = sql(results, "select count(*) as n from models")["n"][0]
            picked = select_models(results, "holdout_best_per_view", 5.0)
            champion = select_models(results, "alias:champion")
            assert len(champion) == 1
            if n:
                assert picked, "a catalog with models picks some"
            counts.append(int(n))
            queries += 3
        except Exception as exc:  # noqa: BLE001 - counted, reported
            failures += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        time.sleep(max(0.0, 0.010 - (time.perf_counter() - t0)))
    print(json.dumps({"queries": queries, "failures": failures, "counts": counts, "errors": errors[:5]}))
    """
)


def test_readers_never_fail_while_10000_metas_are_indexed(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS"
    seed = generate(results, 12, targets_per_run=1, n_symbols=1, families=("Ridge", "MLP", "LightGBM"))
    build_catalog(results)
    set_alias(results, "champion", seed.model_dirs[0])  # the reader resolves it on every query
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(results), str(stop)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    cli_failures = []
    try:
        time.sleep(1.5)  # the reader is querying before the first write
        per_batch = N_METAS // BATCHES
        for b in range(BATCHES):
            generate(results, per_batch, seed=10 + b, first_run=100 * (b + 1))
            rep = build_catalog(results)
            assert rep.mode == "incremental"
            cli = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "foxlake.cli",
                    "--results",
                    str(results),
                    "catalog",
                    "sql",
                    "select count(*) as n from models",
                    "--json",
                ],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            rep = build_catalog(results, full=b == BATCHES - 1)  # the CLI reads while this one writes
            out, err = cli.communicate(timeout=120)
            if cli.returncode != 0:
                cli_failures.append(err)
            else:
                assert json.loads(out)[0]["n"] >= 12 + b * per_batch
        time.sleep(0.5)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failures"] == 0, summary["errors"]
    assert not cli_failures, cli_failures
    assert summary["queries"] >= 100, summary["queries"]
    counts = summary["counts"]
    assert counts == sorted(counts), "a reader never sees the catalog go back in time"
    assert counts[-1] == 12 + N_METAS == sql(results, "select count(*) as n from models")["n"][0]
