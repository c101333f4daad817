"""Champion/challenger promotion: a retrained model replaces the one trading only if it is better on data neither saw.

Per tradable target, the alias ``champion.<target>`` points at the CROSS_SECTIONAL model live trading uses (the
``champions`` policy of :mod:`live.policies` trades every ``champion.*`` alias). After a retrain:

1. **Challenger**: the best model of the target's newest complete run in ``pick_candidates`` (the catalog's
   blocking rules: complete run, verified checksum, holdout metrics, tradable target) that passes the floor
   (``passes_floor``). No such model: nothing to promote. The alias ``challenger.<target>`` is pointed at it, with
   the decision in its note, whether or not it is promoted, so its history holds every candidate.
2. **Window neither was fitted on**: from the later of the two models' fit ends (a ``pre_holdout`` model was fitted
   on bars before its ``holdout_start``; an ``all_data`` refit on bars up to its ``data_end``) to the newest bar in
   the lake. The challenger's holdout chose it among its run's models, so on that part of the window its number is
   mildly optimistic; neither model's parameters ever saw a bar of it.
3. **Score**: both models predict every bar of the window from the lake's feature table (the same
   ``ml.features`` code as training and live); per bar timestamp the cross-sectional Pearson IC with the target
   (``ml.metrics.per_timestamp_ic``), over the timestamps where both scored the same symbols; ``mean_IC`` and
   ``t_stat`` as REFERENCE.md defines them (``ml.metrics.summarize_ic``).
4. **Decision**: promote when there is no champion, or when the challenger's mean IC exceeds the champion's by at
   least ``margin_ic`` over at least ``min_timestamps`` timestamps and its own t-stat reaches ``min_t_stat``.
   ``champion.<target>`` then moves with a note holding the reason and both scores; a refused challenger stays in
   the catalog and in the ``challenger.<target>`` history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from catalog.aliases import get_alias, set_alias
from catalog.query import sql
from live.loader import load_model
from loop.config import PromotionConfig
from ml.lake import read_table, table_dir
from ml.metrics import per_timestamp_ic, summarize_ic
from ml.targets import TargetSpec, add_targets

CHAMPION = "champion"
CHALLENGER = "challenger"
VIEW = "CROSS_SECTIONAL"


def champion_alias(target: str) -> str:
    return f"{CHAMPION}.{target}"


def challenger_alias(target: str) -> str:
    return f"{CHALLENGER}.{target}"


@dataclass(frozen=True)
class WindowScore:
    """One model's score on the comparison window (cross-sectional IC per bar timestamp)."""

    model_dir: str
    mean_ic: float
    t_stat: float
    ic_ir: float
    n_timestamps: int


@dataclass(frozen=True)
class Decision:
    """What :func:`promote` decided for one target, with the numbers it decided on."""

    target: str
    promoted: bool
    reason: str
    challenger: str | None
    champion_before: str | None
    window_start: str | None = None
    window_end: str | None = None
    challenger_score: WindowScore | None = None
    champion_score: WindowScore | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _model_row(results: Path, model_dir: str) -> dict:
    df = sql(
        results,
        "select holdout_start, data_end, fit_scope from models where model_dir = ?",
        [model_dir],
    )
    if df.height == 0:
        raise ValueError(f"{model_dir}: not an indexed model")
    return df.row(0, named=True)


def challenger_for(results: str | Path, target: str, interval_minutes: float) -> str | None:
    """The best CROSS_SECTIONAL model of the target's newest complete run that passes the floor, or None."""
    df = sql(
        results,
        "select model_dir from pick_candidates where target = ? and view = ? and interval_minutes = ? "
        "and recency = 1 and passes_floor order by pick_score desc nulls last, mean_ic desc, model_dir limit 1",
        [target, VIEW, interval_minutes],
    )
    return df["model_dir"][0] if df.height else None


def fit_end(row: dict) -> str:
    """The first bar the model's parameters never saw (ISO): its holdout start, or past its data end if refit."""
    if row["fit_scope"] == "all_data" or not row["holdout_start"]:
        return row["data_end"] + "+"  # sorts after data_end: only later bars are unseen
    return row["holdout_start"]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("+").replace("Z", "+00:00"))


