"""The ledger's tables (SQLite, WAL, ``synchronous=FULL``): one writer, the engine; readers open it read-only.

Every table the engine writes during a cycle is written in that cycle's one transaction, so a cycle is in the
ledger whole or not at all. Timestamps are ISO-8601 UTC text; money is the quote currency; weights are fractions
of equity; alphas and costs are bps.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_VERSION = 4
"""3: ``model_swaps`` (hot reload). 4: a cycle's decisions, with every model's prediction in their traces, are one
row (``cycle_decisions``, a JSON array); ``decisions`` and ``predictions`` are views of it, one row per symbol. A
schema-2 or -3 ledger is upgraded in place when the engine opens it (``live.ledger.writer``)."""

DDL = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists cycles (
    cycle_id integer primary key,          -- 1, 2, ... in bar order
    ts text not null unique,               -- the bar's close the cycle decided at
    in_sample integer not null,            -- 1: the models' run saw this bar (--allow-in-sample)
    trading_state text not null,           -- ACTIVE / REDUCING / HALTED after the cycle's risk stage
    paused integer not null,
    n_trade integer not null, n_hold integer not null, n_blocked integer not null,
    latency_ms real not null,
    state_json text not null                -- engine state to resume from (blend, risk, quarantine)
);
create table if not exists cycle_decisions (
    cycle_id integer primary key,
    models_json text not null,             -- the keys of the models that scored, in the order of "prediction"
    blends_json text not null,             -- the blended target/view keys, in the order of "blend"
    decisions_json text not null           -- one object per symbol (live.ledger.decisions): symbol, action, reason,
                                           -- prediction [..], blend [..], the stage numbers, gate, cuts, order_qty
);                                          -- one row per cycle: a 500-symbol cycle is one insert, not 500
create view if not exists decisions as     -- one row per (cycle, symbol)
    select d.cycle_id,
        json_extract(j.value, '$.symbol') as symbol,
        json_extract(j.value, '$.action') as action,
        json_extract(j.value, '$.reason') as reason,
        json_extract(j.value, '$.alpha_bps') as alpha_bps,
        json_extract(j.value, '$.cost_bps') as cost_bps,
        json_extract(j.value, '$.sigma_bps') as sigma_bps,
        json_extract(j.value, '$.z') as z,
        json_extract(j.value, '$.current_weight_frac') as current_weight_frac,
        json_extract(j.value, '$.target_weight_frac') as target_weight_frac,
        json_extract(j.value, '$.order_qty') as order_qty,
        d.models_json, d.blends_json,
        json_set(                          -- the trace: prediction and blend in models_json / blends_json order
            json_remove(j.value, '$.symbol', '$.action', '$.reason', '$.cuts'),
            '$.in_sample', json(iif(c.in_sample, 'true', 'false')),
            '$.risk', json_object('state', c.trading_state, 'cuts', json_extract(j.value, '$.cuts'))
        ) as trace_json
    from cycle_decisions d join cycles c on c.cycle_id = d.cycle_id, json_each(d.decisions_json) j;
create view if not exists predictions as   -- every model's and blend's score, one row per (cycle, model, symbol)
    select p.cycle_id, c.ts, substr(p.key, 1, instr(p.key, '/') - 1) as target, p.model, p.symbol, p.score
    from (
        select d.cycle_id, json_extract(d.models_json, '$[' || s.key || ']') as key,
            json_extract(d.models_json, '$[' || s.key || ']') as model,
            json_extract(j.value, '$.symbol') as symbol, s.value as score
        from cycle_decisions d, json_each(d.decisions_json) j, json_each(j.value, '$.prediction') s
        where s.value is not null
        union all
        select d.cycle_id, json_extract(d.blends_json, '$[' || s.key || ']'),
            '<blend>' || json_extract(d.blends_json, '$[' || s.key || ']'),
            json_extract(j.value, '$.symbol'), s.value
        from cycle_decisions d, json_each(d.decisions_json) j, json_each(j.value, '$.blend') s
        where s.value is not null
    ) p join cycles c on c.cycle_id = p.cycle_id;
create table if not exists orders (
    client_order_id text primary key,      -- a pure function of (cycle ts, symbol)
    cycle_id integer not null, symbol text not null,
    qty real not null,                     -- signed whole shares: + buy, - sell
    reduce_only integer not null,
    submitted_ts text not null
);
create table if not exists fills (
    fill_id text primary key, client_order_id text not null, cycle_id integer not null,
    symbol text not null, ts text not null,
    qty real not null, price real not null, fee real not null,
    requested_qty real not null            -- what the order asked; |qty| < |requested| is a partial fill
);
create table if not exists positions (
    symbol text primary key,
    qty real not null,                     -- signed shares: + long, - short
    avg_price real not null,               -- average entry price of the open position (fill prices, fees excluded)
    entry_ts text not null,                -- the fill that opened it (from flat, or through zero)
    mark_price real not null               -- the close it was marked at in this cycle
);
create table if not exists equity (
    cycle_id integer primary key, ts text not null,
    cash real not null, market_value real not null, equity real not null,
    gross_frac real not null, net_frac real not null,
    fees_cum real not null, peak_equity real not null, day_start_equity real not null
);
create table if not exists events (
    event_id integer primary key autoincrement, cycle_id integer, ts text not null,
    event_type text not null, severity text not null, message text not null, data_json text not null
);
create table if not exists commands (
    command_id integer primary key autoincrement,
    created_at text not null, command text not null check (command in ('pause', 'resume', 'kill', 'reset')),
    reason text not null,
    applied_cycle integer, applied_at text, result text
);
create table if not exists realised_ic (
    cycle_id integer not null,             -- the cycle that predicted
    ts text not null, target text not null, model text not null,   -- model = '<blend>' for the blended score
    ic real, n_symbols integer not null,
    realised_at_cycle integer not null,
    primary key (cycle_id, model)
);
create table if not exists models (
    model text primary key, target text not null, family text not null, view text not null,
    model_dir text not null, holdout_ic real, data_end text not null, first_tradable_ts text not null,
    quarantined_cycle integer, quarantine_reason text
);                                          -- the models trading now (a hot reload replaces rows; see model_swaps)
create table if not exists model_swaps (
    swap_id integer primary key autoincrement,
    cycle_id integer not null,             -- the first cycle the new model predicts at (0: before the first cycle)
    model text not null,                   -- target/view[/symbol]/family
    old_model_dir text,                    -- null: the model was added
    new_model_dir text,                    -- null: the model was removed
    reason text not null
);
"""


OWN_CYCLES_FROM = (
    "coalesce((select max(s.cycle_id) from model_swaps s where s.model = m.model and s.new_model_dir = m.model_dir), 0)"
)
"""SQL over ``models m``: the first cycle the model trading under that key now predicted itself (its last hot
reload; 0 when it traded from the start). Realised IC of earlier cycles under the same key is another model's."""


def ledger_dir(results: str | Path, account: str) -> Path:
    return Path(results) / "live" / account


def ledger_file(results: str | Path, account: str) -> Path:
    return ledger_dir(results, account) / "ledger.sqlite"
