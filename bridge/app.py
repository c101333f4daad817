"""The dashboard bridge: FastAPI over the engine's published state (never its in-process globals).

It fails soft: a state file that is missing, truncated, binary, of the wrong shape or out of range is answered
with ``503`` and a short JSON reason (``{"detail": …}``), never a bare 500; ``/health`` names no path.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import ValidationError

from contracts.bridge import EngineState
from contracts.paths import results_root
from live.journal import read_state


def create_app(results: str | Path | None = None) -> FastAPI:
    """The bridge app reading ``RESULTS/live`` (``results`` or ``$FOXLAKE_RESULTS`` or ``./RESULTS``)."""
    root = results_root(results)
    app = FastAPI(title="foxlake bridge", version="0.1.0")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/state", response_model=EngineState, responses={503: {"description": "no readable engine state"}})
    def api_state() -> EngineState:
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

    return app


def _short(exc: BaseException) -> str:
    """The error in a few words, without the paths it may carry."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[1] if text.startswith("/") and ": " in text else text
