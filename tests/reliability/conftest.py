"""Reliability fixtures: the KSS SOAP partner client and the answer schema of tests/wire, reused as is."""

from tests.wire.conftest import kss_partner, kss_schema  # noqa: F401  (fixtures)
