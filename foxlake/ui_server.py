"""``foxlake ui`` (``make dev``): the Dagster UI over the one ``Definitions``, as a deployment runs it.

Two processes on loopback, started and stopped together: ``dagster-webserver`` (the UI, GraphQL) and
``dagster-daemon run`` (sensors, schedules, run queue and run monitoring), both over ``assets.definitions`` and the
instance in ``DAGSTER_HOME`` (its ``dagster.yaml`` copied from ``configs/``). Either one exiting stops the other;
SIGINT or SIGTERM stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from foxlake.dagster_env import ensure_dagster_home

LOCATION = "assets.definitions"
REPO = Path(__file__).resolve().parents[1]


def ui_commands(host: str, port: int, module: str = LOCATION) -> dict[str, list[str]]:
    """The webserver's and the daemon's command lines."""
    bin_dir = Path(sys.executable).parent
    return {
        "webserver": [str(bin_dir / "dagster-webserver"), "-m", module, "-h", host, "-p", str(port)],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-m", module],
    }


def serve_ui(host: str = "127.0.0.1", port: int = 3000, poll_seconds: float = 0.5) -> int:
    """Run the webserver and the daemon until one exits or a signal comes; the first non-zero exit status."""
    home = ensure_dagster_home()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
           os.environ.get("PYTHONPATH")]))}  # fmt: skip
    procs = {name: subprocess.Popen(argv, cwd=REPO, env=env) for name, argv in ui_commands(host, port).items()}
    print(f"foxlake: Dagster UI on http://{host}:{port} (DAGSTER_HOME {home}); Ctrl-C stops it", flush=True)
    stopping = False

    def stop(signo: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping and all(p.poll() is None for p in procs.values()):
            time.sleep(poll_seconds)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [p.returncode for p in procs.values()]
    return 0 if stopping else next((c for c in codes if c), 0)
