"""The catalog's tables and views. Paths are stored relative to the RESULTS root."""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES = """
create table meta (key varchar primary key, value varchar);

create table runs (
    run_dir varchar primary key,          -- runs/<run_id>/<run_instance_id>
    run_id varchar not null,
    run_instance_id varchar not null,
    timestamp varchar,
    git_sha varchar,
    config_digest varchar,
    dagster_run_id varchar,
    interval_minutes double,
    n_targets integer,
    complete boolean,                     -- every target in target_index has status 'complete'
    reused_from varchar,                  -- upstream run_dir this run reused ranking/routing from
    manifest_json json not null
);

create table run_targets (
    run_dir varchar not null,
    target varchar not null,
    status varchar not null,
    families_trained varchar[],
    view varchar,
    auc double,
    primary key (run_dir, target)
);

create table models (
    model_dir varchar primary key,        -- runs/.../family=<family>
    run_dir varchar not null,
    run_id varchar,
    run_instance_id varchar,
    target varchar not null,
    view varchar not null,
    symbol varchar,
    family varchar not null,
    interval_minutes double not null,
    feature_list varchar[] not null,
    n_features integer not null,
    mean_ic double,
    mean_rank_ic double,
    ic_ir double,
    t_stat double,
    metric_kind varchar,
    cv_mean double,
    cv_std double,
    n_rows_train bigint,
    n_rows_val bigint,
    input_mode varchar,
    model_path varchar,
    model_checksum varchar,
    checksum_ok boolean,
    contract_version varchar,
    meta_json json not null
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
    primary key (path, target)
);

create table rejected (path varchar primary key, kind varchar, reason varchar not null);
"""

VIEWS = """
create view latest_models as
select m.* from models m join runs r using (run_dir)
qualify row_number() over (partition by m.target, m.view, coalesce(m.symbol, ''), m.family
                           order by r.timestamp desc, r.run_dir desc) = 1;

create view best_models as
select m.* from models m join runs r using (run_dir)
where r.complete and m.checksum_ok
qualify row_number() over (partition by m.target, m.view, coalesce(m.symbol, '')
                           order by m.ic_ir desc nulls last, m.mean_ic desc nulls last, m.model_dir) = 1;

create view run_summary as
select r.run_dir, r.run_id, r.run_instance_id, r.timestamp, r.interval_minutes, r.complete, r.n_targets,
       count(m.model_dir) as n_models, max(m.mean_ic) as best_mean_ic, max(m.ic_ir) as best_ic_ir
from runs r left join models m using (run_dir)
group by all;
"""