def score_models(
    results: str | Path, model_dirs: list[str], start: str, interval_minutes: float
) -> tuple[list[WindowScore], str]:
    """Each model's IC per bar timestamp from ``start`` (inclusive; a trailing ``+`` means strictly after) to the
    lake's newest bar, on the timestamps every model scored; and the window's last timestamp."""
    root = Path(results)
    models = [load_model(root, d, interval_minutes=interval_minutes) for d in model_dirs]
    targets = {m.meta.target for m in models}
    if len(targets) != 1:
        raise ValueError(f"models of different targets cannot be compared: {sorted(targets)}")
    (target,) = targets
    spec = TargetSpec.from_name(target, interval_minutes)
    begin = _ts(start)
    strict = start.endswith("+")
    since = begin.date().isoformat()  # the feature table's rows already hold their full lookback
    features = read_table(table_dir(root, "features", interval_minutes), since=since)
    bars = read_table(table_dir(root, "bars", interval_minutes), since=since)
    ts_type = features.schema["ts"]
    lo = pl.lit(begin).cast(ts_type)
    features = features.filter(pl.col("ts") > lo if strict else pl.col("ts") >= lo)
    panel = add_targets(features, bars, [spec], interval_minutes)
    y = spec.name(interval_minutes)
    scored = []
    for m in models:
        X = panel.select(m.meta.feature_list).to_numpy().astype(float)
        ok = np.isfinite(X).all(axis=1)
        pred = np.full(panel.height, np.nan)
        if ok.any():
            pred[ok] = np.asarray(m.predict(X[ok]), dtype=float).ravel()
        scored.append(pred)
    common = np.isfinite(np.vstack(scored)).all(axis=0) & panel[y].is_not_null().to_numpy()
    base = panel.select("ts", "symbol", y).filter(pl.Series(common))
    out, end = [], None
    for d, pred in zip(model_dirs, scored, strict=True):
        frame = base.with_columns(score=pl.Series(pred[common]))
        ic = per_timestamp_ic(frame, "score", y)
        s = summarize_ic(ic["IC"].to_numpy(), ic["RankIC"].to_numpy(), spec.horizon_bars)
        out.append(WindowScore(d, s["mean_IC"], s["t_stat"], s["IC_IR"], int(s["n_timestamps"])))
        if ic.height:
            end = ic["ts"].max().isoformat().replace("+00:00", "Z")
    return out, end or start


def promote(
    results: str | Path,
    target: str,
    interval_minutes: float,
    cfg: PromotionConfig | None = None,
    *,
    challenger: str | None = None,
    by: str = "loop",
) -> Decision:
    """Score the target's challenger against its champion and move ``champion.<target>`` if it wins (see the
    module docstring). The decision is recorded in the alias history either way.

    Args:
        challenger: a model directory to try instead of the newest run's best; it must pass the same blocking
            rules (a ``pick_candidates`` row of this target's CROSS_SECTIONAL view that passes the floor).
    """
    cfg = cfg or PromotionConfig()
    root = Path(results)
    champion = get_alias(root, champion_alias(target))
    if challenger is not None:
        ok = sql(root, "select 1 from pick_candidates where model_dir = ? and target = ? and view = ? and passes_floor",
                 [challenger, target, VIEW])  # fmt: skip
        if ok.height == 0:
            raise ValueError(f"{challenger}: not a {VIEW} model of {target} that passes the catalog's floor")
    else:
        challenger = challenger_for(root, target, interval_minutes)
    if challenger is None:
        return Decision(target, False, "no model of the newest run passes the floor", None, champion)
    if challenger == champion:
        return Decision(target, False, "the newest run's best model is the champion already", challenger, champion)
    if champion is None:
        decision = Decision(target, True, "no champion yet: the first model that passes the floor", challenger, None)
    else:
        start = max(fit_end(_model_row(root, challenger)), fit_end(_model_row(root, champion)))
        (ch, cp), end = score_models(root, [challenger, champion], start, interval_minutes)
        gain = ch.mean_ic - cp.mean_ic
        if ch.n_timestamps < cfg.min_timestamps:
            ok, why = False, f"only {ch.n_timestamps} unseen timestamps (< {cfg.min_timestamps})"
        elif gain < cfg.margin_ic:
            ok, why = False, f"challenger mean IC {ch.mean_ic:+.4f} vs champion {cp.mean_ic:+.4f}: gain {gain:+.4f} "
            why += f"< margin {cfg.margin_ic}"
        elif ch.t_stat < cfg.min_t_stat:
            ok, why = False, f"challenger t-stat {ch.t_stat:.2f} < {cfg.min_t_stat}"
        else:
            ok, why = True, f"challenger mean IC {ch.mean_ic:+.4f} vs champion {cp.mean_ic:+.4f}: gain {gain:+.4f}"
            why += f" >= margin {cfg.margin_ic}, t {ch.t_stat:.2f}"
        decision = Decision(target, ok, why, challenger, champion, start.rstrip("+"), end, ch, cp)
    note = json.dumps(decision.to_dict(), sort_keys=True, default=str)
    set_alias(root, challenger_alias(target), challenger, note=note, set_by=by)
    if decision.promoted:
        set_alias(root, champion_alias(target), challenger, note=note, set_by=by)
    return decision


def promote_all(
    results: str | Path, interval_minutes: float, cfg: PromotionConfig | None = None, *, by: str = "loop"
) -> list[Decision]:
    """:func:`promote` for every tradable target the catalog has candidates for at this interval."""
    targets = sql(
        results,
        "select distinct target from pick_candidates where interval_minutes = ? and view = ? order by target",
        [interval_minutes, VIEW],
    )["target"].to_list()
    return [promote(results, t, interval_minutes, cfg, by=by) for t in targets]
