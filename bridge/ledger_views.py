"""The dashboard's views of one account's ledger, read-only (another process; never the engine's memory).

Each function takes an open :class:`live.ledger.reader.LedgerReader` and returns a validated payload. Money is the
quote currency; weights, exposures, P&L and limits are fractions (``_pct`` names of the contract included).
"""

from __future__ import annotations

import json
from typing import TypeVar

from bridge.payloads import (
    CycleDecisions,
    CycleRow,
    Decision,
    EquityHistory,
    EquityPoint,
    FillRow,
    ModelInUse,
    OrderRow,
)
from contracts.bridge import Position, PositionsPayload, RiskStatus, RiskWarning
from live.config import EngineConfig
from live.ledger import decisions as decision_record
from live.ledger.reader import LedgerReader
from live.ledger.schema import OWN_CYCLES_FROM

M = TypeVar("M")

WARN_AT_FRAC_OF_LIMIT = 0.5
"""A risk warning appears when the day's loss or the drawdown reaches this share of its limit (``warning``); at the
limit config's ``reduce_at_frac_of_limit`` the engine only reduces (``critical``). Gross exposure warns at 90 %."""
GROSS_WARN_FRAC_OF_LIMIT = 0.9


def engine_config(led: LedgerReader) -> EngineConfig:
    """The config the account's engine runs with (kept in the ledger's meta at its first start)."""
    text = led.meta().get("config")
    if text is None:
        raise LookupError(f"{led.path}: the ledger has no engine config yet (the engine is starting)")
    return EngineConfig.model_validate_json(text)


def last_cycle_id(led: LedgerReader) -> int:
    """The newest committed cycle (0 before the first): what every view below depends on."""
    row = led.con.execute("select max(cycle_id) from cycles").fetchone()
    return int(row[0] or 0)


def positions(led: LedgerReader) -> PositionsPayload:
    """``/api/positions``: sorted by symbol; weight = market value / equity (shorts negative); unrealised P&L
    against the average entry price (fees excluded), ``unrealized_pnl_pct`` as a fraction of the entry notional."""
    row = led.con.execute("select equity from equity order by cycle_id desc limit 1").fetchone()
    equity = float(row[0]) if row else 0.0
    rows = led.con.execute(
        "select symbol, qty, avg_price, entry_ts, mark_price from positions order by symbol"
    ).fetchall()
    out = []
    for symbol, qty, entry, ts, mark in rows:
        mv = qty * mark
        pnl = qty * (mark - entry)
        out.append(
            Position(
                symbol=symbol,
                shares=int(qty),
                entry_price=entry,
                current_price=mark,
                market_value=mv,
                unrealized_pnl=pnl,
                unrealized_pnl_pct=pnl / abs(qty * entry) if qty * entry else 0.0,
                weight=mv / equity if equity else 0.0,
                entry_time=ts or None,
                side="long" if qty > 0 else "short",
            )
        )
    return PositionsPayload(
        positions=out,
        total_positions=len(out),
        long_count=sum(p.side == "long" for p in out),
        short_count=sum(p.side == "short" for p in out),
        total_market_value=sum(p.market_value for p in out),
    )


