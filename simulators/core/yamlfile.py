"""YAML loading for data files and contracts: safe, and through libyaml when present (5x faster starts)."""

from __future__ import annotations

from typing import IO, Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(source: str | IO[str]) -> Any:
    return yaml.load(source, Loader=_LOADER)  # noqa: S506 - a safe loader
