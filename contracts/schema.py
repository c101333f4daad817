"""JSON Schema export: one file per contract (``foxlake contracts schema DIR``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from contracts.bridge import EngineEvent, EngineState, PositionsPayload, RiskStatus, TrainingEvent
from contracts.io import write_atomic_json
from contracts.manifest import Manifest
from contracts.model_meta import CONTRACT_VERSION, ModelMeta
from contracts.routing import RoutingDecisions

SCHEMAS: dict[str, type[BaseModel]] = {
    "model_meta": ModelMeta,
    "manifest": Manifest,
    "routing_decisions": RoutingDecisions,
    "api_state": EngineState,
    "api_positions": PositionsPayload,
    "api_risk_status": RiskStatus,
    "ws_event": EngineEvent,
    "ws_training_event": TrainingEvent,
}


def write_json_schemas(directory: str | Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every contract into ``directory``; returns the paths."""
    out = []
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"foxlake/{name}/{CONTRACT_VERSION}"
        schema["title"] = f"{name} (contract {CONTRACT_VERSION})"
        out.append(write_atomic_json(Path(directory) / f"{name}.schema.json", schema))
    return out