def risk_status(led: LedgerReader) -> RiskStatus:
    """``/api/risk/status`` after the last cycle's risk stage; ``last_check`` is that cycle's bar close.

    Raises:
        LookupError: no cycle yet.
    """
    row = led.one(
        "select c.ts, c.trading_state, c.paused, c.state_json, e.equity, e.gross_frac, e.net_frac, e.peak_equity, "
        "e.day_start_equity from cycles c join equity e using (cycle_id) order by c.cycle_id desc limit 1"
    )
    if row is None:
        raise LookupError(f"{led.path}: no cycle yet")
    limits = engine_config(led).risk
    risk = json.loads(row["state_json"])["risk"]
    equity, day_start, peak = row["equity"], row["day_start_equity"], row["peak_equity"]
    daily = equity / day_start - 1.0 if day_start > 0 else 0.0
    drawdown = max(0.0, 1.0 - equity / peak) if peak > 0 else 0.0
    warnings = _warnings(row, risk, -daily, drawdown, limits)
    kill = risk.get("kill_reason")
    return RiskStatus(
        trading_allowed=kill is None and not row["paused"] and row["trading_state"] != "HALTED",
        kill_switch_active=kill is not None,
        kill_switch_reason=kill,
        daily_pnl_pct=daily,
        daily_loss_limit_pct=limits.daily_loss_frac,
        drawdown_pct=drawdown,
        max_drawdown_limit_pct=limits.max_drawdown_frac,
        gross_exposure=row["gross_frac"],
        net_exposure=row["net_frac"],
        max_gross_exposure=limits.max_gross_frac,
        warnings=warnings,
        last_check=row["ts"],
    )


def _warnings(row: dict, risk: dict, loss: float, drawdown: float, limits) -> list[RiskWarning]:
    out = []
    if risk.get("kill_reason"):
        out.append(RiskWarning(type="kill_switch", message=risk["kill_reason"], severity="critical"))
    if row["paused"]:
        out.append(RiskWarning(type="paused", message="paused: no orders until resume", severity="warning"))
    if row["trading_state"] == "REDUCING":
        out.append(RiskWarning(type="reducing", message="REDUCING: only orders towards zero", severity="critical"))
    for kind, value, limit in (
        ("daily_loss", loss, limits.daily_loss_frac),
        ("drawdown", drawdown, limits.max_drawdown_frac),
    ):
        used = value / limit
        if used >= WARN_AT_FRAC_OF_LIMIT:
            sev = "critical" if used >= limits.reduce_at_frac_of_limit else "warning"
            out.append(
                RiskWarning(
                    type=kind,
                    message=f"{kind.replace('_', ' ')} {value:.2%} is {used:.0%} of its {limit:.2%} limit",
                    severity=sev,
                )
            )
    gross_used = row["gross_frac"] / limits.max_gross_frac
    if gross_used >= GROSS_WARN_FRAC_OF_LIMIT:
        out.append(
            RiskWarning(
                type="gross_exposure",
                message=f"gross exposure {row['gross_frac']:.2f} is {gross_used:.0%} of its "
                f"{limits.max_gross_frac} limit",
                severity="warning",
            )
        )
    return out


def equity_history(led: LedgerReader, account: str, max_points: int = 2000) -> EquityHistory:
    """Every cycle's mark (evenly thinned to ``max_points``, the last cycle always kept); drawdown from the
    running peak of all cycles, the thinned ones included."""
    initial = engine_config(led).broker.initial_cash
    rows = led.con.execute(
        "select cycle_id, ts, equity, cash, market_value, gross_frac, net_frac, fees_cum, peak_equity from equity "
        "order by cycle_id"
    ).fetchall()
    peak = initial
    points = []
    for cid, ts, eq, cash, mv, gross, net, fees, _ in rows:
        peak = max(peak, eq)
        points.append(
            EquityPoint(
                cycle_id=cid,
                ts=ts,
                equity=eq,
                cash=cash,
                market_value=mv,
                drawdown_frac=1.0 - eq / peak if peak > 0 else 0.0,
                gross_frac=gross,
                net_frac=net,
                fees_cum=fees,
            )
        )
    n = len(points)
    if n > max_points:
        step = n / max_points
        keep = sorted({int(i * step) for i in range(max_points - 1)} | {n - 1})
        points, thinned = [points[i] for i in keep], n
        return EquityHistory(account=account, initial_cash=initial, points=points, downsampled_from=thinned)
    return EquityHistory(account=account, initial_cash=initial, points=points)


