"""The run log, ``RESULTS/logs/foxlake.log``: what libraries say that a person at the terminal need not read.

* Python warnings of the CLI's process (a library's ``ConvergenceWarning``, …) are logged there
  (:func:`route_warnings`).
* While a materialization runs, the process's standard error (file descriptor 2) points there
  (:func:`console_to_log`): Dagster's console lines and its step processes' output, warnings included (they inherit
  the descriptor), land in the file; the CLI's own messages go to the terminal through the stream it yields.
* The CLI ends with one line counting the warnings written during the command (:func:`warnings_since`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_NAME = "foxlake.log"
WARNING_LINE = re.compile(r": [A-Z]\w*Warning: ")
"""How Python writes a warning (``file:line: Category: message``), in either of the ways it reaches the log."""


def log_path(results: Path) -> Path:
    return results / "logs" / LOG_NAME


def log_size(results: Path) -> int:
    """The log's size now (0 when it does not exist): where :func:`warnings_since` starts counting."""
    try:
        return log_path(results).stat().st_size
    except FileNotFoundError:
        return 0


def warnings_since(results: Path, offset: int) -> int:
    """How many Python warnings the log holds after byte ``offset``."""
    try:
        with open(log_path(results), "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if WARNING_LINE.search(line))


def route_warnings(results: Path) -> Path:
    """Send this process's Python warnings to the log instead of the terminal; the file is made when one comes."""
    log = log_path(results)
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    logger.propagate = False
    logger.handlers.clear()

    class _LazyFile(logging.FileHandler):
        def emit(self, record: logging.LogRecord) -> None:
            log.parent.mkdir(parents=True, exist_ok=True)
            super().emit(record)

    handler = _LazyFile(log, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    return log


@contextmanager
def console_to_log(results: Path) -> Iterator[TextIO]:
    """Point file descriptor 2 at the log for the block (this process and the processes it starts meanwhile); yield
    a stream to the terminal's standard error for the CLI's own messages."""
    log = log_path(results)
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        os.dup2(fd, 2)
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
        terminal.close()
