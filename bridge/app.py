"""The dashboard bridge: FastAPI over the engine's ledger and published state (never its in-process globals).

Read endpoints (``GET /api/*``, the websockets, the page) need no token from a loopback client; control endpoints
(``POST /api/control/*``) always need the bearer token (``bridge.auth``). Every answer is read from another
process's files: ``RESULTS/live/state.json``, the account's ledger (SQLite, read-only) and the catalog (DuckDB,
read-only). A state file or ledger that cannot be read is answered with ``503`` and a short reason, never a bare
500; a ledger or catalog that does not exist yet with ``404``; ``/health`` names no path. No CORS headers: only
pages of the bridge's own origin may call it from a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError

from bridge import catalog_views, ledger_views
from bridge.auth import BridgeToken, bearer, check_token, is_loopback, require_token, require_token_beyond_loopback
from bridge.ledger_source import LedgerSource, LedgerUnreadable, NoLedger, to_json
from bridge.payloads import (
    CommandAck,
    ControlRequest,
    CycleDecisions,
    CycleRow,
    EquityHistory,
    FillRow,
    ModelInUse,
    OrderRow,
    TrainingRun,
)
from bridge.streams import EngineEventFeed, TrainingEventFeed
from contracts.bridge import EngineState, PositionsPayload, RiskStatus
from contracts.paths import results_root
from live.journal import read_state
from live.ledger.writer import append_command

STATIC = Path(__file__).parent / "static"
RECENT_EVENTS = 100
"""Events a new /ws/events client without a resume point gets first."""


def create_app(
    results: str | Path | None = None,
    *,
    account: str = "paper",
    token: BridgeToken | None = None,
    events_poll_s: float = 0.02,
    training_poll_s: float = 0.1,
    cache_views: bool = True,
) -> FastAPI:
    """The bridge app for ``account``'s ledger under ``results`` (or ``$FOXLAKE_RESULTS`` or ``./RESULTS``).

    ``token``: the control token (``bridge.auth.resolve_token``); ``None`` creates no control endpoint that can
    succeed (every control answers 401/403). ``*_poll_s``: how often the websocket feeds look for new events.
    ``cache_views``: serve each ledger view from memory until the next cycle (off: rebuilt every request, the
    benchmark's baseline).
    """
    root = results_root(results)
    source = LedgerSource(root, account, cache=cache_views)
    token = token or BridgeToken(value="", source="none")
    events = EngineEventFeed(root, account, poll_s=events_poll_s)
    training = TrainingEventFeed(root, poll_s=training_poll_s)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        events.start()
        training.start()
        yield
        await events.stop()
        await training.stop()

    app = FastAPIOffline(
        title="foxlake bridge",
        version="0.2.0",
        lifespan=lifespan,
        description="The live engine's ledger and the training events, for the dashboard. Read endpoints are open "
        "to loopback clients; controls need `Authorization: Bearer <token>`.",
    )
    reads = [Depends(require_token_beyond_loopback(token))]
    controls = [Depends(require_token(token))] if token.value else [Depends(_no_token)]

    async def ledger_json(key: tuple, build, absent=None) -> Response:
        """A ledger view's JSON; ``absent`` (a payload) answers when no ledger exists yet, else 404.

        This cycle's answer comes from memory on the event loop (a ``stat`` and one indexed query); building it,
        once per cycle, reads the ledger in a worker thread."""
        try:
            body = source.cached(key)
            if body is None:
                body = await anyio.to_thread.run_sync(source.cached_json, key, build)
            return Response(body, media_type="application/json")
        except NoLedger as exc:
            if absent is not None:
                return Response(to_json(absent), media_type="application/json")
            raise HTTPException(404, str(exc)) from None
        except LedgerUnreadable as exc:
            raise HTTPException(503, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(404, str(exc).removeprefix(f"{source.path}: ")) from None

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get(
        "/api/state",
        response_model=EngineState,
        responses={503: {"description": "no readable engine state"}},
        dependencies=reads,
    )
    async def api_state() -> EngineState:
        """The engine's last published state; ``stopped`` with zero cycles when no engine has run."""
        try:
            state = read_state(root)
        except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise HTTPException(503, f"engine state unreadable: {_short(exc)}") from None
        if state is None:
            return EngineState(status="stopped", current_stage="idle", last_cycle=None, uptime_seconds=0.0)
        try:
            return EngineState.model_validate(state)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"]) or "<state>"
            raise HTTPException(503, f"engine state invalid: {where}: {e['msg']}") from None

    @app.get("/api/positions", response_model=PositionsPayload, dependencies=reads)
    async def api_positions() -> Response:
        """Open positions after the last cycle, sorted by symbol; weight = market value / equity (shorts negative).
        Empty when no engine has run."""
        empty = PositionsPayload(positions=[], total_positions=0, long_count=0, short_count=0, total_market_value=0)
        return await ledger_json(("positions",), ledger_views.positions, absent=empty)

    @app.get("/api/risk/status", response_model=RiskStatus, dependencies=reads, responses=_NOT_YET)
    async def api_risk() -> Response:
        """Limits and how close the account is to each (fractions of equity), after the last cycle's risk stage."""
        return await ledger_json(("risk",), ledger_views.risk_status)

    @app.get("/api/equity", response_model=EquityHistory, dependencies=reads, responses=_NOT_YET)
    async def api_equity(max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000) -> Response:
        """The equity curve and drawdown, one point per cycle (thinned evenly beyond ``max_points``)."""
        return await ledger_json(
            ("equity", max_points), lambda led: ledger_views.equity_history(led, account, max_points)
        )

    @app.get("/api/orders", response_model=list[OrderRow], dependencies=reads, responses=_NOT_YET)
    async def api_orders(limit: _Limit = 100, symbol: _Symbol = None) -> Response:
        """The newest orders first, with their fill status."""
        return await ledger_json(("orders", limit, symbol), lambda led: ledger_views.orders(led, limit, symbol))

    @app.get("/api/fills", response_model=list[FillRow], dependencies=reads, responses=_NOT_YET)
    async def api_fills(limit: _Limit = 100, symbol: _Symbol = None) -> Response:
        """The newest fills first (price includes slippage; fee in the quote currency)."""
        return await ledger_json(("fills", limit, symbol), lambda led: ledger_views.fills(led, limit, symbol))

    @app.get("/api/cycles", response_model=list[CycleRow], dependencies=reads, responses=_NOT_YET)
    async def api_cycles(limit: _Limit = 100) -> Response:
        """The newest cycles first: trading state, counts of TRADE/HOLD/BLOCKED, latency."""
        return await ledger_json(("cycles", limit), lambda led: ledger_views.cycles(led, limit))

    @app.get("/api/decisions", response_model=CycleDecisions, dependencies=reads, responses=_NOT_YET)
    async def api_decisions(
        cycle_id: Annotated[int | None, Query(ge=1, le=2**62, description="default: the last cycle")] = None,
        action: Literal["TRADE", "HOLD", "BLOCKED"] | None = None,
    ) -> Response:
        """One cycle's decision for every symbol with its stage trace (prediction … execution)."""
        return await ledger_json(
            ("decisions", cycle_id, action), lambda led: ledger_views.cycle_decisions(led, cycle_id, action)
        )

    @app.get("/api/models", response_model=list[ModelInUse], dependencies=reads, responses=_NOT_YET)
    async def api_models() -> Response:
        """The models the engine trades: holdout IC (picked on) beside live realised IC."""
        return await ledger_json(("models",), ledger_views.models_in_use)

    @app.get("/api/training/runs", response_model=list[TrainingRun], dependencies=reads, responses=_NOT_YET)
    def api_training_runs(limit: _Limit = 20) -> list[TrainingRun]:
        """Recent training runs from the catalog."""
        try:
            return catalog_views.recent_runs(root, limit)
        except FileNotFoundError:
            raise HTTPException(404, "no catalog yet: run `foxlake catalog index`") from None
        except Exception as exc:  # noqa: BLE001 - a catalog being swapped or broken is a 503 with its reason
            raise HTTPException(503, f"catalog unreadable: {type(exc).__name__}") from None

    @app.get("/api/commands", response_model=list[CommandAck], dependencies=reads, responses=_NOT_YET)
    def api_commands(limit: _Limit = 50) -> list[CommandAck]:
        """The newest control commands first, with the engine's acknowledgement."""
        try:
            led = source.reader()
            rows = led.con.execute(_COMMANDS + " order by command_id desc limit ?", (limit,)).fetchall()
        except NoLedger as exc:
            raise HTTPException(404, str(exc)) from None
        return [_ack(r) for r in rows]

    @app.post(
        "/api/control/{command}",
        response_model=CommandAck,
        dependencies=controls,
        responses={401: {"description": "no token"}, 403: {"description": "wrong token"}, **_NOT_YET},
    )
    async def api_control(
        command: Annotated[Literal["pause", "resume", "kill", "reset"], PathParam()], body: ControlRequest
    ) -> CommandAck:
        """Queue ``command`` for the engine (applied at its next cycle boundary) and wait up to ``wait_s`` for the
        engine to acknowledge it; ``acknowledged`` says whether it did."""
        try:
            cid = await asyncio.to_thread(append_command, root, account, command, body.reason)
        except FileNotFoundError:
            raise HTTPException(404, f"no ledger for account {account!r} yet: no engine has run it") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        deadline = asyncio.get_running_loop().time() + body.wait_s
        while True:
            row = await asyncio.to_thread(_command_row, source, cid)
            if row[4] is not None or asyncio.get_running_loop().time() >= deadline:
                return _ack(row)
            await asyncio.sleep(0.05)

    @app.websocket("/ws/events")
    async def ws_events(websocket: WebSocket, after: int | None = None, recent: int = RECENT_EVENTS) -> None:
        """Every engine event as it is written (contract /ws/events, plus ``event_id`` and ``cycle_id``). A new
        client gets the ``recent`` last events first; ``after=<event_id>`` resumes after that event instead."""
        if not await _admit(websocket, token):
            return
        start = after if after is not None else events.recent_start(max(0, min(recent, 5000)))
        await _stream(websocket, events, start)

    @app.websocket("/ws/training")
    async def ws_training(websocket: WebSocket, after: int | None = None) -> None:
        """Training progress (contract /ws/training, plus ``seq``, the line of the events file): the newest run's
        events from its start, then each as it is written; ``after=<seq>`` resumes instead."""
        if not await _admit(websocket, token):
            return
        await _stream(websocket, training, after if after is not None else training.run_start())

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


_NOT_YET = {404: {"description": "no ledger (or catalog) yet"}, 503: {"description": "ledger unreadable"}}
_Limit = Annotated[int, Query(ge=1, le=10_000)]
_Symbol = Annotated[str | None, Query(max_length=64)]
_COMMANDS = "select command_id, command, reason, applied_cycle, applied_at, result from commands"


def _no_token() -> None:
    raise HTTPException(401, "controls are off: the bridge was started without a token")


def _command_row(source: LedgerSource, cid: int) -> tuple:
    return source.reader().con.execute(_COMMANDS + " where command_id = ?", (cid,)).fetchone()


def _ack(row: tuple) -> CommandAck:
    cid, command, reason, cycle, at, result = row
    return CommandAck(
        command_id=cid,
        command=command,
        reason=reason,
        acknowledged=cycle is not None,
        applied_cycle=cycle,
        applied_at=at,
        result=result,
    )


async def _admit(websocket: WebSocket, token: BridgeToken) -> bool:
    """Accept a websocket from loopback, or from elsewhere with ``?token=`` or a bearer header; else close 1008."""
    host = websocket.client.host if websocket.client else None
    if not is_loopback(host):
        given = websocket.query_params.get("token") or bearer(websocket.headers)
        try:
            check_token(given, token)
        except HTTPException:
            await websocket.close(code=1008)
            return False
    await websocket.accept()
    return True


async def _stream(websocket: WebSocket, feed, start: int) -> None:
    """Send the feed's messages after ``start``, then each new batch, until the client goes (noticed at once: a
    receiver task waits for its close while the sender waits for the feed)."""

    async def send() -> None:
        cursor = start
        while True:
            changed = feed.changed
            batch = await feed.after(cursor)
            for seq, text in batch:
                await websocket.send_text(text)
                cursor = seq
            if not batch:
                await changed.wait()

    async def receive() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; anything they send is ignored

    tasks = [asyncio.ensure_future(send()), asyncio.ensure_future(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await t


def _short(exc: BaseException) -> str:
    """The error in a few words, without the paths it may carry."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[1] if text.startswith("/") and ": " in text else text