def orders(led: LedgerReader, limit: int = 100, symbol: str | None = None) -> list[OrderRow]:
    """The newest orders first, each with what filled of it."""
    last = last_cycle_id(led)
    rows = led.con.execute(
        "select o.client_order_id, o.cycle_id, o.symbol, o.qty, o.reduce_only, o.submitted_ts, "
        "coalesce(sum(f.qty), 0), count(f.fill_id) from orders o left join fills f using (client_order_id) "
        "where (?1 is null or o.symbol = ?1) group by o.client_order_id order by o.cycle_id desc, o.symbol limit ?2",
        (symbol, limit),
    ).fetchall()
    out = []
    for coid, cid, sym, qty, reduce_only, ts, filled, n_fills in rows:
        if n_fills == 0:
            status = "open" if cid == last else "cancelled"
        else:
            status = "filled" if abs(filled) >= abs(qty) else "partial"
        out.append(
            OrderRow(
                client_order_id=coid,
                cycle_id=cid,
                symbol=sym,
                qty=qty,
                reduce_only=bool(reduce_only),
                submitted_ts=ts,
                filled_qty=filled,
                status=status,
            )
        )
    return out


def fills(led: LedgerReader, limit: int = 100, symbol: str | None = None) -> list[FillRow]:
    return _rows(
        led,
        FillRow,
        "select fill_id, client_order_id, cycle_id, symbol, ts, qty, price, fee, requested_qty from fills "
        "where (?1 is null or symbol = ?1) order by ts desc, symbol limit ?2",
        (symbol, limit),
    )


_CYCLES = "select cycle_id, ts, in_sample, trading_state, paused, n_trade, n_hold, n_blocked, latency_ms from cycles"


def cycles(led: LedgerReader, limit: int = 100) -> list[CycleRow]:
    return _rows(led, CycleRow, _CYCLES + " order by cycle_id desc limit ?", (limit,))


def cycle_decisions(led: LedgerReader, cycle_id: int | None = None, action: str | None = None) -> CycleDecisions:
    """One cycle's decisions (the last cycle's when ``cycle_id`` is None), optionally only one action's.

    Raises:
        LookupError: no such cycle.
    """
    cid = cycle_id if cycle_id is not None else last_cycle_id(led)
    found = _rows(led, CycleRow, _CYCLES + " where cycle_id = ?", (cid,))
    if not found:
        raise LookupError(f"no cycle {cid}" if cycle_id is not None else "no cycle yet")
    record = led.con.execute(
        "select models_json, blends_json, decisions_json from cycle_decisions where cycle_id = ?", (cid,)
    ).fetchone()
    rows = decision_record.decode(*record, found[0].in_sample, found[0].trading_state) if record else []
    out = [Decision(**d) for d in rows if action is None or d["action"] == action]
    return CycleDecisions(cycle=found[0], decisions=out)


def _rows(led: LedgerReader, model: type[M], query: str, params: tuple) -> list[M]:
    """One query's rows as ``model`` instances (columns named as the model's fields)."""
    cur = led.con.execute(query, params)
    cols = [d[0] for d in cur.description]
    return [model(**dict(zip(cols, r, strict=True))) for r in cur.fetchall()]


def models_in_use(led: LedgerReader) -> list[ModelInUse]:
    """The account's models with the policy and holdout IC they were picked on and the IC they realised live (only
    over the cycles each predicted itself: from its last hot reload on, ``model_swaps``)."""
    policy = engine_config(led).policy
    swaps = led.one("select 1 as x from sqlite_master where type = 'table' and name = 'model_swaps'")  # schema 3
    since = OWN_CYCLES_FROM if swaps else "0"
    return _rows(
        led,
        ModelInUse,
        "select m.model, m.target, m.family, m.view, m.model_dir, ? as policy, m.holdout_ic, avg(r.ic) as realised_ic, "
        "count(r.ic) as realised_cycles, m.data_end, m.first_tradable_ts, m.quarantined_cycle is not null as "
        "quarantined, m.quarantine_reason from models m left join realised_ic r on r.model = m.model and "
        f"r.cycle_id >= {since} group by m.model order by m.target, m.family, m.model",
        (policy,),
    )
