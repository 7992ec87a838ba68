"""Golden bills: figures recorded once, compared line by line ever after.

A golden file is plain text: the columns once, then one bill line a line (a JSON array in column order, lines in
sorted order) under a ``# <period>`` header holding the document's other fields; what is random (subscription
ids, the partner's id, the time a document was made) is replaced by stable labels. A
difference fails with a unified diff of the first lines that differ. To record a file anew after an *intended*
change of a rule: ``KSIM_RECORD_GOLDEN=1 pytest tests/unit -k same_figures``, then review the diff in git.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
RECORD = os.environ.get("KSIM_RECORD_GOLDEN") == "1"


def render(documents: Iterable[tuple[str, dict[str, Any]]], labels: dict[str, str], drop: Iterable[str] = ()) -> str:
    """``(period, document)`` pairs as golden text; ``labels`` renames random ids wherever they appear as values."""
    dropped = {"generated_at", *drop}
    documents = [(period, _label(doc, labels)) for period, doc in documents]
    columns = sorted({key for _, doc in documents for line in doc.get("lines", []) for key in line})
    out = ["# columns " + json.dumps(columns)]
    for period, doc in documents:
        head = {k: v for k, v in doc.items() if k not in dropped and k != "lines"}
        out.append(f"# {period} " + json.dumps(head, sort_keys=True, default=str))
        out.extend(sorted(json.dumps([line.get(c) for c in columns], default=str) for line in doc.get("lines", [])))
    return "\n".join(out) + "\n"


def _label(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _label(v, labels) for k, v in value.items()}
    if isinstance(value, list):
        return [_label(v, labels) for v in value]
    if isinstance(value, str):
        return labels.get(value, value)
    return value


def check(name: str, text: str) -> None:
    """``text`` equals the golden file ``name`` (recorded instead when ``KSIM_RECORD_GOLDEN=1``)."""
    path = GOLDEN_DIR / name
    if RECORD:
        path.write_text(text, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = list(
            difflib.unified_diff(expected.splitlines(), text.splitlines(), f"golden/{name}", "now", lineterm="", n=1)
        )
        raise AssertionError(
            f"the figures differ from golden/{name} ({len(diff)} diff lines):\n" + "\n".join(diff[:60])
        )
