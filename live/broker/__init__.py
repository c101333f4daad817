"""Brokers: the interface the engine sends orders to, and the paper broker with its own book."""

from live.broker.base import Broker, Fill, Order
from live.broker.paper import PaperBroker

__all__ = ["Broker", "Fill", "Order", "PaperBroker"]
