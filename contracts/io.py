"""Crash-consistent writes, canonical JSON and checksums (spec: contract principles 3 and 4)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

_FLOAT_DIGITS = 12


def _stable(value: Any) -> Any:
    """Floats rounded to 12 significant digits so that re-serialising is byte-stable; NaN/inf refused."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value!r} cannot be written as canonical JSON")
        rounded = float(f"{value:.{_FLOAT_DIGITS}g}")
        return 0.0 if rounded == 0 else rounded
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = str(k)
            if key in out:
                raise ValueError(f"keys {k!r} and {key!r} collide once written as JSON strings")
            out[key] = _stable(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "ndim") and value.ndim > 0:  # numpy arrays
        return [_stable(v) for v in value.tolist()]
    if hasattr(value, "item"):  # numpy scalars
        return _stable(value.item())
    raise TypeError(f"cannot serialise {type(value).__name__} as canonical JSON")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, stable floats, two-space indent, trailing newline."""
    return json.dumps(_stable(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``, dir fsync.

    A crash at any point leaves either the old file or the new one, never a torn file. An exception removes
    the temp file; a hard kill (SIGKILL, power loss) before the rename can leave a ``.<name>.*.tmp`` beside it,
    which no reader ever opens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as a plain open() would, not mkstemp's 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def write_atomic_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as canonical JSON, atomically."""
    return write_atomic_bytes(path, canonical_json(obj).encode("utf-8"))


def write_atomic_yaml(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as YAML (sorted keys), atomically."""
    text = yaml.safe_dump(_stable(obj), sort_keys=True, default_flow_style=False, allow_unicode=True)
    return write_atomic_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """Load a JSON file; the error names the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (spec: model_meta rule 2)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a UTF-8 string (config digests)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
