"""Inference paths: which inputs a loaded model reads and how its output reaches the engine (contracts 1.3, 1.4).

* **features** (``input_mode = "features"``, rule 5's default): the feature rows of ``live.features``, built by the
  training code (``ml.features``).
* **raw OHLCV** (``input_mode = "raw_sequence"``, :func:`uses_raw_ohlcv`): windows of the meta's
  ``sequence_length`` bars × ``sequence_channels`` from the one per-symbol bar window (``live.bar_window``),
  normalised by the training function with the meta's ``sequence_normalization`` (rule 6).
* **cross-sectional ranking** (an enabled ``cross_sectional_ranking`` block, rule 7):
  :class:`CrossSectionalRankingPredictor` scores every symbol of the timestamp together and hands the engine
  **cross-sectional z-scores** (dimensionless: mean 0, standard deviation 1 over the symbols scored at that bar),
  since a ranking score means something only within its timestamp. Arbitration turns a z-score into bps as
  ``alpha = IC * sigma * z`` (``live.engine.arbitration``), never as a return.

:func:`serving_path` decides the path at load and refuses, with the reason, what the engine cannot serve.
"""

from __future__ import annotations

import numpy as np

from contracts.families import family_spec
from contracts.model_meta import ModelMeta
from live.engine.blending import zscore as cross_sectional_z  # across one timestamp's symbols
from ml.sequences import SequenceSpec


def uses_raw_ohlcv(meta: ModelMeta) -> bool:
    """Whether the model reads raw OHLCV windows instead of feature rows (``input_mode``; rule 5's default)."""
    return meta.input_mode == "raw_sequence"


def is_ranking(meta: ModelMeta) -> bool:
    """Whether the model was trained with a ranking objective (an enabled ``cross_sectional_ranking`` block)."""
    return bool(meta.cross_sectional_ranking and meta.cross_sectional_ranking.enabled)


def serving_path(meta: ModelMeta, model_spec: SequenceSpec | None) -> tuple[SequenceSpec | None, bool]:
    """``(window spec or None, ranking)`` of a loaded model; ``model_spec`` is the window its file says it reads.

    Raises:
        ValueError: the engine cannot serve this model; the message names the field.
    """
    fam = family_spec(meta.family)
    if fam.input_mode != meta.input_mode:
        raise ValueError(f"input_mode is {meta.input_mode!r} but family {meta.family} reads {fam.input_mode!r}")
    spec = None
    if uses_raw_ohlcv(meta):
        spec = SequenceSpec.from_meta(meta.sequence_length, meta.sequence_channels, meta.sequence_normalization)
        if model_spec != spec:
            raise ValueError(f"sequence fields describe {spec} but the model file reads {model_spec}")
    ranking = is_ranking(meta)
    if fam.objective == "ranking" and not ranking:
        raise ValueError(f"cross_sectional_ranking: family {meta.family} ranks, but the block is missing or disabled")
    if ranking:
        if meta.view != "CROSS_SECTIONAL":
            raise ValueError(f"cross_sectional_ranking: a ranking model needs a cross-section, view is {meta.view}")
        best_ic = meta.cross_sectional_ranking.training_metrics.best_ic
        if best_ic <= 0:
            raise ValueError(f"cross_sectional_ranking.training_metrics.best_ic is {best_ic} <= 0: no skill (rule 7)")
    return spec, ranking


class CrossSectionalRankingPredictor:
    """A ranking model's inference path: all symbols of one timestamp scored together, returned as z-scores."""

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        if not loaded.ranking:
            raise ValueError(f"{loaded.key} is not a ranking model")

    def ranking_config(self) -> dict:
        """The training's ranking settings (target type, loss, window), as the meta records them."""
        block = self.loaded.meta.cross_sectional_ranking
        return {k: getattr(block, k) for k in ("target_type", "loss_type", "sequence_length", "normalization")}

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Z-scores across the rows of ``X`` (every symbol of the timestamp that has complete inputs)."""
        return cross_sectional_z(self.loaded.predict(X))
