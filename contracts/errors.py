"""The one error type every contract violation raises."""

from __future__ import annotations


class ContractError(Exception):
    """A document broke a contract.

    Attributes:
        field: dotted name of the offending field (``""`` when the document as a whole is bad).
        rule: the spec's rule id (e.g. ``"model_meta rule 1"``) or ``"schema"`` for type/shape errors.
        source: where the document came from (a file path), when known.
        detail: what is wrong, in words.
    """

    def __init__(self, field: str, rule: str, detail: str, source: str | None = None) -> None:
        self.field = field
        self.rule = rule
        self.detail = detail
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.field or '<document>'}: [{self.rule}] {self.detail}"

    def with_source(self, source: str) -> ContractError:
        """The same error, now naming the file it came from."""
        return ContractError(self.field, self.rule, self.detail, source=source)
