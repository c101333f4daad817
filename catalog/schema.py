"""The catalog's tables, views and macros (the documented schema). Paths are stored relative to the RESULTS root.

Tables
------
``meta``               key/value: ``schema_version`` and the last index's statistics.
``runs``               one row per ``runs/<run_id>/<run_instance_id>/manifest.json``.
``run_targets``        one row per target of a manifest's ``target_index``.
``models``             one row per accepted ``model_meta.json``: a typed column for every model_meta field
                       (``feature_list`` as a LIST, metrics as columns, the JSON sub-documents as JSON), the
                       checksum verified at index time (``checksum_ok``), lineage (run, Dagster run id, data
                       partitions, config digest) and the full JSON (``meta_json``).
``routing_decisions``  one row per target of every routing file: scope ``global``
                       (``globals/routing_decisions.json``), ``target`` (``targets/<t>/decision/``) and ``view``
                       (``targets/<t>/models/view=<V>/``).
``artifacts``          every file the index reads: path, kind, size, mtime, sha256.
``rejected``           files that broke a contract: path, reason (field, rule), when first seen.
``aliases``            alias → model_dir with history (``active`` marks the current row of each alias),
                       loaded from ``RESULTS/catalog/aliases.jsonl`` on every index (the file is the record).

Metrics. ``mean_ic``, ``mean_rank_ic``, ``ic_ir``, ``t_stat``, ``hit_rate``, the cost columns (``spread_bps``,
``turnover_frac``, ``net_spread_bps``, ``breakeven_cost_bps`` at ``cost_bps``) are what ``model_meta.metrics``
says under those names: for a model trained with a holdout (``evaluated_on = 'holdout'``) they are **holdout**
figures; the ``cv_*`` columns are the walk-forward CV figures on the data that ranked, selected and routed
(optimistic: after selection). ``pick_score`` is what selection ranks by: holdout IC_IR for a CROSS_SECTIONAL
model, holdout t-stat for a SYMBOL_SPECIFIC one (a ratio of a few per-symbol windows means less).

Views: ``latest_models``, ``best_models``, ``run_summary``, ``model_lineage``, ``active_aliases``; table macro
``best_models_by(metric)``. ``best_models`` (and the macro) apply the **selection rule**: among the models of
complete runs with a verified checksum and holdout metrics, only those of the newest run that trained their
target and view at their interval (recency: a lucky old model cannot stay), whose holdout ``mean_ic`` exceeds
``MIN_HOLDOUT_IC`` and whose holdout ``t_stat`` reaches ``MIN_HOLDOUT_T`` (the floor; a ranking model, contract 1.4,
also needs ``cross_sectional_ranking.training_metrics.best_ic > 0``: rule 7's "useful model"); then the best
``pick_score`` (or the macro's metric) per target/view/symbol. Research-only models (a target from the close the
features see, which no order fills at) are listed, marked ``research_only``; live policies never pick them.

Selection table, recomputed on every index write (the catalog changes only then): ``pick_candidates`` holds every
model the live policies may pick (complete run, verified checksum, holdout metrics, tradable target) from the
``MAX_RECENT_RUNS`` newest runs per interval/target/view, with its ``recency`` (1 = newest), ``pick_score``,
``passes_floor`` and the answers of the built-in policies as flags: ``best_in_view`` (the best passing model of the
newest run per target/view/symbol) and ``best_of_recent`` (the best passing one over the ``RECENT_RUNS`` newest
runs). The built-in policies (``live.policies``) read it, so picking models is one small filtered lookup.
"""

from __future__ import annotations

SCHEMA_VERSION = 7

MIN_HOLDOUT_IC = 0.0
"""The selection floor: a model is picked only if its holdout mean IC is above this (it shows the sign it was
trained for, on data no decision saw)."""
MIN_HOLDOUT_T = 2.0
"""The selection floor: and only if its holdout t-stat (non-overlapping timestamps) reaches this."""
MAX_RECENT_RUNS = 10
"""``pick_candidates`` keeps the models of this many newest runs per interval/target/view."""
RECENT_RUNS = 3
"""``pick_candidates.best_of_recent``: the best model per target/view/symbol over this many newest runs."""

