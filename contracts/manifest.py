"""manifest.json: run-level metadata and the target index (spec: manifest contract rules 1–3)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from contracts.errors import ContractError
from contracts.families import canonical_family
from contracts.io import read_json
from contracts.paths import VIEWS

TargetStatus = Literal["complete", "partial", "failed"]


class TargetIndexEntry(BaseModel):
    """One target of a run: its status, the families with a trained model, its view."""

    model_config = ConfigDict(extra="allow")

    status: TargetStatus
    families_trained: list[str]
    view: str
    auc: float | None = None

    @model_validator(mode="after")
    def _rules(self) -> TargetIndexEntry:
        if self.view not in VIEWS:
            raise ContractError("view", "manifest schema", f"{self.view!r} is not one of {VIEWS}")
        try:
            self.families_trained = [canonical_family(f) for f in self.families_trained]
        except KeyError as exc:
            raise ContractError("families_trained", "manifest rule 3", str(exc.args[0])) from None
        if self.status == "complete" and not self.families_trained:
            raise ContractError("families_trained", "manifest rule 3", "a complete target lists its trained families")
        return self


class Manifest(BaseModel):
    """A training run's manifest; written last, so its presence means the run is whole."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    run_instance_id: str
    timestamp: str
    git_sha: str
    target_index: dict[str, TargetIndexEntry]
    config_digest: str | None = None
    is_comparable: bool | None = None
    experiment_config: dict[str, Any] | None = None
    run_metadata: dict[str, Any] | None = None
    contract_version: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _iso_timestamp(cls, v: str) -> str:
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {v!r} is not an ISO-8601 date and time") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {v!r} has no UTC offset")
        return v


def parse_manifest(doc: Any, source: str | Path | None = None) -> Manifest:
    """Validate a manifest document; errors name the file and the field."""
    try:
        if isinstance(doc, dict) and isinstance(doc.get("target_index"), dict):
            for target, entry in doc["target_index"].items():
                try:
                    TargetIndexEntry.model_validate(entry)
                except ContractError as exc:
                    raise ContractError(f"target_index.{target}.{exc.field}", exc.rule, exc.detail) from None
                except ValidationError:
                    pass  # reported below with its full location
        return Manifest.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        err = ContractError(".".join(str(p) for p in e["loc"]), "manifest schema", e["msg"])
    except ContractError as exc:
        err = exc
    raise err.with_source(str(source)) if source else err


def load_manifest(path: str | Path) -> Manifest:
    try:
        doc = read_json(path)
    except ValueError as exc:
        raise ContractError("", "json", str(exc), source=str(path)) from None
    return parse_manifest(doc, source=path)


def check_target_coverage(manifest: Manifest, trained_targets: set[str]) -> None:
    """Manifest rule 1: every target with at least one trained model has a target_index entry."""
    missing = sorted(trained_targets - set(manifest.target_index))
    if missing:
        raise ContractError("target_index", "manifest rule 1", f"targets with trained models missing: {missing}")
