"""Index the files under RESULTS (the record) into ``RESULTS/catalog.duckdb`` (an index, rebuildable at any time).

* **Incremental.** A quick check against the snapshot of the last index (:mod:`catalog.scan`) finds the model
  directories, manifests and routing files that are new, changed or gone; only those are read again. With
  nothing to do, nothing is written. ``full=True`` rebuilds from the files; both give identical rows.
* **Readers never wait.** A build writes a copy of the catalog (a fresh file for a full build, a copy of the
  current one for an incremental one) in the same folder and swaps it in with ``os.replace``: readers keep
  the snapshot they opened, new readers open the new file, nobody sees a missing or half-written file.
  Writers take an exclusive ``flock`` on ``RESULTS/.catalog.lock``, so two index runs never interleave.
* **Validated.** Every document goes through ``contracts``; a file that breaks a contract, or a row the
  catalog cannot store, lands in ``rejected`` with its reason and never aborts the index. Model checksums
  are verified at index time (``checksum_ok``).
* **Fast.** Files are read and validated in worker processes (fork) for large batches, rows are inserted
  in bulk through Arrow tables.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from catalog import units
from catalog.alias_file import ALIAS_FILE, read_alias_file
from catalog.scan import (
    STATE_FILE,
    Delta,
    Listing,
    Snapshot,
    fs_now_ns,
    is_models_dir,
    quick_check,
    read_state,
    walk,
    write_state,
)
from catalog.schema import PICKS, SCHEMA_VERSION, TABLES, VIEWS
from contracts.io import fsync_dir
from contracts.paths import CATALOG_FILE

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: the Dagster pool still serialises writers
    fcntl = None

LOCK_FILE = ".catalog.lock"
WORKERS_ENV = "FOXLAKE_CATALOG_WORKERS"
_PARALLEL_MIN = 1500  # model directories below which worker processes cost more than they save
_MODELS_PER_SUBTREE = 50  # a guess before walking: full builds use workers from ~30 targets on
_CHUNK = 250
_SUBTREE_JOBS = 16  # jobs a full build splits the models/ subtrees into
_FLUSH_ROWS = 2048  # model rows per insert (whole row groups; the rest waits for the next one)
_ROW_GROUP = 2048
# The on-disk format the catalog is written in: any DuckDB from 1.4 on (library or plain CLI) opens the file.
STORAGE_VERSION = "v1.4.0"


def catalog_path(results: str | Path) -> Path:
    """``RESULTS/catalog.duckdb``."""
    return Path(results) / CATALOG_FILE


@dataclass
class IndexReport:
    """What one index run did and what the catalog holds afterwards.

    Attributes:
        runs, models, routing_decisions, rejected: rows in the catalog after the run.
        mode: ``full`` (rebuilt from the files), ``incremental`` or ``unchanged`` (nothing written).
        model_dirs_read, files_read: model directories and manifest/routing files read in this run.
        seconds: wall time of the run.
    """

    runs: int = 0
    models: int = 0
    routing_decisions: int = 0
    rejected: int = 0
    path: str = ""
    mode: str = "full"
    model_dirs_read: int = 0
    files_read: int = 0
    aliases: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def index_lock(root: Path) -> Iterator[None]:
    """Exclusive lock of the catalog's writer (blocks until the other writer is done)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def build_catalog(
    results: str | Path, *, full: bool = False, verify: bool = False, workers: int | None = None
) -> IndexReport:
    """Bring ``RESULTS/catalog.duckdb`` up to date with the files under ``RESULTS/runs``.

    Args:
        results: the RESULTS root.
        full: rebuild from the files instead of applying what changed (the rows come out identical).
        verify: stat every indexed file, not only directories and model files (catches any in-place edit).
        workers: processes that read and validate files; default ``$FOXLAKE_CATALOG_WORKERS``, else the
            CPUs available for large batches and 1 (in-process) for small ones.
    """
    root = Path(results).resolve()
    with index_lock(root):
        return index_locked(root, full=full, verify=verify, workers=workers)


