"""routing_decision.json and globals/routing_decisions.json (spec: routing contract rules 1–2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError, field_validator

from contracts.errors import ContractError
from contracts.io import read_json

Route = Literal["CROSS_SECTIONAL", "SYMBOL_SPECIFIC", "BOTH", "BLOCKED"]
ROUTES: tuple[str, ...] = ("CROSS_SECTIONAL", "SYMBOL_SPECIFIC", "BOTH", "BLOCKED")


class RoutingDecision(BaseModel):
    """Why one target goes to which view. ``reason`` names the rule that fired and its numbers."""

    model_config = ConfigDict(extra="allow")

    route: Route
    reason: str
    skill01_cs: float | None = None
    skill01_sym_mean: float | None = None
    auc: float | None = None
    frac_symbols_good: float | None = None
    winner_symbols: list[str] | None = None
    n_symbols_evaluated: int | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("routing rule 2: reason must be a human-readable explanation")
        return v

    def views(self) -> list[str]:
        """The model views this route trains."""
        return {
            "CROSS_SECTIONAL": ["CROSS_SECTIONAL"],
            "SYMBOL_SPECIFIC": ["SYMBOL_SPECIFIC"],
            "BOTH": ["CROSS_SECTIONAL", "SYMBOL_SPECIFIC"],
            "BLOCKED": [],
        }[self.route]


class RoutingDecisions(RootModel[dict[str, RoutingDecision]]):
    """``{target: RoutingDecision}``, the shape of both the global and the per-target files."""


def parse_routing(doc: Any, source: str | Path | None = None) -> RoutingDecisions:
    """Validate a routing document; errors name the file, the target and the field."""
    try:
        return RoutingDecisions.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        rule = (
            "routing rule 1"
            if e["loc"][-1:] == ("route",)
            else "routing rule 2"
            if "reason" in e["loc"]
            else "routing schema"
        )
        err = ContractError(".".join(str(p) for p in e["loc"]), rule, e["msg"])
        raise err.with_source(str(source)) if source else err from None


def load_routing(path: str | Path) -> RoutingDecisions:
    try:
        doc = read_json(path)
    except ValueError as exc:
        raise ContractError("", "json", str(exc), source=str(path)) from None
    return parse_routing(doc, source=path)