# Columns whose values are times of indexing: they differ between two builds of the same files.
INDEXING_TIME_COLUMNS = {"indexed_at", "seen_at"}

TABLES = """
create table meta (key varchar primary key, value varchar);

create table runs (
    run_dir varchar primary key,          -- runs/<run_id>/<run_instance_id>
    run_id varchar not null,
    run_instance_id varchar not null,
    timestamp varchar,                    -- manifest creation time (ISO 8601)
    git_sha varchar,
    config_digest varchar,
    dagster_run_id varchar,               -- run_metadata.dagster_run_id
    interval_minutes double,              -- run_metadata.interval_minutes
    n_targets integer,
    complete boolean,                     -- every target in target_index has status 'complete'
    reused_from varchar,                  -- upstream run_dir this run reused ranking/routing from
    manifest_json json using compression zstd not null,
    is_comparable boolean,
    contract_version varchar,
    manifest_path varchar not null,
    manifest_sha256 varchar,
    indexed_at timestamp
);

create table run_targets (
    run_dir varchar not null,
    target varchar not null,
    status varchar not null,              -- complete | partial | failed
    families_trained varchar[],
    view varchar,
    auc double,
    route varchar,                        -- foxlake extension of the entry, when present
    n_models integer,
    best_mean_ic double,
    entry_json json,
    primary key (run_dir, target)
);

create table models (
    model_dir varchar not null,           -- runs/.../view=<V>/[symbol=<S>/]family=<F>; unique by construction
                                          -- (one row per model directory; no index, for insert speed)
    run_dir varchar not null,             -- runs/<run_id>/<run_instance_id>
    run_id varchar,
    run_instance_id varchar,
    target varchar not null,
    view varchar not null,
    symbol varchar,
    family varchar not null,              -- canonical spelling
    interval_minutes double,              -- NULL: a contract-1.0 meta that did not record it (never picked)
    feature_list varchar[] not null,      -- the order the model was trained with
    n_features integer not null,
    mean_ic double,                       -- metrics.mean_IC
    mean_rank_ic double,                  -- metrics.mean_RankIC
    ic_ir double,                         -- metrics.IC_IR
    t_stat double,                        -- metrics.t_stat
    metric_kind varchar,                  -- metrics.metric_kind
    cv_mean double,
    cv_std double,
    n_rows_train bigint,
    n_rows_val bigint,
    input_mode varchar,                   -- 'features' (default, rule 5) or 'raw_sequence'
    model_path varchar,                   -- the model file, relative to RESULTS
    model_checksum varchar,               -- as written in model_meta (rule 2)
    checksum_ok boolean,                  -- sha256 of the model file equals model_checksum, verified at index time
    contract_version varchar,             -- declared, else the oldest version the document fits
    meta_json json using compression zstd not null,  -- the file as written
    route varchar,
    model_file varchar,
    checksum_status varchar,              -- ok | mismatch | missing (no model_checksum, rule 4)
    model_sha256 varchar,                 -- sha256 of the model file at index time
    model_size bigint,
    hit_rate double,                      -- metrics.hit_rate
    rank_ic_ir double,                    -- metrics.RankIC_IR
    evaluated_on varchar,                 -- metrics.evaluated_on: 'holdout' (NULL: before holdouts; never picked)
    holdout_start varchar,                -- metrics.holdout_start / holdout_end: the window the metrics cover
    holdout_end varchar,
    ic_coverage double,                   -- share of evaluated timestamps whose IC is defined (constant score: 0)
    spread_bps double,                    -- top-bottom (CS) or long/short (one symbol) spread per holding period
    turnover_frac double,                 -- one-way turnover per rebalance
    net_spread_bps double,                -- spread_bps - cost_bps x two-way turnover
    breakeven_cost_bps double,            -- the one-way cost at which the net spread is 0
    cost_bps double,                      -- the one-way cost the net spread charged
    cv_mean_ic double,                    -- metrics.cv_mean_IC etc.: walk-forward CV after selection (optimistic)
    cv_mean_rank_ic double,
    cv_ic_ir double,
    cv_t_stat double,
    cv_net_spread_bps double,
    research_only boolean,                -- the target starts at the close the features see: never traded
    fit_scope varchar,                    -- 'pre_holdout' or 'all_data' (refit after the holdout evaluation)
    pick_score double as (case when view = 'SYMBOL_SPECIFIC' then t_stat else ic_ir end) virtual,
    metrics_json json as (json_extract(meta_json, '$.metrics')) virtual,  -- every metric as written
    params_used json as (json_extract(meta_json, '$.params_used')) virtual,
    feature_importance json as (json_extract(meta_json, '$.feature_importance')) virtual,
    cv_scores double[],
    package_versions json as (json_extract(meta_json, '$.package_versions')) virtual,
    sequence_length integer,              -- raw_sequence mode (1.3)
    sequence_channels varchar[],
    sequence_normalization varchar,
    cs_ranking_enabled boolean,           -- cross_sectional_ranking block (1.4)
    cs_ranking_target_type varchar,
    cs_ranking_loss_type varchar,
    cs_ranking_sequence_length integer,
    cs_ranking_normalization varchar,
    cs_ranking_best_ic double,
    cs_ranking_best_spread double,
    cs_ranking_epochs_trained integer,
    cs_ranking_ic_ir double,
    cs_ranking_ic_hit_rate double,
    cs_ranking_turnover double,
    cs_ranking_net_spread double,
    legacy_features boolean,              -- the document used the deprecated 'features' field
    horizon_bars integer,                 -- foxlake extension
    dagster_run_id varchar,               -- lineage: from the run's manifest (run_metadata)
    config_digest varchar,                -- lineage: reproducibility.json
    data_partitions varchar[],            -- lineage: reproducibility.json (the lake partitions the model saw)
    data_start varchar,
    data_end varchar,
    seed bigint,
    meta_path varchar not null,
    meta_sha256 varchar,
    indexed_at timestamp
);

create table routing_decisions (
    path varchar not null,
    run_dir varchar not null,
    scope varchar not null,               -- 'global', 'target' or 'view'
    target varchar not null,
    view varchar,                         -- set for scope 'view'
    route varchar not null,
    reason varchar not null,
    skill01_cs double,
    skill01_sym_mean double,
    frac_symbols_good double,
    winner_symbols varchar[],
    n_symbols_evaluated integer,
    decision_json json not null,
    auc double,
    indexed_at timestamp,
    primary key (path, target)
);

create table artifacts (                  -- path is unique (by construction; no index, for insert speed)
    path varchar not null,
    kind varchar not null,                -- manifest | routing_decision | model_meta | model | reproducibility
                                          -- | fingerprints | model_extra
    -- derived from path when read (virtual: nothing to compute while indexing)
    run_dir varchar as (case when path like 'runs/%/%/%' then array_to_string(string_split(path, '/')[1:3], '/') end)
        virtual,
    model_dir varchar as (case when kind not in ('manifest', 'routing_decision') then parse_dirpath(path, '/') end)
        virtual,                          -- set for files of a model directory
    size bigint not null,
    mtime timestamp not null,
    mtime_ns bigint not null,
    sha256 varchar
);

create table rejected (
    path varchar primary key,
    kind varchar,                         -- model_meta | manifest | routing_decision | alias
    reason varchar not null,              -- '<field>: [<rule>] <detail>'
    seen_at timestamp,                    -- first index that saw this version of the file
    run_dir varchar,
    field varchar,
    rule varchar
);

create table aliases (
    seq integer primary key,              -- line number in RESULTS/catalog/aliases.jsonl
    alias varchar not null,
    model_dir varchar,                    -- NULL for a cleared alias
    set_at timestamp,
    set_by varchar,
    note varchar,
    active boolean not null               -- the latest row of each alias (and not a clear)
);
"""

