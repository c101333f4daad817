"""What every torch family shares: the process-wide torch state lock, its thread count, and the device it trains on.

Torch's intra-op thread count and its global RNG (weight init, dropout) are process-wide, so fits on several
threads (``ml.parallel``) take turns under :data:`TORCH_STATE`; every other family runs beside them.

**Device.** ``device: auto`` (the default of every torch family) trains on CUDA when torch sees a GPU and on the
CPU otherwise; ``cpu`` or ``cuda`` force one. Weights are initialised and batches drawn on the CPU from the seed,
so the two devices train the same model up to floating-point differences (``tests/test_sequence_models.py`` states
the tolerance). Models are saved with CPU tensors and always served on the CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

TORCH_STATE = threading.RLock()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the process setting afterwards (holding :data:`TORCH_STATE`)."""
    with TORCH_STATE:
        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, int(n)))
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def training_device(choice: str) -> torch.device:
    """The device a fit runs on: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"device {choice!r}: choose one of auto, cpu, cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU; use device: auto or cpu")
    return torch.device(choice)
