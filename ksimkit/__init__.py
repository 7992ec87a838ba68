"""ksim: fake Kaspersky subscription services (KORM SS over REST, KSS 3.0 over SOAP) that enforce the vendor's rules.

Everything the ``ksimkit`` distribution installs lives in this one namespace: ``ksimkit.simulators`` (the servers),
``ksimkit.scenarios`` (certification suites, runner, reports), ``ksimkit.contracts`` (OpenAPI, WSDL, XSD) and
``ksimkit.examples`` (the reference broker). The command is ``ksim`` (also ``python -m ksimkit``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# The public names, imported on first use (PEP 562): `ksim serve` then never loads the client's httpx, zeep or rich.
_PUBLIC = {
    "create_app": "ksimkit.simulators.app",
    "Clock": "ksimkit.simulators.client",
    "KsimAdmin": "ksimkit.simulators.client",
    "KsimError": "ksimkit.simulators.client",
    "PartnerHandle": "ksimkit.simulators.client",
    "Settings": "ksimkit.simulators.core.settings",
    "load_settings": "ksimkit.simulators.core.settings",
    "InProcessServer": "ksimkit.simulators.server",
}

__all__ = [
    "Clock",
    "InProcessServer",
    "KsimAdmin",
    "KsimError",
    "PartnerHandle",
    "Settings",
    "create_app",
    "load_settings",
]

if TYPE_CHECKING:
    from ksimkit.simulators.app import create_app
    from ksimkit.simulators.client import Clock, KsimAdmin, KsimError, PartnerHandle
    from ksimkit.simulators.core.settings import Settings, load_settings
    from ksimkit.simulators.server import InProcessServer


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ksimkit' has no attribute {name!r}")


__all__ = [*_PUBLIC, "__version__"]
