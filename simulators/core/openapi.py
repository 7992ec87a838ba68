"""Requests are validated against the contract itself, so the contract stays the single source of truth.

``body_errors`` is what the front ends use to refuse a bad body. ``match`` and ``request_violations`` are the
test harness's contract verdict (ksimkit.simulators.core.harness): the whole request (route, path and query
parameters, headers, Content-Type and body) checked against the operation the contract declares for it,
every violation listed, including those the server tolerates.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import marshal
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksimkit.simulators.core import jsontext
from ksimkit.simulators.core.yamlfile import load_yaml

if TYPE_CHECKING:  # imported when the first validator is built: a server starts without them (docs/benchmarks.md)
    from jsonschema import Draft202012Validator
    from referencing import Registry

_URI = "urn:ksim:contract"
_UNPARSED = object()
_REMEMBER_BODIES = 64  # request bodies whose verdict a contract keeps (raw_body_errors)
_REMEMBER_BODY_BYTES = 16_384  # ... each at most this long


def _cache_dirs(path: Path) -> list[Path]:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [path.parent / "__pycache__", Path(home) / "ksim"]


def _parsed(path: Path, text: str) -> Any:
    """The contract's YAML, parsed. Parsing the three REST contracts (200 KB) costs about 0.1 s at every start,
    so the parsed form is cached like Python's own bytecode: ``marshal``ed, in ``__pycache__`` next to the file
    (or ``~/.cache/ksim`` when that is not writable), named by the text's SHA-256, so an edited contract is parsed
    afresh. A contract with values ``marshal`` cannot hold (YAML dates) is parsed every time."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    name = f"{path.name}.{digest}.marshal"
    for folder in _cache_dirs(path):
        try:
            return marshal.loads((folder / name).read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            continue
    spec = load_yaml(text)
    try:
        data = marshal.dumps(spec)
    except ValueError:  # a value marshal cannot hold
        return spec
    for folder in _cache_dirs(path):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(temp, folder / name)  # atomic: a concurrent start reads the old state or the whole file
            break
        except OSError:
            continue
    return spec


def _shown(value: Any, limit: int = 60) -> str:
    """A value as JSON (``null``, ``true``, ``"text"``), cut short when long."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _types_text(kind: Any) -> str:
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def closest_error(error: Any) -> Any:
    """For a failed ``oneOf``/``anyOf``, the error of the alternative that came closest: the one whose errors lie
    deepest inside the value (a limit passed, rather than another shape), then the one with the fewest errors."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        closest = min(branches.values(), key=lambda errs: (sum(1 for e in errs if not e.relative_path), len(errs)))
        error = max(closest, key=lambda e: len(e.relative_path))
    return error


def json_message(error: Any) -> str:
    """A schema violation in JSON's terms (``null``, not Python's ``None``) naming the limit that was passed
    (of the closest alternative of a ``oneOf``/``anyOf``). Other keywords keep jsonschema's message."""
    error = closest_error(error)
    kind, value, limit = error.validator, error.instance, error.validator_value
    if kind == "oneOf":
        return f"{_shown(value)} matches more than one of the alternatives; it must match exactly one"
    messages = {
        "type": lambda: f"{_shown(value)} is not of type {_types_text(limit)}",
        "enum": lambda: f"{_shown(value)} is not one of {', '.join(_shown(v) for v in limit)}",
        "const": lambda: f"{_shown(value)} is not {_shown(limit)}",
        "required": lambda: (
            "missing required property "
            + ", ".join(_shown(name) for name in limit if isinstance(value, dict) and name not in value)
        ),
        "additionalProperties": lambda: (
            "unknown property " + ", ".join(_shown(k) for k in value if k not in error.schema.get("properties", {}))
        ),
        "minimum": lambda: f"{_shown(value)} is less than the minimum of {limit}",
        "maximum": lambda: f"{_shown(value)} is more than the maximum of {limit}",
        "exclusiveMinimum": lambda: f"{_shown(value)} must be more than {limit}",
        "exclusiveMaximum": lambda: f"{_shown(value)} must be less than {limit}",
        "minLength": lambda: f"{_shown(value)} is shorter than the minimum of {limit} characters",
        "maxLength": lambda: f"{_shown(value)} is longer than the maximum of {limit} characters",
        "minItems": lambda: f"the array has fewer than the minimum of {limit} items",
        "maxItems": lambda: f"the array has more than the maximum of {limit} items",
        "pattern": lambda: f"{_shown(value)} does not match the pattern {limit}",
        "format": lambda: f"{_shown(value)} is not a valid {limit}",
        "multipleOf": lambda: f"{_shown(value)} is not a multiple of {limit}",
    }
    render = messages.get(kind)
    return render() if render is not None else str(error.message)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


Violation = dict[str, str]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # path, query, header
    required: bool
    pointer: str  # of its schema in the contract
    types: tuple[str, ...]  # the schema's JSON types, for reading a string as the right type


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # upper case
    template: str  # e.g. /subscriptions/{subscription_id}
    pattern: re.Pattern[str]
    parameters: tuple[Parameter, ...]
    body_media: tuple[str, ...]  # media types of the request body; empty: the operation takes no body
    body_required: bool

    def parameter(self, where: str, name: str) -> Parameter | None:
        folded = name.lower() if where == "header" else name
        for p in self.parameters:
            if p.where == where and (p.name.lower() if where == "header" else p.name) == folded:
                return p
        return None


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex)