VIEWS = f"""
create view latest_models as
select m.* from models m join runs r using (run_dir)
qualify row_number() over (partition by m.target, m.view, coalesce(m.symbol, ''), m.family
                           order by r.timestamp desc, r.run_dir desc) = 1;

create view eligible_models as
select m.*, r.timestamp as run_timestamp,
       dense_rank() over (partition by m.interval_minutes, m.target, m.view
                          order by r.timestamp desc, r.run_dir desc) as recency,
       coalesce(m.mean_ic > {MIN_HOLDOUT_IC} and m.t_stat >= {MIN_HOLDOUT_T}, false)
           and not coalesce(m.cs_ranking_enabled and m.cs_ranking_best_ic <= 0, false) as passes_floor
from models m join runs r using (run_dir)
where r.complete and m.checksum_ok and m.evaluated_on = 'holdout';

create view best_models as
select * exclude (run_timestamp, recency, passes_floor) from eligible_models
where recency = 1 and passes_floor
qualify row_number() over (partition by target, view, coalesce(symbol, '')
                           order by pick_score desc nulls last, mean_ic desc nulls last, model_dir) = 1;

create view run_summary as
select r.run_dir, r.run_id, r.run_instance_id, r.timestamp, r.interval_minutes, r.complete, r.n_targets,
       count(m.model_dir) as n_models, max(m.mean_ic) as best_mean_ic, max(m.ic_ir) as best_ic_ir,
       r.dagster_run_id, r.config_digest, r.git_sha,
       count(m.model_dir) filter (where not m.checksum_ok) as n_checksum_bad,
       (select count(*) from rejected x where x.run_dir = r.run_dir) as n_rejected
from runs r left join models m using (run_dir)
group by all;

create view model_lineage as
select m.model_dir, m.run_dir, m.run_id, m.run_instance_id, coalesce(m.dagster_run_id, r.dagster_run_id)
       as dagster_run_id, coalesce(m.config_digest, r.config_digest) as config_digest, m.data_partitions,
       m.data_start, m.data_end, m.seed, r.git_sha, r.timestamp as run_timestamp, r.reused_from,
       m.model_path, m.model_sha256, m.checksum_ok
from models m left join runs r using (run_dir);

create view active_aliases as
select a.alias, a.model_dir, a.set_at, a.set_by, a.note, m.model_dir is not null as indexed,
       m.target, m.view, m.symbol, m.family, m.interval_minutes, m.checksum_ok, m.model_path
from aliases a left join models m using (model_dir)
where a.active;

create macro best_models_by(metric) as table
select * exclude (run_timestamp, recency, passes_floor) from eligible_models
where recency = 1 and passes_floor
qualify row_number() over (
    partition by target, view, coalesce(symbol, '')
    order by case metric when 'pick_score' then pick_score when 'ic_ir' then ic_ir when 'mean_ic' then mean_ic
                         when 'mean_rank_ic' then mean_rank_ic when 'rank_ic_ir' then rank_ic_ir
                         when 't_stat' then t_stat when 'hit_rate' then hit_rate
                         when 'net_spread_bps' then net_spread_bps end desc nulls last,
             mean_ic desc nulls last, model_dir) = 1;
"""

