"""The promotion asset: after every training run, champion/challenger per tradable target (``loop.promotion``)."""

import dagster as dg

from assets.catalog_assets import CATALOG_POOL, model_catalog
from assets.resources import LakeResource
from loop.config import loop_config
from loop.promotion import promote_all


@dg.asset(group_name="loop", kinds={"duckdb"}, pool=CATALOG_POOL, deps=[model_catalog])
def champions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """``champion.<target>`` aliases: the newest run's best model replaces a target's champion only when it beats
    it on bars neither was fitted on by ``loop.promotion.margin_ic``; every decision, with both scores, is in the
    alias history (``foxlake catalog alias show champion.<target>``). The ``champions`` live policy trades them."""
    cfg = lake.run_config()
    decisions = promote_all(
        lake.results(), cfg.bar_interval_minutes, loop_config(cfg.loop).promotion, by=f"run {context.run_id[:8]}"
    )
    rows = ["| target | promoted | challenger IC | champion IC | window | reason |", "|---|---|---|---|---|---|"]
    for d in decisions:
        ch = f"{d.challenger_score.mean_ic:+.4f}" if d.challenger_score else "—"
        cp = f"{d.champion_score.mean_ic:+.4f}" if d.champion_score else "—"
        window = f"{d.window_start} .. {d.window_end}" if d.window_start else "—"
        rows.append(f"| {d.target} | {'yes' if d.promoted else 'no'} | {ch} | {cp} | {window} | {d.reason} |")
        context.log.info(f"{d.target}: {'promoted' if d.promoted else 'kept the champion'}: {d.reason}")
    return dg.MaterializeResult(
        metadata={
            "promoted": sum(d.promoted for d in decisions),
            "targets": len(decisions),
            "decisions": dg.MetadataValue.md("\n".join(rows)),
        }
    )
