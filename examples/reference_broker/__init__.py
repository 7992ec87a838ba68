"""The reference broker: a small real broker that ships with ksim (README.md beside this file).

``create_app(database_url, defects=frozenset())`` gives its Flask app; ``python -m ksimkit.examples.reference_broker``
serves it. It sells KORM SS and KSS subscriptions to its customers, talks to the (simulated) vendor over
httpx and zeep, bills its customers by the vendor's rules, and can run with seeded defects (``DEFECTS``).
"""

from ksimkit.examples.reference_broker.app import create_app
from ksimkit.examples.reference_broker.defects import DEFECTS

__all__ = ["DEFECTS", "create_app"]
