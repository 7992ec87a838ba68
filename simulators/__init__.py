"""ksim: fake Kaspersky subscription services (KORM SS over REST, KSS 3.0 over SOAP) that enforce the vendor's rules."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names, imported on first use (PEP 562): `ksim serve` then never loads the client's httpx, zeep or rich.
_PUBLIC = {
    "create_app": "simulators.app",
    "Clock": "simulators.client",
    "KsimAdmin": "simulators.client",
    "KsimError": "simulators.client",
    "PartnerHandle": "simulators.client",
    "Settings": "simulators.core.settings",
    "load_settings": "simulators.core.settings",
    "InProcessServer": "simulators.server",
}

if TYPE_CHECKING:
    from simulators.app import create_app
    from simulators.client import Clock, KsimAdmin, KsimError, PartnerHandle
    from simulators.core.settings import Settings, load_settings
    from simulators.server import InProcessServer


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulators' has no attribute {name!r}")


__all__ = [*_PUBLIC, "__version__"]
