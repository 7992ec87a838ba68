"""Figures of the reliability runs for docs/reliability.md: one JSON line per test to $KSIM_RELIABILITY_REPORT."""

from __future__ import annotations

import json
import os
from typing import Any


def record(test: str, **figures: Any) -> None:
    path = os.environ.get("KSIM_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **figures}, default=str) + "\n")
