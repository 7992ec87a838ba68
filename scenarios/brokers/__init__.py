"""Brokers a scenario can drive: the protocols (``base``) and the generic HTTP adapter (``http``, reading an adapter
file as ``adapter_file`` validates it, with the ``templates`` it fills)."""

from ksimkit.scenarios.brokers.base import (
    Broker,
    Charge,
    CommonBroker,
    KormBroker,
    KssBroker,
    LegacySubscription,
    StepResult,
    TenantSetup,
    UnsupportedBroker,
)
from ksimkit.scenarios.brokers.http import HttpAdapter, HttpBroker

__all__ = [
    "Broker",
    "Charge",
    "CommonBroker",
    "HttpAdapter",
    "HttpBroker",
    "KormBroker",
    "KssBroker",
    "LegacySubscription",
    "StepResult",
    "TenantSetup",
    "UnsupportedBroker",
]