PICKS = f"""
create or replace table pick_candidates as
with c as (
    select interval_minutes, target, view, symbol, family, model_dir, run_dir, recency, pick_score, mean_ic,
           t_stat, ic_ir, net_spread_bps, passes_floor
    from eligible_models
    where not coalesce(research_only, false) and recency <= {MAX_RECENT_RUNS}
), ranked as (
    select *,
           passes_floor and recency = 1 and row_number() over (
               partition by interval_minutes, target, view, coalesce(symbol, ''), passes_floor and recency = 1
               order by pick_score desc nulls last, mean_ic desc nulls last, model_dir) = 1 as best_in_view,
           passes_floor and recency <= {RECENT_RUNS} and row_number() over (
               partition by interval_minutes, target, view, coalesce(symbol, ''),
                            passes_floor and recency <= {RECENT_RUNS}
               order by pick_score desc nulls last, mean_ic desc nulls last, model_dir) = 1 as best_of_recent
    from c
)
select * from ranked
order by interval_minutes, target, view, symbol nulls first, family, recency;
"""

BEST_METRICS = ("pick_score", "ic_ir", "mean_ic", "mean_rank_ic", "rank_ic_ir", "t_stat", "hit_rate", "net_spread_bps")

# Keys (per table) that identify the rows one unit of files produced; used to drop and re-insert a unit.
TABLE_NAMES = (
    "runs", "run_targets", "models", "routing_decisions", "artifacts", "rejected", "aliases", "pick_candidates",
)  # fmt: skip
