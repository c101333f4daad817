"""The dashboard end to end: the feed lands bars, the engine follows them in its own process, the bridge serves them
under uvicorn in another, and headless Chromium (Debian's, driven by playwright) shows the engine's numbers, a
growing events feed, and pauses the engine with the token. The screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import DEMO_CONFIG, LINEAR_POLICY, REPO, free_port, wait_for_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "dashboard-test-token-42"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (`make test` installs it: apt-get install chromium)"
)


def _foxlake(results: Path, *args: str, log: Path, env: dict) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "foxlake.cli", "--results", str(results), *args],
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _ledger(results: Path, query: str) -> list[tuple]:
    con = sqlite3.connect(f"{(results / 'live' / 'paper' / 'ledger.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _wait(what: str, predicate, timeout_s: float, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every_s)


async def _event_lags(url: str, n: int) -> list[tuple[int, float]]:
    """(event_id, seconds from the engine writing it to this client receiving it) for the next ``n`` events."""
    out = []
    async with websockets.connect(url) as ws:
        while len(out) < n:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 20))
            lag = datetime.now(UTC).timestamp() - datetime.fromisoformat(ev["timestamp"]).timestamp()
            out.append((ev["event_id"], lag))
    return out


def test_the_dashboard_shows_the_running_engine_and_pauses_it(pipeline_results, tmp_path, cli_env) -> None:
    from playwright.sync_api import sync_playwright

    results = tmp_path / "RESULTS"
    shutil.copytree(pipeline_results, results)
    env = {**cli_env, "FOXLAKE_BRIDGE_TOKEN": TOKEN}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = {
        "bridge": _foxlake(results, "bridge", "serve", "--port", str(port), log=tmp_path / "bridge.log", env=env),
        "engine": _foxlake(
            results, "live", "run", "--follow", "--poll-seconds", "0.1", "--idle-exit-seconds", "600",
            "--config", DEMO_CONFIG, "--policy", LINEAR_POLICY, log=tmp_path / "engine.log", env=env,
        ),
        "feed": _foxlake(
            results, "market", "play", "--bars", "90", "--seconds-per-bar", "0.3", "--config", DEMO_CONFIG,
            log=tmp_path / "feed.log", env=env,
        ),
    }  # fmt: skip
    try:
        wait_for_http(f"{base}/health", procs["bridge"], timeout_s=60, log=tmp_path / "bridge.log")
        _wait("the engine's first cycles", lambda: httpx.get(f"{base}/api/state").json()["cycle_count"] >= 3, 120)
        lags = asyncio.run(_event_lags(f"ws://127.0.0.1:{port}/ws/events?recent=0", 10))
        assert [i for i, _ in lags] == list(range(lags[0][0], lags[0][0] + 10))  # in order, none skipped
        assert max(lag for _, lag in lags) < 1.0, lags  # each within 1 s of the engine writing it

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_function("Number(document.getElementById('events-count').textContent) > 0", timeout=20_000)
            seen = int(page.text_content("#events-count"))
            page.wait_for_function(
                f"Number(document.getElementById('events-count').textContent) > {seen + 3}", timeout=20_000
            )  # the feed grows while the engine runs, without a reload
            assert page.text_content("#status") == "running"

            page.fill("#token-input", TOKEN)
            page.click("#btn-pause")
            page.wait_for_function("document.getElementById('status').textContent === 'paused'", timeout=20_000)
            assert httpx.get(f"{base}/api/state").json()["status"] == "paused"
            # the POST returns once the engine has acknowledged; the status may flip first over the websocket
            page.wait_for_function(
                "document.getElementById('control-result').textContent.includes('applied at cycle')", timeout=20_000
            )

            # the feed ends, the paused engine marks its last bars: the page settles on the ledger's numbers
            assert procs["feed"].wait(timeout=180) == 0
            landed = (tmp_path / "feed.log").read_text()
            last_bar = re.search(r"landed 90 bar timestamp\(s\) \S+ \.\. (\S+);", landed).group(1)
            _wait("the engine's last bar", lambda: httpx.get(f"{base}/api/state").json()["last_cycle"] == last_bar, 60)
            time.sleep(1.5)  # the page's refresh after the last cycle_complete event
            page.wait_for_function(
                "document.getElementById('last-cycle').textContent === " + json.dumps(last_bar.replace("T", " ")[:19]),
                timeout=20_000,
            )
            page.wait_for_timeout(500)
            api = httpx.get(f"{base}/api/positions").json()
            (n_ledger,) = _ledger(results, "select count(*) from positions")[0]
            (equity,) = _ledger(results, "select equity from equity order by cycle_id desc limit 1")[0]
            assert int(page.text_content("#positions-count")) == api["total_positions"] == n_ledger > 0
            assert page.text_content("#equity-value") == f"{equity:,.2f}"
            symbols = page.locator("#positions tbody tr td:first-child").all_text_contents()
            assert symbols == [p["symbol"] for p in api["positions"]]
            assert page.text_content("#trading-state").endswith("(paused)")
            assert page.locator("#equity-chart canvas").count() >= 1 and not errors, errors

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            docs = browser.new_page()  # the API docs render offline (Swagger UI served by the bridge itself)
            docs.goto(base + "/docs")
            docs.wait_for_selector('[data-path="/api/positions"]', timeout=20_000)
            assert docs.locator(".swagger-ui .title").first.text_content().startswith("foxlake bridge")
            browser.close()
        paused = _ledger(results, "select count(*), sum(n_trade) from cycles where paused = 1")[0]
        assert paused[0] >= 1 and paused[1] == 0  # no orders while paused
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
