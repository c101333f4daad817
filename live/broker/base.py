"""The broker interface: orders in, fills and the broker's own book out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Order:
    """A market order for the next bar's open.

    Attributes:
        client_order_id: a pure function of (cycle ts, symbol): resubmitting it is a no-op.
        symbol: the instrument.
        qty: signed whole shares (+ buy, - sell).
        reduce_only: the order may only bring the position towards zero.
        submitted_ts: the bar close it was decided at.
    """

    client_order_id: str
    symbol: str
    qty: float
    reduce_only: bool
    submitted_ts: str


@dataclass(frozen=True)
class Fill:
    """An execution. ``qty`` signed shares, ``price`` quote currency per share, ``fee`` quote currency."""

    fill_id: str
    client_order_id: str
    symbol: str
    ts: str
    qty: float
    price: float
    fee: float
    requested_qty: float


class Broker(Protocol):
    """What the engine needs of a broker. Every call is idempotent, so a restarted engine can repeat it."""

    def submit(self, orders: list[Order]) -> None:
        """Accept orders; ids the broker already has are ignored."""

    def known_orders(self, client_order_ids: list[str]) -> set[str]:
        """The ids among ``client_order_ids`` the broker has."""

    def process_bar(self, ts: str, opens: dict[str, float], volumes: dict[str, float]) -> None:
        """Let the market move to bar ``ts``: open orders fill at its open (a no-op for a bar already processed)."""

    def fills(self, after_ts: str = "") -> list[Fill]:
        """The fills at bars after ``after_ts`` (ISO; "" = all), in order."""

    def positions(self) -> dict[str, float]:
        """Signed shares per symbol (non-zero only)."""

    def cash(self) -> float:
        """The broker's cash, fees included."""
