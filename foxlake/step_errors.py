"""A failed step's own error, read back from the run's events: with the multiprocess executor the step raised it in
another process, so the CLI gets Dagster's record of it (class, message, stack), not the exception."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

USER_ERRORS = frozenset({
    "ValueError", "KeyError", "FileNotFoundError", "FileExistsError", "PermissionError", "Failure",
    "DagsterAssetCheckFailedError",
})  # fmt: skip
"""Error classes a step raises for bad input the user can fix (duckdb's ``*Exception`` classes too)."""


class StepFailure(RuntimeError):
    """A step of the run failed in its own process: the error it raised, as Dagster recorded it there.

    Attributes:
        step: the step's key.
        cls_name: the error's class name.
        text: the error's message without its class name.
        user_error: whether the input is at fault (:data:`USER_ERRORS`, duckdb's errors), not the code.
    """

    def __init__(self, step: str, cls_name: str, text: str, stack: str = "") -> None:
        self.step, self.cls_name, self.text = step, cls_name, text
        self.user_error = cls_name in USER_ERRORS or (cls_name.endswith("Exception") and "duckdb" in stack)
        super().__init__(text if self.user_error else f"step {step} failed: {cls_name}: {text}\n{stack}")


def step_failure(result: dg.ExecuteJobResult) -> StepFailure:
    """The first failed step's own error (the innermost cause of Dagster's wrappers), or the run's failure."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster") and "Check" not in error.cls_name:
                error = error.cause
            text = error.message.strip()
            prefix = f"{error.cls_name}: "
            text = text.split(prefix, 1)[1] if prefix in text.split("\n", 1)[0] else text
            if error.cls_name == "KeyError" and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]  # str(KeyError) quotes its argument
            return StepFailure(event.step_key or "?", error.cls_name, text, "".join(error.stack))
    return StepFailure("run", "DagsterRunFailure", f"Dagster run {result.run_id} did not succeed (see the Dagster UI)")
