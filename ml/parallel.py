"""Threads for the pipeline's independent fits: the targets of the ranking, the models of a training group.

Every fit is single-threaded and seeded (each family's ``default_params``), so running several at once changes
how long a run takes, never what it computes. The fitting libraries (LightGBM, XGBoost, CatBoost, scikit-learn's
coordinate descent, polars, numpy) release the GIL while they work; torch's process-wide state (its global RNG,
which dropout draws from, and its intra-op thread count) is guarded by one lock in ``ml.families.mlp_family``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None) -> int:
    """``workers``, or the machine's CPU count where it is ``None``."""
    return int(workers) if workers is not None else max(1, os.cpu_count() or 1)


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads (``None``: one per core), in the items' order.

    Items are started in the order given (put the longest first); an exception in one is raised after the others
    finish. With one worker or one item everything runs in the calling thread.
    """
    items = list(items)
    n = min(resolve_workers(workers), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="foxlake-fit") as pool:
        futures = [pool.submit(fn, x) for x in items]
        errors = [f.exception() for f in futures]
        for exc in errors:
            if exc is not None:
                raise exc
        return [f.result() for f in futures]
