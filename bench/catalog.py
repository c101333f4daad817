"""Benchmark the DuckDB catalog against a file-walk loader (glob + json.load of every model_meta, as the original
FoxML loader did), in one run.

Run from the repository root::

    .venv/bin/python bench/catalog.py                          # N = 1,000, 10,000 and 50,000 metas
    .venv/bin/python bench/catalog.py --sizes 1000 10000       # a subset

For each N it writes N synthetic model directories in the spec's layout (``catalog.synthetic``: model file,
model_meta.json, reproducibility.json, fingerprints.json, plus manifests and routing files) and measures:

* **pick-best**: the built-in ``holdout_best_per_view`` policy (per target/view/symbol, among complete runs
  whose interval equals the live data's with a verified checksum and holdout metrics, tradable targets only:
  the newest run that trained the target and view, above the holdout floor, best holdout pick_score). *Warm*:
  the query on an open connection (result fetched); *cold*: ``live.loader.select_models`` (open the catalog file,
  query, close). Baseline: ``file_walk_pick_best``, which globs every model_meta.json and manifest.json,
  json-loads them and picks in Python (it cannot check checksums without hashing every model file; with
  every checksum valid, both pick the same models, which the bench asserts).
* **full index**: ``build_catalog(full=True)`` in a fresh process (``import catalog`` not timed), the median
  of 3 such processes (each printed); the generated files are synced to disk first, so the kernel's writeback
  of them is not measured;
* **no-change re-index**: ``build_catalog`` again, nothing changed (median of 5);
* **incremental**: a new run with N/100 models written, then ``build_catalog``;
* **peak RSS** of the indexing process (``VmHWM``) and of its largest worker process.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.schema import MIN_HOLDOUT_IC, MIN_HOLDOUT_T  # noqa: E402 - after the path is set

POLICY = "holdout_best_per_view"
INTERVAL = 5.0
GOALS_AT_10K = {"pick_warm_ms": 3.0, "ratio_warm": 500.0, "full_s": 1.0, "nochange_s": 0.1, "rss_mb": 500.0}


# ----------------------------------------------------------------------------------------------------------------------
# the baseline: walk the files, as the original loader did
# ----------------------------------------------------------------------------------------------------------------------


def file_walk_pick_best(root: str, interval_minutes: float) -> list[str]:
    """``holdout_best_per_view`` at ``interval_minutes``, from the files alone."""
    complete, stamp = {}, {}
    for path in glob.glob(os.path.join(root, "runs", "*", "*", "manifest.json")):
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        index = doc.get("target_index") or {}
        run_dir = os.path.relpath(os.path.dirname(path), root)
        complete[run_dir] = bool(index) and all(e.get("status") == "complete" for e in index.values())
        stamp[run_dir] = (doc.get("timestamp") or "", run_dir)
    candidates = []
    pattern = os.path.join(root, "runs", "*", "*", "targets", "*", "models", "**", "model_meta.json")
    for path in glob.glob(pattern, recursive=True):
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        model_dir = os.path.relpath(os.path.dirname(path), root)
        run_dir = "/".join(model_dir.split("/")[:3])
        m = doc["metrics"]
        if not complete.get(run_dir) or doc.get("interval_minutes") != interval_minutes:
            continue
        if m.get("evaluated_on") != "holdout" or doc.get("research_only"):
            continue
        candidates.append((doc, m, model_dir, run_dir))
    newest: dict[tuple, tuple] = {}
    for doc, _m, _d, run_dir in candidates:
        key = (doc["target"], doc.get("view"))
        newest[key] = max(newest.get(key, ("", "")), stamp[run_dir])
    best: dict[tuple, tuple] = {}
    for doc, m, model_dir, run_dir in candidates:
        if newest[(doc["target"], doc.get("view"))][1] != run_dir:
            continue
        if not (m["mean_IC"] > MIN_HOLDOUT_IC and m["t_stat"] >= MIN_HOLDOUT_T):
            continue
        key = (doc["target"], doc.get("view"), doc.get("symbol") or "")
        score = m["t_stat"] if doc.get("view") == "SYMBOL_SPECIFIC" else m["IC_IR"]
        rank = (score, m["mean_IC"], _Desc(model_dir))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, model_dir)
    return sorted(v[1] for v in best.values())


class _Desc(str):
    """A string that sorts backwards (ties go to the smallest model_dir, as in the SQL)."""

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:
        return str.__lt__(self, other)


# ----------------------------------------------------------------------------------------------------------------------
# the indexing side, measured in a fresh process
# ----------------------------------------------------------------------------------------------------------------------


def index_worker(root: str, n: int) -> dict:
    """Full index, no-change re-index and an incremental index in this (fresh) process; peak RSS."""
    import resource

    from catalog import build_catalog
    from catalog.synthetic import generate

    t = time.perf_counter()
    full = build_catalog(root, full=True)
    full_s = time.perf_counter() - t
    nochange = []
    for _ in range(5):
        t = time.perf_counter()
        rep = build_catalog(root)
        nochange.append(time.perf_counter() - t)
        assert rep.mode == "unchanged", rep
    extra = generate(root, max(1, n // 100), seed=7, first_run=100_000)
    time.sleep(0.05)  # the new files are older than the next index's clock tick (not racy)
    t = time.perf_counter()
    inc = build_catalog(root)
    inc_s = time.perf_counter() - t
    assert inc.mode == "incremental" and inc.models == full.models + extra.n_models, (inc, full, extra.n_models)
    # back to the N metas the pick-best measures
    for run_dir in extra.run_dirs:
        shutil.rmtree(os.path.join(root, run_dir))
    rep = build_catalog(root)
    assert rep.models == full.models, rep
    self_kb = _peak_rss_kb()
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "models": full.models,
        "rejected": full.rejected,
        "full_s": full_s,
        "nochange_s": statistics.median(nochange),
        "incremental_s": inc_s,
        "incremental_models": extra.n_models,
        "rss_mb": self_kb / 1024,
        "worker_rss_mb": child_kb / 1024,
    }


def _peak_rss_kb() -> int:
    """This process's peak RSS. Not ``ru_maxrss``: after fork+exec Linux carries the parent's high-water mark
    into the child's ``ru_maxrss`` (the bench process's own memory); ``VmHWM`` is this process's alone."""
    import resource

    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_index(root: str, n: int) -> dict:
    fulls = []
    for _ in range(2):  # two more fresh-process full builds; the median of three is reported
        fulls.append(_run_worker(["--full-worker", root])["full_s"])
    row = _run_worker(["--index-worker", root, str(n)])
    fulls.append(row["full_s"])
    row["full_runs_s"] = fulls
    row["full_s"] = statistics.median(fulls)
    return row


