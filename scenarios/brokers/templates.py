"""The adapter file's templates: ``{name}`` placeholders filled from a call's values, ``${VAR}`` from the
environment, and answers read by dotted path or JSON pointer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from ksimkit.scenarios.errors import AdapterError

__all__ = ["MISSING", "arg_text", "as_text", "dig", "expand_env", "jsonable", "placeholders", "render"]

UTC = dt.UTC
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MISSING = object()  # what `dig` finds where the answer has nothing


def expand_env(value: Any, where: str, source: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    raise AdapterError(
                        f"{source}: {where}: environment variable {name} is not set "
                        f"(write ${{{name}:-default}} for a default)"
                    )
                return default
            return found

        return ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return value


def placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(PLACEHOLDER.findall(template.replace("{{", "").replace("}}", "")))
    if isinstance(template, dict):
        return set().union(*(placeholders(k) | placeholders(v) for k, v in template.items())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def as_text(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def arg_text(value: Any) -> str:
    """A command argument or environment value: objects and lists (``{prices}``, ``{terms}``) as JSON text."""
    value = jsonable(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else as_text(value)


def render(template: Any, variables: Mapping[str, Any], *, url: bool = False, omit_null: bool = True) -> Any:
    """Fill a template: ``"{name}"`` alone gives the value itself; inside text it gives its text form."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole and not url:
            return jsonable(variables.get(whole.group(1)))

        def sub(match: re.Match[str]) -> str:
            text = as_text(variables.get(match.group(1)))
            return quote(text, safe="") if url else text

        parts = template.split("{{")
        return "{".join(p.replace("}}", "}") for p in (PLACEHOLDER.sub(sub, part) for part in parts))
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            rendered = render(value, variables, omit_null=omit_null)
            if rendered is None and omit_null:
                continue
            out[render(key, variables) if isinstance(key, str) else key] = rendered
        return out
    if isinstance(template, list):
        return [render(v, variables, omit_null=omit_null) for v in template]
    return template


def dig(data: Any, path: str | None) -> Any:
    """The value at a dotted path (``a.b.0.c``; ``""`` or ``"."`` = ``data``) or at a JSON pointer (RFC 6901,
    ``/a/b/0/c``; ``"/"`` alone is the key ``""``), or ``MISSING``."""
    if path is None:
        return MISSING
    if path in ("", "."):
        return data
    if path.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    else:
        parts = path.split(".")
    current = data
    for part in parts:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current
