"""The contracts ksim serves and validates against (OpenAPI 3.1, WSDL/XSD), shipped as package data."""

from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """Absolute path of a contract file, e.g. ``path("korm-ss.openapi.yaml")``."""
    return CONTRACTS_DIR / name