def _sig(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


SPOOL_PREFIX = "foxlake-catalog-"
"""Worker spool directories are ``<shm or temp>/foxlake-catalog-<pid of the writer>-<random>``."""


def _cleanup(root: Path) -> None:
    """At the start of every index: remove the temp catalogs a crashed writer left behind (we hold the lock: no
    other writer of this RESULTS is running), and every worker spool directory whose writer process is gone (a
    spool of a live writer, e.g. of another RESULTS, stays)."""
    for p in root.glob(".catalog.*.duckdb*"):
        with contextlib.suppress(OSError):
            p.unlink()
    for base in _spool_bases():
        for p in Path(base).glob(f"{SPOOL_PREFIX}*"):
            if not _writer_alive(p.name[len(SPOOL_PREFIX) :].split("-", 1)[0]):
                shutil.rmtree(p, ignore_errors=True)


def _writer_alive(pid_text: str) -> bool:
    try:
        pid = int(pid_text)
    except ValueError:
        return False  # not named by a writer's pid: nobody owns it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _spool_bases() -> list[str]:
    shm = "/dev/shm"
    bases = [shm] if os.path.isdir(shm) and os.access(shm, os.W_OK) else []
    return [*bases, tempfile.gettempdir()]


def index_locked(root: Path, *, full: bool = False, verify: bool = False, workers: int | None = None) -> IndexReport:
    """:func:`build_catalog` for a caller that already holds :func:`index_lock`."""
    t0 = time.perf_counter()
    _cleanup(root)  # what a crashed writer left, at every start (not only before a write)
    ref_ns = fs_now_ns()
    cat = catalog_path(root)
    state_path = root / STATE_FILE
    cat_sig = _sig(cat)
    alias_sig = _sig(root / ALIAS_FILE)
    snap = None if full or cat_sig is None else read_state(str(state_path))
    if snap is not None and (
        snap.header.get("schema_version") != SCHEMA_VERSION or snap.header.get("catalog") != cat_sig
    ):
        snap = None  # the catalog was replaced, copied or written by another version: rebuild
    report = IndexReport(path=str(cat))
    if snap is None:
        return _full_build(root, ref_ns, alias_sig, workers, report, t0)
    delta = quick_check(str(root), snap, verify)
    aliases_changed = snap.header.get("aliases") != alias_sig
    catalog_changes = bool(delta.dirty_models or delta.dirty_files or aliases_changed)
    if not catalog_changes:
        if delta.listing.dirs or delta.removed_dirs or delta.racy_checked:  # only the snapshot moves on
            new = _next_snapshot(snap, delta, [], ref_ns)
            _write_state(state_path, new, snap.header | {"catalog": cat_sig})
        counts = snap.header.get("counts", {})
        report.__dict__.update({k: counts.get(k, 0) for k in ("runs", "models", "routing_decisions", "rejected")})
        report.aliases = counts.get("aliases", 0)
        report.mode = "unchanged"
        report.seconds = time.perf_counter() - t0
        return report
    return _incremental(root, snap, delta, ref_ns, alias_sig, aliases_changed, workers, report, t0)


# --- builds -----------------------------------------------------------------------------------------------------


def _open_temp(root: Path, copy_of: Path | None) -> tuple[str, duckdb.DuckDBPyConnection]:
    """A new temp catalog beside the live one (a copy of ``copy_of`` when given), open for writing.

    Small row groups let DuckDB write (and compress) rows while inserting instead of in one final checkpoint.
    """
    fd, tmp = tempfile.mkstemp(prefix=".catalog.", suffix=".duckdb", dir=root)
    os.close(fd)
    if copy_of is not None:
        shutil.copyfile(copy_of, tmp)
    else:
        os.unlink(tmp)  # DuckDB creates the file itself
    con = duckdb.connect(":memory:")
    try:
        con.execute(
            f"attach '{tmp.replace(chr(39), chr(39) * 2)}' as cat "
            f"(row_group_size {_ROW_GROUP}, storage_version '{STORAGE_VERSION}')"
        )
        con.execute("use cat")
        con.execute("set memory_limit = '256MB'")  # written blocks need not stay cached: bounded memory
        con.execute("set threads = 1")
    except BaseException:
        con.close()
        _remove(tmp)
        raise
    return tmp, con


def _remove(tmp: str) -> None:
    for leftover in (tmp, tmp + ".wal"):
        with contextlib.suppress(OSError):
            os.unlink(leftover)


def _finish(con: duckdb.DuckDBPyConnection, tmp: str, cat: Path, report: IndexReport, now: datetime) -> dict:
    con.execute(PICKS)
    counts = {
        name: con.execute(f"select count(*) from {name}").fetchone()[0]
        for name in ("runs", "models", "routing_decisions", "rejected", "aliases")
    }
    con.execute(
        "insert or replace into meta values ('schema_version', ?), ('indexed_at', ?), ('mode', ?)",
        [str(SCHEMA_VERSION), now.isoformat(), report.mode],
    )
    con.execute("checkpoint cat")
    con.execute("use memory")
    con.execute("detach cat")
    con.close()
    os.replace(tmp, cat)
    with contextlib.suppress(OSError):
        os.unlink(tmp + ".wal")
    fsync_dir(cat.parent)
    report.__dict__.update(counts)
    return counts


def _write_state(path: Path, snap: Snapshot, header: dict) -> None:
    """Replace the state file atomically, without fsync: it is a cache. A torn or stale one fails validation
    or no longer matches the catalog's signature, and the next index rebuilds from the files."""
    data = write_state(str(path), snap, header)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _workers(workers: int | None, n_model_dirs: int) -> Iterator[tuple[object, str | None]]:
    """(worker pool or None, spool dir or None) for a build; both are gone afterwards."""
    pool = _start_pool(workers, n_model_dirs)
    spool = _spool_dir() if pool is not None else None
    try:
        yield pool, spool
    finally:
        _stop_pool(pool)
        if spool:
            shutil.rmtree(spool, ignore_errors=True)


@contextlib.contextmanager
def _temp_catalog(root: Path, copy_of: Path | None) -> Iterator[tuple[str, duckdb.DuckDBPyConnection]]:
    """:func:`_open_temp`; on an error the connection is closed and the temp file removed."""
    tmp, con = _open_temp(root, copy_of)
    try:
        yield tmp, con
    except BaseException:
        con.close()
        _remove(tmp)
        raise


def _save_state(root: Path, snap: Snapshot, alias_sig, counts: dict, report: IndexReport, t0: float) -> IndexReport:
    header = {"schema_version": SCHEMA_VERSION, "catalog": _sig(catalog_path(root)), "aliases": alias_sig,
              "counts": counts}  # fmt: skip
    _write_state(root / STATE_FILE, snap, header)
    report.seconds = time.perf_counter() - t0
    return report


def _full_build(root: Path, ref_ns: int, alias_sig, workers: int | None, report: IndexReport, t0: float) -> IndexReport:
    listing = Listing()
    if (root / "runs").is_dir():
        walk(str(root), "runs", listing, delegate=is_models_dir)
    sroot = str(root)
    subtrees = listing.delegated
    step = max(1, -(-len(subtrees) // _SUBTREE_JOBS))  # a few big jobs: per-job costs (frames, IPC) stay small
    work = [("subtrees", subtrees[i : i + step]) for i in range(0, len(subtrees), step)]
    stray = listing.model_dirs  # model_meta.json outside targets/<t>/models: read (and rejected) here
    work += [("models", stray[i : i + _CHUNK]) for i in range(0, len(stray), _CHUNK)]
    now = datetime.now(UTC).replace(tzinfo=None)
    with _workers(workers, len(subtrees) * _MODELS_PER_SUBTREE + len(stray)) as (pool, spool):
        jobs = [(sroot, kind, payload, i, spool) for i, (kind, payload) in enumerate(work)]
        with _temp_catalog(root, None) as (tmp, con):
            con.execute(TABLES)
            con.execute(VIEWS)
            files_tbl, dirs = _apply(con, sroot, jobs, listing.unit_files, now, pool, report, as_table=True)
            _reload_aliases(con, root, now)
            report.mode = "full"
            counts = _finish(con, tmp, catalog_path(root), report, now)
    listing.dirs.update(dirs)
    return _save_state(root, _first_snapshot(listing.dirs, files_tbl, ref_ns), alias_sig, counts, report, t0)


def _incremental(
    root: Path, snap: Snapshot, delta: Delta, ref_ns: int, alias_sig, aliases_changed: bool,
    workers: int | None, report: IndexReport, t0: float,
) -> IndexReport:  # fmt: skip
    cat = catalog_path(root)
    now = datetime.now(UTC).replace(tzinfo=None)
    sroot = str(root)
    model_dirs = sorted(delta.dirty_models)
    unit_files = sorted(delta.dirty_files)
    chunks = [model_dirs[i : i + _CHUNK] for i in range(0, len(model_dirs), _CHUNK)]
    with _workers(workers, len(model_dirs)) as (pool, spool):
        jobs = [(sroot, "models", chunk, n, spool) for n, chunk in enumerate(chunks)]
        with _temp_catalog(root, cat) as (tmp, con):
            _delete_units(con, model_dirs, [p for p, _ in unit_files])
            files, _dirs = _apply(con, sroot, jobs, unit_files, now, pool, report)
            manifests = [p for p, k in unit_files if k == units.K_MANIFEST]
            if manifests:  # lineage: a manifest written after its models names their Dagster run
                _register(con, "changed_runs", {"run_dir": [units.run_dir_of(p) for p in manifests]})
                con.execute(
                    "update models set dagster_run_id = (select r.dagster_run_id from runs r "
                    "where r.run_dir = models.run_dir) where run_dir in (select run_dir from changed_runs)"
                )
            if aliases_changed:
                _reload_aliases(con, root, now)
            report.mode = "incremental"
            counts = _finish(con, tmp, cat, report, now)
    return _save_state(root, _next_snapshot(snap, delta, files, ref_ns), alias_sig, counts, report, t0)


def _first_snapshot(dirs: dict[str, tuple[int, int]], files: pa.Table | None, ref_ns: int) -> Snapshot:
    """The snapshot of a full build, from the table of files read (no per-file Python loop)."""
    dpaths = list(dirs)
    dv = np.array([v for d in dpaths for v in dirs[d]], dtype=np.int64).reshape(-1, 2)
    if len(dpaths):
        dv[dv[:, 0] >= ref_ns, 0] = -1  # racy directories are listed again next time
    if files is None or files.num_rows == 0:
        fpaths, fv, racy, n_model = [], np.zeros((0, 4), dtype=np.int64), {}, 0
    else:
        df = pl.from_arrow(files).sort(pl.col("kind") != units.K_MODEL, maintain_order=True)  # model files first
        kind = df["kind"].to_numpy().astype(np.int64)
        mtime = df["mtime_ns"].to_numpy().astype(np.int64)
        fv = np.stack([df["size"].to_numpy(), mtime, df["ino"].to_numpy(), kind], axis=1)
        fv = np.ascontiguousarray(fv, dtype=np.int64)
        fpaths = df["path"].to_list()
        racy_idx = np.flatnonzero(mtime >= ref_ns)
        sha = df["sha256"]
        keep = np.ones(len(fpaths), dtype=bool)
        racy = {}
        for i in racy_idx:
            digest = sha[int(i)]
            if digest is None:
                keep[i] = False  # unreadable and racy: not recorded, so it is read again next time
            else:
                racy[fpaths[i]] = digest
                fv[i, 1] = -1
        if not keep.all():
            fv = fv[keep]
            fpaths = [p for p, k in zip(fpaths, keep, strict=True) if k]
            kind = kind[keep]
        n_model = int((kind == units.K_MODEL).sum())
    dvals, fvals = array("q"), array("q")
    dvals.frombytes(np.ascontiguousarray(dv, dtype=np.int64).tobytes())
    fvals.frombytes(fv.tobytes())
    return Snapshot.from_columns(dpaths, dvals, fpaths, fvals, n_model, racy, {})


def _next_snapshot(old: Snapshot, delta: Delta, files: list[units.FileRec], ref_ns: int) -> Snapshot:
    """The snapshot after applying ``delta``: re-read units replace their files; racy entries are marked."""
    dirs = {d: v for d, v in old.dirs.items() if d not in delta.removed_dirs}
    for d, (mtime, ino) in delta.listing.dirs.items():
        dirs[d] = (-1 if mtime >= ref_ns else mtime, ino)
    gone_models = delta.dirty_models
    gone_files = {p for p, _ in delta.dirty_files}
    removed = tuple(d + "/" for d in delta.removed_dirs)
    racy = {}
    kept = {}
    for path, val in old.files.items():
        kind = val[3]
        if kind in units.MODEL_KINDS:
            if path.rsplit("/", 1)[0] in gone_models:
                continue
        elif path in gone_files:
            continue
        if removed and path.startswith(removed):
            continue
        if val[1] == -1:
            if path not in delta.racy_checked:
                continue  # could not be re-checked: it is re-read next time
            size, mtime, ino = delta.racy_checked[path]
            if mtime >= ref_ns:
                racy[path] = old.racy_sha[path]
            else:
                val = (size, mtime, ino, kind)
        kept[path] = val
    for path, kind, size, mtime, ino, sha in files:
        if mtime >= ref_ns:
            if sha is None:
                continue  # unreadable and racy: not recorded, so it is read again next time
            racy[path] = sha
            kept[path] = (size, -1, ino, kind)
        else:
            kept[path] = (size, mtime, ino, kind)
    return Snapshot(dirs=dirs, files=kept, racy_sha=racy)


# --- worker processes -------------------------------------------------------------------------------------------


def _n_workers(workers: int | None, n_model_dirs: int) -> int:
    if workers is None:
        env = os.environ.get(WORKERS_ENV)
        if env:
            workers = int(env)
        elif n_model_dirs < _PARALLEL_MIN:
            return 1
        else:
            try:
                workers = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not Linux
                workers = os.cpu_count() or 1
            workers = min(workers, 8)
    return max(1, workers)


def _fork_is_safe() -> bool:
    """Whether a plain fork gives working children: not once polars' thread pool runs in this process.

    A child forked after polars started its worker threads deadlocks in its first polars call (the threads
    are gone, their pool's state is not). Linux names those threads ``polars-<n>``.
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        if name.startswith("polars-") and name[7:].isdigit():
            return False
    return True


def _start_pool(workers: int | None, n_model_dirs: int):
    """Worker processes for large batches, or None to work in this process.

    Forked from this process when that is safe (a fresh process: the CLI, the benchmark), else from a fork
    server (a clean process started once, which preloads this module), so the workers' polars never inherits
    a thread pool it cannot use.
    """
    n = _n_workers(workers, n_model_dirs)
    if n <= 1 or sys.platform != "linux":
        return None
    if _fork_is_safe():
        # before this process opens the new catalog; the workers only read files and validate documents.
        # Frozen objects are left alone by the children's garbage collector: fewer copy-on-write page faults.
        gc.freeze()
        try:
            return multiprocessing.get_context("fork").Pool(n)
        finally:
            gc.unfreeze()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["catalog.indexer"])
    return ctx.Pool(n)


def _stop_pool(pool) -> None:
    if pool is not None:
        pool.terminate()
        pool.join()


def _spool_dir() -> str:
    """Where workers leave their Arrow tables for the writer (memory-backed when the system has one), named by the
    writer's pid so that the next index anywhere removes it if this process dies (:func:`_cleanup`)."""
    return tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=_spool_bases()[0])


def run_job(job: tuple) -> dict:
    """One unit of work, in a worker or in this process: walk a subtree and read it, or read model directories.

    ``job``: (root, "subtrees" | "models", models/ subtrees or model dirs, job number, spool dir or None). Model
    rows and file rows come back as Arrow tables (as Arrow IPC files in the spool dir when one is given, so the big
    payload never goes through a pipe), manifest/routing results and rejections as plain tuples.
    """
    was_enabled = gc.isenabled()
    gc.disable()  # a job allocates many small objects and no cycles: the collector's passes only cost time
    try:
        return _run_job(job)
    finally:
        if was_enabled:
            gc.enable()


def _run_job(job: tuple) -> dict:
    root, kind, payload, i, spool = job
    out: dict = {"dirs": {}, "units": [], "job": i, "rejected": []}
    if kind == "subtrees":
        listing = Listing()
        for rel in payload:
            walk(root, rel, listing, depth=rel.count("/"))
        out["dirs"] = listing.dirs
        results = [(d, *units.process_model_dir(root, d, listing.model_files.get(d))) for d in listing.model_dirs]
        out["units"] = [_read_unit(root, p, k) for p, k in listing.unit_files]
    else:
        results = [(d, *units.process_model_dir(root, d)) for d in payload]
    rows, files = [], []
    for _d, recs, row, rej in results:
        files += recs
        if row is not None:
            rows.append(row)
        if rej is not None:
            out["rejected"].append(rej)
    models, bad = _arrow(units.MODEL_COLUMNS, _MODEL_TYPES, rows)
    out["rejected"] += [_storage_reject(rows[j][_META_PATH], "model_meta", err) for j, err in bad]
    file_frame, _ = _arrow(_FILE_COLUMNS, _FILE_TYPES, files)  # a path Arrow cannot hold is not listed
    out["n_models"] = len(results)
    out["models"] = _ship(models, spool, f"{i}.models")
    out["files"] = _ship(file_frame, spool, f"{i}.files")
    return out


def _ship(tbl: pa.Table | None, spool: str | None, name: str):
    if tbl is None or tbl.num_rows == 0:
        return None
    if spool is None:
        return tbl
    path = f"{spool}/{name}.arrow"
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, tbl.schema) as writer:
        writer.write_table(tbl)
    return path


def _receive(item) -> pa.Table | None:
    if item is None or isinstance(item, pa.Table):
        return item
    return pa.ipc.open_file(pa.memory_map(item, "r")).read_all()


def _storage_reject(path: str, kind: str, err: str) -> tuple:
    return (path, kind, f"<document>: [catalog] cannot store the row: {err}", "", "catalog")


def _read_unit(root: str, path: str, kind: int) -> tuple:
    if kind == units.K_MANIFEST:
        return ("manifest", *units.process_manifest(root, path))
    return ("routing", *units.process_routing(root, path))


def _job_results(jobs: list, pool) -> Iterator[dict]:
    """Results of :func:`run_job` as they complete; the pool starts working at once."""
    pending = pool.imap_unordered(run_job, jobs) if pool is not None else None

    def gen() -> Iterator[dict]:
        seen = set()
        if pending is not None:
            try:
                for res in pending:
                    seen.add(res["job"])
                    yield res
            except Exception:  # noqa: BLE001 - a dead worker never aborts the index: finish in this process
                pass
        for job in jobs:
            if job[3] not in seen:
                yield run_job((*job[:4], None))

    return gen()


# --- writing rows -----------------------------------------------------------------------------------------------

_S, _F, _I, _B = pl.String, pl.Float64, pl.Int64, pl.Boolean
_LS = pl.List(pl.String)
_MODEL_TYPES = dict.fromkeys(units.MODEL_COLUMNS, _S) | {
    "interval_minutes": _F, "n_features": _I, "mean_ic": _F, "mean_rank_ic": _F, "ic_ir": _F,
    "t_stat": _F, "cv_mean": _F, "cv_std": _F, "n_rows_train": _I, "n_rows_val": _I, "checksum_ok": _B,
    "model_size": _I, "hit_rate": _F, "rank_ic_ir": _F, "sequence_length": _I,
    "cs_ranking_enabled": _B, "cs_ranking_sequence_length": _I, "cs_ranking_best_ic": _F,
    "cs_ranking_best_spread": _F, "cs_ranking_epochs_trained": _I, "cs_ranking_ic_ir": _F,
    "cs_ranking_ic_hit_rate": _F, "cs_ranking_turnover": _F, "cs_ranking_net_spread": _F, "legacy_features": _B,
    "horizon_bars": _I, "ic_coverage": _F, "spread_bps": _F, "turnover_frac": _F, "net_spread_bps": _F,
    "breakeven_cost_bps": _F, "cost_bps": _F, "cv_mean_ic": _F, "cv_mean_rank_ic": _F, "cv_ic_ir": _F,
    "cv_t_stat": _F, "cv_net_spread_bps": _F, "research_only": _B,
}  # fmt: skip
_RUN_TYPES = dict.fromkeys(units.RUN_COLUMNS, _S) | {
    "interval_minutes": _F, "n_targets": _I, "complete": _B, "is_comparable": _B,
}  # fmt: skip
_RUN_TARGET_TYPES = dict.fromkeys(units.RUN_TARGET_COLUMNS, _S) | {
    "families_trained": _LS, "auc": _F, "n_models": _I, "best_mean_ic": _F,
}  # fmt: skip
_ROUTING_TYPES = dict.fromkeys(units.ROUTING_COLUMNS, _S) | {
    "skill01_cs": _F, "skill01_sym_mean": _F, "frac_symbols_good": _F, "winner_symbols": _LS,
    "n_symbols_evaluated": _I, "auc": _F,
}  # fmt: skip
_FILE_COLUMNS = ("path", "kind", "size", "mtime_ns", "ino", "sha256")
_FILE_TYPES = {"path": _S, "kind": pl.Int8, "size": _I, "mtime_ns": _I, "ino": _I, "sha256": _S}
_REJECTED_COLUMNS = ("path", "kind", "reason", "field", "rule", "run_dir")
_REJECTED_TYPES = dict.fromkeys(_REJECTED_COLUMNS, _S)
_META_PATH = units.MODEL_COLUMNS.index("meta_path")
_MANIFEST_PATH = units.RUN_COLUMNS.index("manifest_path")
assert list(units.KIND_NAMES) == list(range(1, len(units.KIND_NAMES) + 1)), "kind codes index a list"
_KIND_SQL = "[" + ", ".join(f"'{v}'" for v in units.KIND_NAMES.values()) + "][kind]"

_SQL = {
    # LIST columns and lineage come from the JSON texts, parsed once per row in bulk (DuckDB's JSON reader);
    # reproducibility.json is best effort (a malformed one leaves the lineage columns NULL, it never rejects
    # the model)
    "models": """
        insert into models by name
        select s.* exclude (repro_json, j, r),
               coalesce(j[1], j[2])::varchar[] as feature_list, j[3]::double[] as cv_scores,
               j[4]::varchar[] as sequence_channels,
               try_cast(r[1] as varchar[]) as data_partitions,
               case when json_type(r[2]) = 'VARCHAR' then r[2] ->> '$' end as config_digest,
               case when json_type(r[3]) = 'VARCHAR' then r[3] ->> '$' end as data_start,
               case when json_type(r[4]) = 'VARCHAR' then r[4] ->> '$' end as data_end,
               case when json_type(r[5]) in ('BIGINT', 'UBIGINT') then try_cast(r[5] as bigint) end as seed,
               runs.dagster_run_id, $now as indexed_at
        from (select *,
                     json_extract(meta_json, ['$.feature_list', '$.features', '$.cv_scores', '$.sequence_channels'])
                         as j,
                     case when json_valid(repro_json) and json_type(repro_json) = 'OBJECT' then json_extract(
                         repro_json, ['$.data_partitions', '$.config_digest', '$.data_range.start',
                                      '$.data_range.end', '$.seed']) end as r
              from stage) s
        left join runs using (run_dir)
    """,
    "runs": "insert into runs by name select *, $now as indexed_at from stage",
    "run_targets": "insert into run_targets by name select * from stage",
    "routing_decisions": "insert into routing_decisions by name select *, $now as indexed_at from stage",
    "artifacts": (
        f"insert into artifacts by name select path, {_KIND_SQL} as kind, "
        "size, mtime_ns, make_timestamp(mtime_ns // 1000) as mtime, sha256 from stage"
    ),
    "rejected": "insert or replace into rejected by name select *, $now as seen_at from stage",
}


def _frame(columns: tuple[str, ...], types: dict, rows: list[tuple]) -> pa.Table:
    """Polars builds the table from Python values (pyarrow would import pandas, 0.2 s per worker process)."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    frame = pl.DataFrame([pl.Series(n, c, dtype=types[n]) for n, c in zip(columns, cols, strict=True)])
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


def _arrow(columns: tuple[str, ...], types: dict, rows: list[tuple]) -> tuple[pa.Table | None, list[tuple[int, str]]]:
    """An Arrow table of ``rows``; rows it cannot hold (wrong type, out of range, not UTF-8) are returned with why."""
    try:
        return _frame(columns, types, rows), []
    except Exception:  # noqa: BLE001 - find the offending rows one by one
        good, bad = [], []
        for i, row in enumerate(rows):
            try:
                _frame(columns, types, [row])
                good.append(row)
            except Exception as exc:  # noqa: BLE001
                bad.append((i, f"{type(exc).__name__}: {exc}"))
        return (_frame(columns, types, good) if good else None), bad


def _without(rows: list[tuple], bad: list[tuple[int, str]]) -> list[tuple]:
    drop = {i for i, _ in bad}
    return [r for i, r in enumerate(rows) if i not in drop]


def _register(con: duckdb.DuckDBPyConnection, name: str, data: dict) -> None:
    con.register(name, pl.DataFrame(data).to_arrow())


class CatalogWriteError(RuntimeError):
    """The catalog refused so many rows that the cause is the indexer (or the catalog), not the files."""


def _insert(con: duckdb.DuckDBPyConnection, table: str, tbl: pa.Table, now: datetime) -> list[tuple[int, str]]:
    """Insert ``tbl`` in one statement; on failure, bisect to the rows the catalog refuses (returned).

    A handful of refused rows are files' faults and get rejected; when more than ``max(20, 1%)`` of the rows
    are refused the fault is systematic and :class:`CatalogWriteError` is raised instead.
    """
    if tbl is None or tbl.num_rows == 0:
        return []
    budget = [max(20, tbl.num_rows // 100)]
    return _insert_part(con, table, tbl, now, budget)


def _insert_part(con, table: str, tbl: pa.Table, now: datetime, budget: list[int]) -> list[tuple[int, str]]:
    sql = _SQL[table]
    params = {"now": now} if "$now" in sql else None
    con.register("stage", tbl)
    try:
        con.execute(sql, params)
        return []
    except duckdb.Error as exc:
        error = str(exc).splitlines()[0]
    finally:
        con.unregister("stage")
    if tbl.num_rows == 1:
        budget[0] -= 1
        if budget[0] < 0:
            raise CatalogWriteError(f"the catalog refuses many {table} rows: {error}")
        return [(0, error)]
    mid = tbl.num_rows // 2
    left = _insert_part(con, table, tbl.slice(0, mid), now, budget)
    right = _insert_part(con, table, tbl.slice(mid), now, budget)
    return left + [(i + mid, e) for i, e in right]


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "\\0")


class _Batch:
    """Tables waiting to be inserted, flushed in bulk; keeps the file tables for the snapshot."""

    def __init__(self, con: duckdb.DuckDBPyConnection, now: datetime) -> None:
        self.con, self.now = con, now
        self.models: list[pa.Table] = []
        self.n_models = 0
        self.files: list[pa.Table] = []
        self.files_flushed = 0
        self.rejected: list[tuple] = []

    def reject(self, path: str, kind: str, reason: str, field: str = "", rule: str = "") -> None:
        self.rejected.append(
            tuple(_clean(v) for v in (path, kind, reason, field or None, rule or None, units.run_dir_of(path)))
        )

    def add(self, models: pa.Table | None, files: pa.Table | None) -> None:
        if models is not None and models.num_rows:
            self.models.append(models)
            self.n_models += models.num_rows
        if files is not None and files.num_rows:
            self.files.append(files)

    def flush(self, force: bool = False) -> None:
        if self.models and (force or self.n_models >= _FLUSH_ROWS):
            tbl = pa.concat_tables(self.models)
            n = tbl.num_rows if force else tbl.num_rows - tbl.num_rows % _ROW_GROUP
            part = tbl.slice(0, n)
            for i, err in _insert(self.con, "models", part, self.now):
                self.reject(*_storage_reject(part.column("meta_path")[i].as_py(), "model_meta", err))
            rest = tbl.slice(n)
            self.models, self.n_models = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
        pending = self.files[self.files_flushed :]
        if pending and (force or sum(t.num_rows for t in pending) >= 4 * _FLUSH_ROWS):
            tbl = pa.concat_tables(pending)
            n = tbl.num_rows if force else tbl.num_rows - tbl.num_rows % _ROW_GROUP
            _insert(self.con, "artifacts", tbl.slice(0, n), self.now)  # a path DuckDB refuses is not listed
            rest = tbl.slice(n)
            self.files = self.files[: self.files_flushed] + [tbl.slice(0, n)] + ([rest] if rest.num_rows else [])
            self.files_flushed = self.files_flushed + 1
        if force and self.rejected:
            tbl, _bad = _arrow(_REJECTED_COLUMNS, _REJECTED_TYPES, self.rejected)
            _insert(self.con, "rejected", tbl, self.now)
            self.rejected = []

    def file_recs(self) -> list[units.FileRec]:
        """Every file read, as (path, kind, size, mtime_ns, inode, sha256)."""
        if not self.files:
            return []
        t = pa.concat_tables(self.files)
        return list(zip(*(t.column(c).to_pylist() for c in _FILE_COLUMNS), strict=True))


def _apply(
    con: duckdb.DuckDBPyConnection, root: str, jobs: list, unit_files: list[tuple[str, int]], now: datetime,
    pool, report: IndexReport, as_table: bool = False,
) -> tuple[list[units.FileRec] | pa.Table | None, dict]:  # fmt: skip
    """Run ``jobs`` and read ``unit_files``, inserting their rows; returns (files read, directories walked).

    The files come as FileRec tuples, or as one Arrow table (``as_table``).
    """
    dirs: dict = {}
    batch = _Batch(con, now)
    results = _job_results(jobs, pool)
    # manifests first, in this process: model rows take their Dagster run id from them
    _add_units(batch, [_read_unit(root, p, k) for p, k in unit_files], report)
    found: list[tuple] = []  # manifest and routing files the workers read (view-level routing files)
    for out in results:
        dirs.update(out["dirs"])
        found += out["units"]
        batch.add(_receive(out["models"]), _receive(out["files"]))
        for rej in out["rejected"]:
            batch.reject(*rej)
        report.model_dirs_read += out["n_models"]
        batch.flush()
    _add_units(batch, found, report)
    batch.flush(force=True)
    if as_table:
        return (pa.concat_tables(batch.files) if batch.files else None), dirs
    return batch.file_recs(), dirs


def _add_units(batch: _Batch, results: list[tuple], report: IndexReport) -> None:
    runs, run_targets, routing, recs = [], [], [], []
    for res in results:
        if res[0] == "manifest":
            _, rec, row, targets, rej = res
            if row is not None:
                runs.append(row)
                run_targets += targets
        else:
            _, rec, rows, rej = res
            routing += rows
        if rec is not None:
            recs.append(rec)
            report.files_read += 1
        if rej is not None:
            batch.reject(*rej)
    if runs or run_targets or routing:
        _insert_units(batch.con, batch, batch.now, runs, run_targets, routing)
    batch.add(None, _arrow(_FILE_COLUMNS, _FILE_TYPES, recs)[0] if recs else None)


def _insert_units(con, batch: _Batch, now: datetime, runs: list, run_targets: list, routing: list) -> None:
    """Insert manifests and routing rows; a file any of whose rows the catalog refuses is rejected whole."""
    bad_manifests: dict[str, str] = {}
    tbl, bad = _arrow(units.RUN_COLUMNS, _RUN_TYPES, runs)
    ok_runs = _without(runs, bad)
    bad_manifests.update({runs[i][_MANIFEST_PATH]: e for i, e in bad})
    bad_manifests.update({ok_runs[i][_MANIFEST_PATH]: e for i, e in _insert(con, "runs", tbl, now)})
    tbl, bad = _arrow(units.RUN_TARGET_COLUMNS, _RUN_TARGET_TYPES, run_targets)
    ok_targets = _without(run_targets, bad)
    bad_manifests.update({run_targets[i][0] + "/manifest.json": e for i, e in bad})
    bad_manifests.update({ok_targets[i][0] + "/manifest.json": e for i, e in _insert(con, "run_targets", tbl, now)})
    if bad_manifests:
        _register(con, "bad_runs", {"run_dir": [p.rsplit("/", 1)[0] for p in bad_manifests]})
        con.execute("delete from runs where run_dir in (select run_dir from bad_runs)")
        con.execute("delete from run_targets where run_dir in (select run_dir from bad_runs)")
        for path, err in bad_manifests.items():
            batch.reject(*_storage_reject(path, "manifest", err))
    tbl, bad = _arrow(units.ROUTING_COLUMNS, _ROUTING_TYPES, routing)
    ok_routing = _without(routing, bad)
    bad_paths = {routing[i][0]: e for i, e in bad}
    bad_paths.update({ok_routing[i][0]: e for i, e in _insert(con, "routing_decisions", tbl, now)})
    if bad_paths:
        _register(con, "bad_routing", {"path": list(bad_paths)})
        con.execute("delete from routing_decisions where path in (select path from bad_routing)")
        for path, err in bad_paths.items():
            batch.reject(*_storage_reject(path, "routing_decision", err))


def _delete_units(con: duckdb.DuckDBPyConnection, model_dirs: list[str], paths: list[str]) -> None:
    """Drop every row the given units produced (they are re-inserted from the files, if still there)."""
    if model_dirs:
        _register(con, "dirty_models", {"d": model_dirs, "meta": [f"{d}/model_meta.json" for d in model_dirs]})
        con.execute("delete from models where model_dir in (select d from dirty_models)")
        con.execute("delete from artifacts where model_dir in (select d from dirty_models)")
        con.execute("delete from rejected where path in (select meta from dirty_models)")
    if paths:
        run_dirs = [units.run_dir_of(p) or "" for p in paths if p.endswith("/manifest.json")]
        _register(con, "dirty_files", {"p": paths})
        _register(con, "dirty_runs", {"r": pl.Series(run_dirs, dtype=pl.String)})
        con.execute("delete from runs where manifest_path in (select p from dirty_files)")
        con.execute("delete from run_targets where run_dir in (select r from dirty_runs)")
        con.execute("delete from routing_decisions where path in (select p from dirty_files)")
        con.execute("delete from artifacts where path in (select p from dirty_files)")
        con.execute("delete from rejected where path in (select p from dirty_files)")


def _reload_aliases(con: duckdb.DuckDBPyConnection, root: Path, now: datetime) -> None:
    """Replace the ``aliases`` table (and alias rejections) with what ``RESULTS/catalog/aliases.jsonl`` says."""
    rows, bad = read_alias_file(root)
    con.execute("delete from aliases")
    con.execute("delete from rejected where kind = 'alias'")
    if rows:
        schema = {"seq": pl.Int64, "alias": pl.String, "model_dir": pl.String, "set_at": pl.Datetime("us"),
                  "set_by": pl.String, "note": pl.String, "active": pl.Boolean}  # fmt: skip
        con.register("stage", pl.DataFrame(rows, schema=schema).to_arrow())
        try:
            con.execute("insert into aliases by name select * from stage")
        finally:
            con.unregister("stage")
    batch = _Batch(con, now)
    for path, reason in bad:
        batch.reject(path, "alias", reason, "", "alias")
    batch.flush(force=True)