def _read_as(value: str, types: tuple[str, ...]) -> Any:
    """A parameter's text as the value its schema expects, when it can be read so (else the text, to be refused)."""
    if "integer" in types and _INTEGER.fullmatch(value):
        return int(value)
    if "number" in types and _NUMBER.fullmatch(value):
        return float(value)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    if "null" in types and value == "null":
        return None
    return value


class Contract:
    def __init__(self, path: Path, enums: Mapping[str, list[str]] | None = None) -> None:
        """``enums``: component schemas whose ``enum`` the app fills from its own vocabulary (the fault kinds)."""
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.spec: dict[str, Any] = _parsed(path, self.text)
        if enums:
            self.spec = copy.deepcopy(self.spec)  # _parsed is shared by every app of the process
            for name, values in enums.items():
                self.spec["components"]["schemas"][name]["enum"] = list(values)
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
        self.prefix = (self.spec.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
        self.operations = self._read_operations()
        self._body_memo: dict[tuple[str, bytes], tuple[tuple[str, str], ...]] = {}  # raw_body_errors, oldest first
        self._body_memo_lock = threading.Lock()

    # ------------------------------------------------------------------------------ the operations

    def _deref(self, node: Any, pointer: str) -> tuple[Any, str]:
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            pointer = ref[1:]
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def _types(self, schema: Any, pointer: str) -> tuple[str, ...]:
        schema, _ = self._deref(schema, pointer)
        kind = schema.get("type", ()) if isinstance(schema, dict) else ()
        return (kind,) if isinstance(kind, str) else tuple(kind)

    def _read_operations(self) -> tuple[Operation, ...]:
        found = []
        for route, item in self.spec.get("paths", {}).items():
            base = f"/paths/{_escape(route)}"
            shared = list(enumerate(item.get("parameters", [])))
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict) or "operationId" not in op:
                    continue
                params: dict[tuple[str, str], Parameter] = {}
                sources = [(f"{base}/parameters/{i}", p) for i, p in shared]
                sources += [(f"{base}/{method}/parameters/{i}", p) for i, p in enumerate(op.get("parameters", []))]
                for pointer, raw in sources:  # the operation's own override the path item's
                    param, pointer = self._deref(raw, pointer)
                    where = param["in"]
                    if where not in ("path", "query", "header"):
                        continue
                    schema_pointer = f"{pointer}/schema"
                    params[(where, param["name"].lower() if where == "header" else param["name"])] = Parameter(
                        param["name"],
                        where,
                        bool(param.get("required", where == "path")),
                        schema_pointer,
                        self._types(param.get("schema", {}), schema_pointer),
                    )
                body, _ = self._deref(op.get("requestBody", {}), f"{base}/{method}/requestBody")
                found.append(
                    Operation(
                        op["operationId"],
                        method.upper(),
                        route,
                        _template_pattern(route),
                        tuple(params.values()),
                        tuple(body.get("content", {})),
                        bool(body.get("required", False)),
                    )
                )
        # Literal segments win over templated ones (/products/openapi.yaml-like clashes), then longer routes.
        found.sort(key=lambda o: (-o.template.count("/"), o.template.count("{")))
        return tuple(found)

    def match(self, method: str, path: str) -> tuple[Operation | None, list[Operation]]:
        """The operation of ``method`` on ``path`` (a full path, with the contract's server prefix), and every
        operation of that route (for the methods it allows)."""
        if not path.startswith(self.prefix + "/") and path != self.prefix:
            return None, []
        local = path[len(self.prefix) :] or "/"
        route: list[Operation] = []
        for op in self.operations:
            if op.pattern.fullmatch(local) and (not route or op.template == route[0].template):
                route.append(op)
        wanted = "GET" if method.upper() == "HEAD" else method.upper()
        return next((op for op in route if op.method == wanted), None), route

    @functools.cached_property
    def _registry(self) -> Registry:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        return Registry().with_resource(_URI, DRAFT202012.create_resource(self.spec))

    @functools.cache  # noqa: B019 -- one Contract per contract file, alive as long as the app
    def _schema_validator(self, pointer: str) -> Draft202012Validator:
        from jsonschema import Draft202012Validator, FormatChecker

        return Draft202012Validator(
            {"$ref": f"{_URI}#{pointer}"}, registry=self._registry, format_checker=FormatChecker()
        )

    def request_violations(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[Violation]:
        """Every way the request breaks the contract: ``{in, path, message}`` each, where ``in`` is ``route``,
        ``path``, ``query``, ``header`` or ``body``, and ``path`` locates it (``/query/limit``,
        ``/headers/Content-Type``, or a JSON pointer into the body such as ``/quantity``).

        ``headers`` must look names up case-insensitively (werkzeug's ``Headers`` do); ``body`` is the raw
        body (``None``: larger than the server reads).
        """
        op, route = self.match(method, path)
        if op is None:
            if not route:
                return [{"in": "route", "path": "/", "message": f"no operation of the contract has the path {path}"}]
            allowed = ", ".join(sorted({o.method for o in route}))
            return [
                {
                    "in": "route",
                    "path": "/",
                    "message": f"{method.upper()} is not an operation of {path} (the contract has {allowed})",
                }
            ]
        violations: list[Violation] = []
        values = op.pattern.fullmatch(path[len(self.prefix) :] or "/")
        assert values is not None
        for name, value in values.groupdict().items():
            param = op.parameter("path", name)
            if param is not None:
                violations += self._parameter_errors(param, value, f"/path/{name}")
        seen: dict[str, int] = {}
        for name, _ in query:
            seen[name] = seen.get(name, 0) + 1
        for name, count in seen.items():
            param = op.parameter("query", name)
            if param is None:
                declared = ", ".join(p.name for p in op.parameters if p.where == "query") or "none"
                violations.append(
                    {
                        "in": "query",
                        "path": f"/query/{name}",
                        "message": f"unknown query parameter {name!r} (the operation takes: {declared})",
                    }
                )
            elif count > 1 and "array" not in param.types:
                violations.append(
                    {"in": "query", "path": f"/query/{name}", "message": f"{name} is given {count} times"}
                )
        for param in op.parameters:
            if param.where == "query" and param.name in seen:
                value = next(v for k, v in query if k == param.name)
                violations += self._parameter_errors(param, value, f"/query/{param.name}")
            elif param.where == "header" and param.name in headers:
                violations += self._parameter_errors(param, headers[param.name], f"/headers/{param.name}")
            elif param.where != "path" and param.required:
                where = "query" if param.where == "query" else "headers"
                violations.append(
                    {
                        "in": param.where,
                        "path": f"/{where}/{param.name}",
                        "message": f"the required {param.where} parameter {param.name} is missing",
                    }
                )
        violations += self._body_violations(op, headers, body)
        return violations

    def _parameter_errors(self, param: Parameter, text: str, where: str) -> list[Violation]:
        return [
            {"in": param.where, "path": where, "message": f"{param.name}: {message}"}
            for message in self._parameter_messages(param.pointer, param.types, text)
        ]

    @functools.lru_cache(maxsize=1024)  # noqa: B019 -- a pure function of the schema and the text; ids repeat (keys do not)
    def _parameter_messages(self, pointer: str, types: tuple[str, ...], text: str) -> tuple[str, ...]:
        value = _read_as(text, types)
        return tuple(json_message(error) for error in self._schema_validator(pointer).iter_errors(value))

    def _body_violations(self, op: Operation, headers: Mapping[str, str], body: bytes | None) -> list[Violation]:
        if body is None:
            return [{"in": "body", "path": "/", "message": "the body is larger than the server accepts"}]
        present = bool(body.strip())
        content_type = headers.get("Content-Type")
        mimetype = (content_type or "").split(";")[0].strip().lower()
        if not op.body_media:
            if present:
                return [{"in": "body", "path": "/", "message": f"{op.operation_id} takes no request body"}]
            return []
        if not present:
            if op.body_required:
                return [
                    {
                        "in": "body",
                        "path": "/",
                        "message": f"{op.operation_id} needs a request body ({', '.join(op.body_media)})",
                    }
                ]
            return []
        if content_type is None:
            return [
                {
                    "in": "header",
                    "path": "/headers/Content-Type",
                    "message": f"a body was sent without Content-Type; the operation takes {', '.join(op.body_media)}",
                }
            ]
        if mimetype not in op.body_media:
            return [
                {
                    "in": "header",
                    "path": "/headers/Content-Type",
                    "message": f"Content-Type {mimetype or content_type!r}: "
                    f"the operation takes {', '.join(op.body_media)}",
                }
            ]
        try:
            errors = self.raw_body_errors(op.operation_id, body)
        except jsontext.JsonLimitError as exc:
            return [{"in": "body", "path": exc.path, "message": exc.message}]
        except (ValueError, UnicodeDecodeError) as exc:
            return [{"in": "body", "path": "/", "message": f"the body is not valid JSON: {exc}"}]
        return [{"in": "body", **error} for error in errors]

    @functools.cache  # noqa: B019 -- one Contract per contract file, alive as long as the app
    def _validator(self, operation_id: str) -> Draft202012Validator | None:
        pointer = self._pointers.get(operation_id)
        return None if pointer is None else self._schema_validator(pointer)

    def raw_body_errors(self, operation_id: str, raw: bytes, value: Any = _UNPARSED) -> list[dict[str, str]]:
        """``body_errors`` of the JSON body ``raw`` (``value``: ``json.loads(raw)``, if the caller has it; else it
        is parsed here, and a ``ValueError`` or ``UnicodeDecodeError`` says it is not JSON). The verdict of a
        request's body is asked twice (the front end refusing a bad body, the harness judging the request): the
        latest small bodies' answers are kept, keyed by their bytes."""
        key = (operation_id, raw)
        if len(raw) <= _REMEMBER_BODY_BYTES:
            with self._body_memo_lock:
                known = self._body_memo.get(key)
            if known is not None:
                return [{"path": path, "message": message} for path, message in known]
        if value is _UNPARSED:
            value = jsontext.loads(raw)
        errors = self.body_errors(operation_id, value)
        if len(raw) <= _REMEMBER_BODY_BYTES:
            with self._body_memo_lock:
                self._body_memo[key] = tuple((e["path"], e["message"]) for e in errors)
                while len(self._body_memo) > _REMEMBER_BODIES:
                    del self._body_memo[next(iter(self._body_memo))]
        return errors

    def body_errors(self, operation_id: str, body: Any) -> list[dict[str, str]]:
        """Every way ``body`` breaks the operation's request schema, as ``{path, message}`` (JSON pointer paths)."""
        validator = self._validator(operation_id)
        if validator is None:
            return []
        errors = sorted((closest_error(e) for e in validator.iter_errors(body)), key=lambda e: list(e.absolute_path))
        return [
            {"path": "/" + "/".join(str(p) for p in error.absolute_path), "message": json_message(error)}
            for error in errors
        ]
