"""The dashboard bridge: FastAPI over the engine's published state (never its in-process globals)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from contracts.bridge import EngineState
from contracts.paths import results_root
from live.journal import read_state


def create_app(results: str | Path | None = None) -> FastAPI:
    """The bridge app reading ``RESULTS/live`` (``results`` or ``$FOXLAKE_RESULTS`` or ``./RESULTS``)."""
    root = results_root(results)
    app = FastAPI(title="foxlake bridge", version="0.1.0")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "results": str(root.resolve())}

    @app.get("/api/state", response_model=EngineState)
    def api_state() -> EngineState:
        """The engine's last published state; ``stopped`` with zero cycles when no engine has run."""
        state = read_state(root)
        if state is None:
            return EngineState(status="stopped", current_stage="idle", last_cycle=None, uptime_seconds=0.0)
        return EngineState.model_validate(state)

    return app