def full_worker(root: str) -> dict:
    """One full index in this (fresh) process."""
    from catalog import build_catalog

    t = time.perf_counter()
    build_catalog(root, full=True)
    return {"full_s": time.perf_counter() - t}


def _run_worker(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------------------
# pick-best
# ----------------------------------------------------------------------------------------------------------------------


def _median_ms(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, result


def measure_pick(root: str) -> dict:
    from catalog import connect
    from live.loader import select_models
    from live.policies import policy_sql

    query = policy_sql(POLICY)
    params = {"interval_minutes": INTERVAL}
    con = connect(root)
    try:
        con.execute(query, params).fetchall()  # first query: warms DuckDB's caches
        warm_ms, warm = _median_ms(lambda: [r[0] for r in con.execute(query, params).fetchall()], 50)
    finally:
        con.close()
    cold_ms, cold = _median_ms(lambda: select_models(root, POLICY, INTERVAL), 20)
    walk_ms, walked = _median_ms(lambda: file_walk_pick_best(root, INTERVAL), 3)
    if sorted(warm) != walked or sorted(cold) != walked:
        raise AssertionError("the catalog and the file walk picked different models")
    return {"picked": len(walked), "pick_warm_ms": warm_ms, "pick_cold_ms": cold_ms, "walk_ms": walk_ms}


# ----------------------------------------------------------------------------------------------------------------------


def _machine() -> str:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    import duckdb
    import polars

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {cpus} CPU(s) available, load average {load:.2f}; "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}, polars {polars.__version__}"
    )


def run(sizes: list[int], workdir: str | None, keep: bool) -> int:
    from catalog.synthetic import generate

    print(f"machine: {_machine()}", flush=True)
    rows = []
    for n in sizes:
        root = tempfile.mkdtemp(prefix=f"foxlake-bench-{n}-", dir=workdir)
        try:
            t = time.perf_counter()
            gen = generate(root, n)
            files = sum(len(f) for _, _, f in os.walk(os.path.join(root, "runs")))
            print(f"N={n:,}: wrote {gen.n_models:,} model dirs in {len(gen.run_dirs)} runs ({files:,} files) "
                  f"in {time.perf_counter() - t:.1f}s", flush=True)  # fmt: skip
            os.sync()  # the kernel writes the new files back now, not while the index is timed
            time.sleep(0.05)
            idx = measure_index(root, n)
            pick = measure_pick(root)
            row = {"n": n, "files": files, **idx, **pick}
            row["ratio_warm"] = row["walk_ms"] / row["pick_warm_ms"]
            row["ratio_cold"] = row["walk_ms"] / row["pick_cold_ms"]
            rows.append(row)
            print(
                f"  full index {row['full_s']:.3f}s (runs {', '.join(f'{x:.3f}' for x in row['full_runs_s'])}), "
                f"no-change {row['nochange_s'] * 1000:.1f}ms, incremental "
                f"(+{row['incremental_models']}) {row['incremental_s']:.3f}s, peak RSS {row['rss_mb']:.0f}MB "
                f"(worker {row['worker_rss_mb']:.0f}MB); pick-best warm {row['pick_warm_ms']:.2f}ms, cold "
                f"{row['pick_cold_ms']:.1f}ms, file walk {row['walk_ms']:.0f}ms ({row['picked']} models)",
                flush=True,
            )
        finally:
            if keep:
                print(f"  kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
    print()
    print("| N metas | files | full index (s) | no-change re-index (ms) | incremental +1% (s) | peak RSS (MB) | "
          "pick-best warm (ms) | pick-best cold (ms) | file walk (ms) | walk / warm | walk / cold |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['files']:,} | {r['full_s']:.2f} | {r['nochange_s'] * 1000:.0f} | "
            f"{r['incremental_s']:.2f} | {r['rss_mb']:.0f} (worker {r['worker_rss_mb']:.0f}) | "
            f"{r['pick_warm_ms']:.2f} | {r['pick_cold_ms']:.1f} | {r['walk_ms']:.0f} | {r['ratio_warm']:,.0f}x | "
            f"{r['ratio_cold']:,.0f}x |"
        )
    at10k = next((r for r in rows if r["n"] == 10_000), None)
    if at10k:
        checks = {
            "pick-best warm <= 3 ms": at10k["pick_warm_ms"] <= GOALS_AT_10K["pick_warm_ms"],
            "walk / warm >= 500x": at10k["ratio_warm"] >= GOALS_AT_10K["ratio_warm"],
            "full index <= 1 s": at10k["full_s"] <= GOALS_AT_10K["full_s"],
            "no-change re-index <= 0.1 s": at10k["nochange_s"] <= GOALS_AT_10K["nochange_s"],
            "peak RSS < 500 MB": max(at10k["rss_mb"], at10k["worker_rss_mb"]) < GOALS_AT_10K["rss_mb"],
        }
        print("\ngoals at 10,000: " + ", ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in checks.items()))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--dir", default=None, help="where to write the synthetic RESULTS (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic RESULTS folders")
    parser.add_argument("--index-worker", nargs=2, metavar=("ROOT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--full-worker", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full_worker:
        print(json.dumps(full_worker(args.full_worker)))
        return 0
    if args.index_worker:
        print(json.dumps(index_worker(args.index_worker[0], int(args.index_worker[1]))))
        return 0
    return run(args.sizes, args.dir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
