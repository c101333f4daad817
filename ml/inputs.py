"""What a model family reads from the panel: feature-table rows or raw OHLCV windows (contract 1.3).

Training, cross-validation and holdout scoring ask a :class:`ModelInputs` for the usable rows of a target and for
the input array of any subset of them, so one code path trains both kinds of family. Every fit also gets the rows'
timestamps as ``groups`` (a ranking objective groups by them; a pointwise one ignores them).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from contracts.families import family_spec
from ml.sequences import SequenceSpec, sequence_inputs, spec_from_params

ROW = "__panel_row"


class ModelInputs(Protocol):
    columns: tuple[str, ...]
    """The panel columns the inputs are computed from (the training-data fingerprint covers them)."""

    def rows(self, panel: pl.DataFrame, target: str) -> pl.DataFrame:
        """The rows a model of ``target`` can be fitted and scored on."""
        ...

    def matrix(self, rows: pl.DataFrame) -> np.ndarray:
        """The input array of ``rows`` (a subset of :meth:`rows`)."""
        ...


class FeatureInputs:
    """Feature-table rows: the target present and every feature past its warm-up."""

    def __init__(self, features: list[str]) -> None:
        self.features = list(features)
        self.columns = tuple(self.features)

    def rows(self, panel: pl.DataFrame, target: str) -> pl.DataFrame:
        return panel.drop_nulls([*self.features, target])

    def matrix(self, rows: pl.DataFrame) -> np.ndarray:
        return rows.select(self.features).to_numpy()


class SequenceInputs:
    """Normalised raw OHLCV windows (:mod:`ml.sequences`) of every panel row, computed once; rows with a complete
    window and the target present are usable."""

    def __init__(self, panel: pl.DataFrame, spec: SequenceSpec) -> None:
        self.spec = spec
        self.columns = tuple(spec.channels)
        self.windows, self.complete = sequence_inputs(panel, spec)
        self._height = panel.height

    def rows(self, panel: pl.DataFrame, target: str) -> pl.DataFrame:
        if panel.height != self._height:
            raise ValueError("SequenceInputs.rows needs the panel its windows were cut from")
        return (
            panel.with_row_index(ROW)
            .filter(pl.Series(self.complete))
            .drop_nulls([target])
            .with_columns(pl.col(ROW).cast(pl.Int64))
        )

    def matrix(self, rows: pl.DataFrame) -> np.ndarray:
        return self.windows[rows[ROW].to_numpy()]


def inputs_for(family: str, params: dict, panel: pl.DataFrame, features: list[str]) -> ModelInputs:
    """The inputs ``family`` reads under ``params`` (its hyper-parameters, defaults applied)."""
    if family_spec(family).input_mode == "raw_sequence":
        return SequenceInputs(panel, spec_from_params(params))
    return FeatureInputs(features)


def timestamp_groups(rows: pl.DataFrame) -> np.ndarray:
    """Each row's timestamp as an integer: the query group of a ranking objective."""
    return rows["ts"].to_physical().to_numpy()
