"""What changed under ``RESULTS/runs`` since the last index: a file-system snapshot and a quick check against it.

The snapshot (``RESULTS/.catalog_state``) records every directory under ``runs/`` with its mtime and inode, and
every file the catalog indexes with its size, mtime, inode and kind. A re-index needs to read only what changed:

* a directory whose mtime or inode changed is listed again: creating, deleting or renaming an entry changes
  its directory's mtime, and every artifact is written by a rename (temp file + ``os.replace``), so new,
  rewritten and deleted files all show up there, without a ``stat`` per file;
* every model file is ``stat``-ed as well, so a model file modified in place (tampering) is seen too
  (``verify=True`` stats every indexed file);
* entries modified within the current tick of the file-system clock are *racy* (a second change in the same
  tick would leave the mtime unchanged) and are checked again next time (directories re-listed, files
  re-hashed), as git does for its index.

A quick check with nothing to do costs one ``stat`` per directory and per model file, and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import time
from array import array
from dataclasses import dataclass, field

from catalog.units import K_META, K_MODEL, MODEL_KINDS, classify

STATE_FILE = ".catalog_state"
_MAGIC = b"FOXLAKE-CATALOG-STATE\n"
_FORMAT = 1
_MAX_DEPTH = 32


def fs_now_ns() -> int:
    """The file-system clock now: timestamps written from this instant on are >= this value."""
    coarse = getattr(time, "CLOCK_REALTIME_COARSE", None)
    if coarse is not None:
        return min(time.clock_gettime_ns(coarse), time.time_ns())
    return time.time_ns() - 20_000_000  # no coarse clock: allow for a 20 ms timestamp granularity


class Snapshot:
    """Directories and indexed files under ``runs/``, keyed by path relative to RESULTS.

    ``dirs``: path -> (mtime_ns, inode); ``files``: path -> (size, mtime_ns, inode, kind). An mtime of -1
    marks a racy entry; ``racy_sha`` holds the sha256 of racy files. A snapshot read from the state file keeps
    its columns and builds the dicts only when asked (a quick check with nothing to do never needs them).
    """

    def __init__(self, dirs=None, files=None, racy_sha=None, header=None) -> None:
        self._dirs = dirs if dirs is not None else {}
        self._files = files if files is not None else {}
        self.racy_sha: dict[str, str] = racy_sha or {}
        self.header: dict = header or {}
        self._cols: tuple | None = None  # (dir paths, dir values, file paths, file values, n model files)

    @classmethod
    def from_columns(cls, dir_paths, dir_vals, file_paths, file_vals, n_model, racy_sha, header) -> Snapshot:
        snap = cls(dirs=None, files=None, racy_sha=racy_sha, header=header)
        snap._dirs = snap._files = None
        snap._cols = (dir_paths, dir_vals, file_paths, file_vals, n_model)
        return snap

    @property
    def dirs(self) -> dict[str, tuple[int, int]]:
        if self._dirs is None:
            paths, vals = self._cols[0], self._cols[1]
            it = iter(vals)
            self._dirs = dict(zip(paths, zip(it, it, strict=True), strict=True))
        return self._dirs

    @property
    def files(self) -> dict[str, tuple[int, int, int, int]]:
        if self._files is None:
            paths, vals = self._cols[2], self._cols[3]
            it = iter(vals)
            self._files = dict(zip(paths, zip(it, it, it, it, strict=True), strict=True))
        return self._files

    def iter_dirs(self):
        """(path, mtime_ns, inode) of every directory."""
        if self._cols is not None and self._dirs is None:
            paths, vals = self._cols[0], self._cols[1]
            return ((p, vals[2 * i], vals[2 * i + 1]) for i, p in enumerate(paths))
        return ((p, m, i) for p, (m, i) in self.dirs.items())

    def iter_files(self, models_only: bool):
        """(path, size, mtime_ns, inode, kind) of every file, or of the model files only."""
        if self._cols is not None and self._files is None:
            paths, vals, n_model = self._cols[2], self._cols[3], self._cols[4]
            n = n_model if models_only else len(paths)
            return ((paths[i], *vals[4 * i : 4 * i + 4]) for i in range(n))
        return ((p, *v) for p, v in self.files.items() if not models_only or v[3] == K_MODEL)

    def racy_files(self):
        """(path, size, mtime_ns, inode, kind) of the racy files."""
        if not self.racy_sha:
            return []
        if self._files is not None:
            return [(p, *self._files[p]) for p in self.racy_sha if p in self._files]
        return [(p, *v) for p, *v in self.iter_files(False) if p in self.racy_sha]


def _enc(paths) -> bytes:
    return "\n".join(paths).encode("utf-8", "surrogateescape")


def _dec(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogateescape").split("\n") if blob else []


def write_state(path: str, snap: Snapshot, header: dict) -> bytes:
    """The state file's bytes: magic, a JSON header, the path lists and the numbers as int64 arrays.

    Model files come first (``n_model`` of them): the quick check stats only those.
    """
    if snap._cols is not None and snap._files is None and snap._dirs is None:
        dirs, dvals, files, fvals, n_model = snap._cols  # already in file order
    else:
        dirs = list(snap.dirs)
        files = sorted(snap.files, key=lambda f: snap.files[f][3] != K_MODEL)
        n_model = sum(1 for f in files if snap.files[f][3] == K_MODEL)
        dvals = array("q")
        for d in dirs:
            dvals.extend(snap.dirs[d])
        fvals = array("q")
        for f in files:
            fvals.extend(snap.files[f])
    dblob, fblob = _enc(dirs), _enc(files)
    dbytes, fbytes = memoryview(dvals).cast("B"), memoryview(fvals).cast("B")
    head = dict(header)
    head.update(
        format=_FORMAT, n_dirs=len(dirs), n_files=len(files), n_model=n_model, racy_sha=snap.racy_sha,
        sections=[len(dblob), len(fblob), len(dbytes), len(fbytes)],
    )  # fmt: skip
    hbytes = json.dumps(head, sort_keys=True).encode()
    return b"".join([_MAGIC, struct.pack("<Q", len(hbytes)), hbytes, dblob, fblob, dbytes, fbytes])


def read_state(path: str) -> Snapshot | None:
    """The snapshot of the last index, or None when there is none or it cannot be read."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if not raw.startswith(_MAGIC):
            return None
        pos = len(_MAGIC)
        (hlen,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        head = json.loads(raw[pos : pos + hlen])
        pos += hlen
        if head.get("format") != _FORMAT:
            return None
        blobs = []
        for n in head["sections"]:
            blobs.append(raw[pos : pos + n])
            pos += n
        dirs, files = _dec(blobs[0]), _dec(blobs[1])
        dvals, fvals = array("q"), array("q")
        dvals.frombytes(blobs[2])
        fvals.frombytes(blobs[3])
        if len(dirs) != head["n_dirs"] or len(files) != head["n_files"]:
            return None
        if len(dvals) != 2 * len(dirs) or len(fvals) != 4 * len(files):
            return None
        n_model = int(head["n_model"])
    except (OSError, ValueError, KeyError, struct.error, TypeError):
        return None
    return Snapshot.from_columns(dirs, dvals, files, fvals, n_model, dict(head.get("racy_sha") or {}), head)


# --- walking ------------------------------------------------------------------------------------------------------


@dataclass
class Listing:
    """What a walk found: directories (with their stat), model directories, and manifest/routing files."""

    dirs: dict[str, tuple[int, int]] = field(default_factory=dict)
    model_dirs: list[str] = field(default_factory=list)
    model_files: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # model dir -> (name, kind)
    unit_files: list[tuple[str, int]] = field(default_factory=list)  # (path, kind) of manifests and routing files
    errors: list[tuple[str, str]] = field(default_factory=list)
    delegated: list[str] = field(default_factory=list)  # subtrees left for a worker to walk


def _list_dir(root: str, rel: str, out: Listing) -> list[str] | None:
    """Stat then list one directory (in that order: a change after the stat shows up next time).

    Records the directory and its indexed files in ``out``; returns its subdirectory names (None if gone).
    """
    path = f"{root}/{rel}"
    try:
        st = os.stat(path, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):  # replaced by a file or a symlink since it was listed: not walked
            return None
        with os.scandir(path) as it:  # by path: scandir on a descriptor costs a dup, fcntl and lseek more
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        out.errors.append((rel, str(exc)))
        return None
    out.dirs[rel] = (st.st_mtime_ns, st.st_ino)
    subdirs, names = [], []
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                subdirs.append(e.name)
            elif e.is_file():
                names.append(e.name)
        except OSError:
            continue
    is_model = "model_meta.json" in names
    if is_model:
        out.model_dirs.append(rel)
    mine = []
    for name in names:
        kind = classify(name, is_model)
        if kind in MODEL_KINDS:
            mine.append((name, kind))
        elif kind:
            out.unit_files.append((f"{rel}/{name}", kind))
    if is_model:
        out.model_files[rel] = mine
    return subdirs


def is_models_dir(rel: str) -> bool:
    """``runs/<run_id>/<instance>/targets/<target>/models``: the subtrees a full build hands to workers."""
    parts = rel.split("/")
    return len(parts) == 6 and parts[0] == "runs" and parts[3] == "targets" and parts[5] == "models"


def walk(root: str, rel: str, out: Listing, depth: int = 0, delegate=None) -> None:
    """Walk ``root/rel`` recursively into ``out`` (symlinked directories are not followed).

    ``delegate(rel)`` true: record ``rel`` in ``out.delegated`` instead of walking it.
    """
    if delegate is not None and delegate(rel):
        out.delegated.append(rel)
        return
    subdirs = _list_dir(root, rel, out)
    if subdirs is None:
        return
    if depth >= _MAX_DEPTH:
        out.errors.append((rel, f"deeper than {_MAX_DEPTH} levels; not walked further"))
        return
    for name in sorted(subdirs):
        walk(root, f"{rel}/{name}", out, depth + 1, delegate)


# --- the quick check --------------------------------------------------------------------------------------------


@dataclass
class Delta:
    """What changed since a snapshot."""

    dirty_models: set[str] = field(default_factory=set)  # model directories to re-read (or drop)
    dirty_files: set[tuple[str, int]] = field(default_factory=set)  # (path, kind) manifests/routing to re-read
    removed_dirs: set[str] = field(default_factory=set)
    listing: Listing = field(default_factory=Listing)  # re-listed and new directories
    racy_checked: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # racy, unchanged: path -> stat
    files_stated: int = 0


def _unit_of(path: str, kind: int) -> tuple[str, str | tuple[str, int]]:
    if kind in MODEL_KINDS:
        return "model", path.rsplit("/", 1)[0]
    return "file", (path, kind)


def _mark(delta: Delta, path: str, kind: int) -> None:
    what, key = _unit_of(path, kind)
    if what == "model":
        delta.dirty_models.add(key)
    else:
        delta.dirty_files.add(key)


def _sha(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _changed(root: str, path: str, snap: Snapshot, delta: Delta) -> bool:
    """Whether a file known to the snapshot differs from it (racy files were checked by hash already)."""
    if path in delta.racy_checked:
        return False
    size, mtime, ino, _ = snap.files[path]
    if mtime == -1:
        return True
    try:
        s = os.stat(f"{root}/{path}")
    except OSError:
        return True
    return (s.st_size, s.st_mtime_ns, s.st_ino) != (size, mtime, ino)


def quick_check(root: str, snap: Snapshot, verify: bool = False) -> Delta:
    """Compare the tree with ``snap``: stat every directory and every model file, re-list changed directories."""
    delta = Delta()
    st = os.stat
    changed_dirs = []
    for d, mtime, ino in snap.iter_dirs():
        try:
            s = st(f"{root}/{d}")
        except OSError:
            delta.removed_dirs.add(d)
            continue
        if s.st_mtime_ns != mtime or s.st_ino != ino:
            changed_dirs.append(d)
    if not changed_dirs and not delta.removed_dirs and snap.header.get("n_dirs", 1) == 0:
        if os.path.isdir(f"{root}/runs"):
            changed_dirs.append("runs")
    to_check = list(snap.iter_files(models_only=not verify))
    if not verify:
        to_check += [f for f in snap.racy_files() if f[4] != K_MODEL]
    for path, size, mtime, ino, kind in to_check:
        delta.files_stated += 1
        try:
            s = st(f"{root}/{path}")
        except OSError:
            _mark(delta, path, kind)
            continue
        if mtime == -1:  # racy: the stat cannot prove the content unchanged; the hash can
            if s.st_size == size and s.st_ino == ino and _sha(f"{root}/{path}") == snap.racy_sha.get(path):
                delta.racy_checked[path] = (s.st_size, s.st_mtime_ns, s.st_ino)
            else:
                _mark(delta, path, kind)
        elif s.st_size != size or s.st_mtime_ns != mtime or s.st_ino != ino:
            _mark(delta, path, kind)
    if not changed_dirs and not delta.removed_dirs:
        return delta
    # removed directories: every indexed file below them is gone
    if delta.removed_dirs:
        prefixes = tuple(d + "/" for d in delta.removed_dirs)
        for path, (_, _, _, kind) in snap.files.items():
            if path.startswith(prefixes):
                _mark(delta, path, kind)
    # changed directories: list again, compare their files, walk new subdirectories
    by_dir: dict[str, list[str]] = {}
    for path in snap.files:
        by_dir.setdefault(path.rsplit("/", 1)[0], []).append(path)
    for d in sorted(changed_dirs):
        listing = Listing()
        subdirs = _list_dir(root, d, listing)
        if subdirs is None:
            delta.removed_dirs.add(d)
            for path in by_dir.get(d, []):
                _mark(delta, path, snap.files[path][3])
            continue
        delta.listing.dirs.update(listing.dirs)
        delta.listing.errors += listing.errors
        if listing.model_dirs or any(snap.files[p][3] == K_META for p in by_dir.get(d, [])):
            now = {f"{d}/{name}" for name, _ in listing.model_files.get(d, [])}
            was = {p for p in by_dir.get(d, []) if snap.files[p][3] in MODEL_KINDS}
            if now != was or any(_changed(root, p, snap, delta) for p in now):
                delta.dirty_models.add(d)  # any change to a model directory re-reads it whole
        old_units = {p for p in by_dir.get(d, []) if snap.files[p][3] not in MODEL_KINDS}
        new_units = dict(listing.unit_files)
        for path in old_units - set(new_units):
            delta.dirty_files.add((path, snap.files[path][3]))
        for path, kind in new_units.items():
            if path not in snap.files or _changed(root, path, snap, delta):
                delta.dirty_files.add((path, kind))
        for name in subdirs:
            sub = f"{d}/{name}"
            if sub not in snap.dirs:
                new = Listing()
                walk(root, sub, new, depth=sub.count("/"))
                delta.listing.dirs.update(new.dirs)
                delta.listing.errors += new.errors
                delta.dirty_models.update(new.model_dirs)
                delta.dirty_files.update(new.unit_files)
    return delta


def newest_source_mtime(root: str | os.PathLike) -> int | None:
    """The newest mtime (ns) of any ``model_meta.json`` or ``manifest.json`` under ``root/runs`` (None: none)."""
    newest = None
    stack = [os.path.join(root, "runs")]
    while stack:
        path = stack.pop()
        try:
            with os.scandir(path) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.name in ("model_meta.json", "manifest.json"):
                        try:
                            m = e.stat().st_mtime_ns
                        except OSError:
                            continue
                        newest = m if newest is None or m > newest else newest
        except OSError:
            continue
    return newest
