"""Reading a JSON request body within ksim's limits (SIM-ERR-1): not nested deeper than ``MAX_DEPTH``, and no
string (value or key) holding text no database can store: a lone UTF-16 surrogate (not Unicode text at all) or
NUL (PostgreSQL text refuses it; SQLite would keep it, so both refuse it alike). docs/korm.md, "Limits"."""

from __future__ import annotations

import json
import re
from typing import Any

from ksimkit.simulators.core.errors import SimulatorError

MAX_DEPTH = 64  # arrays and objects inside each other; a real request nests 2 or 3 deep
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonLimitError(SimulatorError, ValueError):
    """The body is JSON that ksim does not take: ``path`` (JSON pointer) says where, ``message`` why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def unstorable(text: str) -> str | None:
    """What is wrong with ``text`` for storing (``None``: nothing)."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains NUL (\\u0000), which text cannot hold"
    return f"contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x}), which is not Unicode text"


def loads(raw: bytes) -> Any:
    """``json.loads`` within the limits: ``ValueError`` (``UnicodeDecodeError``) for what is not JSON,
    ``JsonLimitError`` for JSON nested too deep or holding unstorable text."""
    # Cheap looks first: no body with fewer brackets than the limit can nest past it, and NUL or a surrogate
    # needs an escape (\u...) or UTF-8 bytes of a surrogate (0xED 0xA0..0xBF) to get in.
    deep = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonLimitError("/", f"the body nests arrays and objects deeper than {MAX_DEPTH} levels") from None
    if deep or b"\\u" in raw or b"\xed" in raw:
        _check(value)
    return value


def _check(value: Any) -> None:
    """Walk without recursion (a hostile body must not exhaust the stack)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            problem = unstorable(node)
            if problem:
                raise JsonLimitError(path or "/", f"the string {problem}")
        elif isinstance(node, (dict, list)):
            if depth >= MAX_DEPTH:
                raise JsonLimitError("/", f"the body nests arrays and objects deeper than {MAX_DEPTH} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                pointer = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
                if isinstance(key, str):
                    problem = unstorable(key)
                    if problem:
                        shown = _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", pointer)
                        raise JsonLimitError(shown, f"the member name {problem}")
                stack.append((child, pointer, depth + 1))
