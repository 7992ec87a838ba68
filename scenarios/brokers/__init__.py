"""Brokers a scenario can drive: the protocol (``base``) and the generic HTTP adapter (``http``)."""

from ksimkit.scenarios.brokers.base import (
    Broker,
    Charge,
    LegacySubscription,
    StepResult,
    TenantSetup,
    UnsupportedBroker,
)
from ksimkit.scenarios.brokers.http import AdapterError, BrokerCallError, HttpAdapter, HttpBroker

__all__ = [
    "AdapterError",
    "Broker",
    "BrokerCallError",
    "Charge",
    "HttpAdapter",
    "HttpBroker",
    "LegacySubscription",
    "StepResult",
    "TenantSetup",
    "UnsupportedBroker",
]
