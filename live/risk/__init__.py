"""Risk: portfolio limits, trading states (ACTIVE / REDUCING / HALTED), the sticky kill switch, pre-trade checks."""

from live.risk.limits import RiskState, assess, pre_trade

__all__ = ["RiskState", "assess", "pre_trade"]
