"""ksim: fake Kaspersky subscription services (KORM SS over REST, KSS 3.0 over SOAP) that enforce the vendor's rules."""
__version__ = "0.1.0"

from simulators.app import create_app  # noqa: E402
from simulators.client import Clock, KsimAdmin, KsimError, PartnerHandle  # noqa: E402
from simulators.core.settings import Settings, load_settings  # noqa: E402
from simulators.server import InProcessServer  # noqa: E402

__all__ = [
    "Clock",
    "InProcessServer",
    "KsimAdmin",
    "KsimError",
    "PartnerHandle",
    "Settings",
    "create_app",
    "load_settings",
    "__version__",
]
