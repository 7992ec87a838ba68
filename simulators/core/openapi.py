"""Request bodies are validated against the contract itself, so the contract stays the single source of truth."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from simulators.core.yamlfile import load_yaml

_URI = "urn:ksim:contract"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class Contract:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.spec: dict[str, Any] = load_yaml(self.text)
        self._registry = Registry().with_resource(_URI, Resource(contents=self.spec, specification=DRAFT202012))
        self._pointers: dict[str, str] = {}
        for route, item in self.spec.get("paths", {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or "operationId" not in op:
                    continue
                content = op.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    self._pointers[op["operationId"]] = (
                        f"/paths/{_escape(route)}/{method}/requestBody/content/application~1json/schema"
                    )

    @functools.cache
    def _validator(self, operation_id: str) -> Draft202012Validator | None:
        pointer = self._pointers.get(operation_id)
        if pointer is None:
            return None
        return Draft202012Validator({"$ref": f"{_URI}#{pointer}"}, registry=self._registry, format_checker=FormatChecker())

    def body_errors(self, operation_id: str, body: Any) -> list[dict[str, str]]:
        """Every way ``body`` breaks the operation's request schema, as ``{path, message}`` (JSON pointer paths)."""
        validator = self._validator(operation_id)
        if validator is None:
            return []
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        return [
            {"path": "/" + "/".join(str(p) for p in error.absolute_path), "message": error.message}
            for error in errors
        ]
