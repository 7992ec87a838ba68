"""A generic Broker over HTTP, configured by a YAML adapter file: your broker's own REST API, unchanged.

```python
from ksimkit.scenarios.brokers.http import HttpAdapter

adapter = HttpAdapter.load("my-broker.yaml")          # validated; AdapterError names what is wrong
broker = adapter.broker()                             # one per scenario (one tenant each)
```

The file maps each Broker method to one HTTP call: method, URL template, JSON body template, and where
in the answer to find the results. ``docs/certify-your-broker.md`` documents every key with a worked
file. In short::

    name: my-broker
    base_url: ${MY_BROKER_URL:-http://127.0.0.1:8000}
    timeout: 10
    headers: {Authorization: "Bearer ${MY_BROKER_TOKEN}"}
    result: {outcome: outcome, code: code, message: message, activation_code: activation_code}
    methods:
      start:  {method: POST, url: /tenants, body: {korm_url: "{korm_url}", ...}, tenant_id: id}
      order:  {method: POST, url: "/tenants/{tenant}/orders", body: {ref: "{ref}", quantity: "{quantity}"}}
      advance_clock: {method: POST, url: "/tenants/{tenant}/clock", body: {now: "{to}"}}
      charges: {method: GET, url: "/tenants/{tenant}/invoices/{period}", items: lines}
      activation_code: {method: GET, url: "/tenants/{tenant}/subscriptions/{ref}", value: activation_code}

A template string that is exactly ``"{name}"`` is replaced by the value itself (a number stays a
number, ``prices`` stays an object, a missing optional value is ``null``); inside a longer string the
value is written as text (URL-encoded in ``url``). A method not in ``methods`` raises
``NotImplementedError``: the scenarios that need it are reported *not applicable*.

A method may be a command instead of an HTTP call (``command: [argv...]``, its JSON answer on stdout); a step's
``id:`` captures the broker's own id for its ref (``{id}`` later); ``result.outcomes``/``result.codes`` map the
broker's own answers and codes; ``capabilities`` and ``billing`` declare what it supports and how it bills its
customers. ``start`` (a tenant API), ``advance_clock`` and ``charges`` are optional: without ``start`` the broker
runs on pooled partners (``reset`` empties its books), without ``advance_clock`` it reads ksim's time, without
``charges`` it earns a vendor-side certificate only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from ksimkit.scenarios.brokers.base import Charge, StepResult, TenantSetup
from ksimkit.simulators.client import default_tls

__all__ = ["AdapterError", "BillingPolicy", "BrokerCallError", "HttpAdapter", "HttpBroker", "MethodSpec", "ResultSpec"]

UTC = dt.UTC


class AdapterError(ValueError):
    """An adapter file that cannot be used: names the file, the key and what is wrong."""


class BrokerCallError(RuntimeError):
    """A call to the broker that failed: transport error, a 5xx, an answer that is not what the file says."""

    def __init__(
        self, message: str, *, method: str = "", url: str = "", status: int | None = None, body: str | None = None
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        where = f" [{method} {url}]" if method else ""
        tail = f": {body[:300]}" if body else ""
        super().__init__(f"{message}{where}{tail}")


# What each method's templates may use (besides `tenant`, `scenario_id`, the CONTEXT values and the adapter's
# `vars`). `id` is the broker's own id for the step's ref, captured from an earlier answer (a method's `id:`).
STEP_METHODS: dict[str, tuple[str, ...]] = {
    "order": ("ref", "id", "customer", "sku", "quantity", "approval_code"),
    "change_quantity": ("ref", "id", "quantity"),
    "switch_plan": ("ref", "id", "sku", "quantity"),
    "stop": ("ref", "id"),
    "reactivate": ("ref", "id"),
    "migrate": (),
    "activate": ("ref", "id", "customer", "product", "count", "trial_days"),
    "change_count": ("ref", "id", "count"),
    "change_product": ("ref", "id", "product"),
    "pause": ("ref", "id", "until"),
    "resume": ("ref", "id"),
    "cancel_at_month_end": ("ref", "id", "month", "end"),
    "hard_cancel": ("ref", "id"),
}
TENANT_FIELDS = (
    "scenario_id",
    "korm_url",
    "korm_token",
    "kss_wsdl_url",
    "kss_username",
    "kss_password",
    "now",
    "timezone",
    "prices",
    "legacy",
    "kss_url",
    "kss_rest_url",
    "ksim_url",
)
# What decides a bill, usable in every method: the partner's vendor terms (GET /_sim/partners/{id}/terms).
CONTEXT_FIELDS = (
    "programme",
    "billing_period",
    "msp_registered",
    "timezone",
    "prices",
    "terms",
    "kss_prices",
    "msp_tiers",
    "currency",
    "partner",
    "time_url",
    "ksim_url",
    "kss_rest_url",
    "base_url",
    "python",
)
OTHER_METHODS: dict[str, tuple[str, ...]] = {
    "start": TENANT_FIELDS,
    "stop_tenant": (),
    "reset": ("now",),  # no tenant API: reset the broker's own state before a scenario (optional)
    "advance_clock": ("to", "now"),
    "run_billing": ("to", "now"),  # after a clock move: run what the broker runs on a schedule (optional)
    "charges": ("period",),
    "activation_code": ("ref", "id"),
    "build": (),  # optional: the broker's build for the certificate (value: where it is in the answer)
}
ALL_METHODS = {**STEP_METHODS, **OTHER_METHODS}
CHARGE_FIELDS = ("period", "customer", "ref", "id", "units", "amount", "vendor_cost")
NULLABLE_CHARGE_FIELDS = ("units", "vendor_cost")  # may be mapped to null: the checks needing them are not done
EXTRA_CHARGE_FIELDS = ("sku", "kind")  # read only when the adapter file maps them (per-SKU tables of the report)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
POLICIES = ("pass_through", "own")
UNITS = ("vendor", "licence_days", "licences", "licence_months", "none")

_TOP_KEYS = {
    "name",
    "base_url",
    "timeout",
    "headers",
    "result",
    "methods",
    "vars",
    "omit_null",
    "verify",
    "capabilities",
    "billing",
}
_METHOD_KEYS = {
    "method",
    "url",
    "body",
    "params",
    "headers",
    "result",
    "tenant_id",
    "items",
    "fields",
    "value",
    "missing_status",
    "timeout",
    "omit_null",
    "command",
    "cwd",
    "env",
    "stdin",
    "refused_exit",
    "id",
}
_RESULT_KEYS = {"outcome", "done", "refused", "code", "message", "activation_code", "outcomes", "codes"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MISSING = object()


@dataclass(frozen=True)
class ResultSpec:
    """Where a step's answer holds the StepResult fields (dotted paths), and what the outcome values mean.

    ``outcome: http_status`` ignores the body for the outcome: 2xx is done, 4xx refused. With a path, the
    value found there decides (``done``/``refused`` lists); when the answer has no such field, the HTTP
    status decides. A 5xx, or a value in neither list, is a :class:`BrokerCallError`.
    """

    outcome: str = "outcome"
    done: tuple[Any, ...] = ("done",)
    refused: tuple[Any, ...] = ("refused",)
    code: str | None = "code"
    message: str | None = "message"
    activation_code: str | None = "activation_code"
    # The broker's own answers and codes as outcomes: value at `outcome` (or at `code`) -> done | refused.
    outcomes: Mapping[str, str] = field(default_factory=dict)
    # The broker's own codes as the vendor's (`E-GONE: SUBSCRIPTION_DELETED`); unmapped codes are kept as they are.
    codes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BillingPolicy:
    """How the broker bills its own customers (``billing:`` in the adapter file).

    ``pass_through``: the vendor's model at the broker's customer prices (what the suites' charge expectations
    assume); ``own``: the broker's own policy (whole periods in advance, ...), so customer invoices are not
    judged by the vendor's formula and only the reconciliation against the vendor's bill is checked.
    ``units``: what the broker's invoice lines count; only ``vendor`` (licence-days for KORM PAYG, licences for
    Yearly and KSS) can be compared with the scenarios' units.
    """

    policy: str = "pass_through"
    units: str = "vendor"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    method: str
    url: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    result: ResultSpec = field(default_factory=ResultSpec)
    tenant_id: str | None = None  # start: where the tenant id is in the answer
    items: str = "items"  # charges: where the list of lines is ("" or "." = the answer itself)
    fields: Mapping[str, str] = field(default_factory=dict)  # charges: Charge field -> dotted path in a line
    value: str = "activation_code"  # activation_code: where the code is in the answer
    missing_status: tuple[int, ...] = (404,)  # activation_code: statuses meaning "the broker has none"
    timeout: float | None = None
    omit_null: bool = True
    # A command instead of an HTTP call: argv templates, its JSON answer on stdout; exit 0 reads as HTTP 200,
    # an exit status in refused_exit as 422 (refused unless the answer says otherwise), any other as 500.
    command: tuple[Any, ...] | None = None
    cwd: str | None = None
    env: Mapping[str, Any] = field(default_factory=dict)
    stdin: Any = None  # a JSON template written to the command's standard input
    refused_exit: tuple[int, ...] = ()
    id_path: str | None = None  # where the broker's own id for the step's ref is in the answer (`id:`)

    @property
    def is_command(self) -> bool:
        return self.command is not None


def _expand_env(value: Any, where: str, source: str) -> Any:
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

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return value


def _placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template.replace("{{", "").replace("}}", "")))
    if isinstance(template, dict):
        return set().union(*(_placeholders(k) | _placeholders(v) for k, v in template.items())) if template else set()
    if isinstance(template, list):
        return set().union(*(_placeholders(v) for v in template)) if template else set()
    return set()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _as_text(value: Any) -> str:
    value = _jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _arg_text(value: Any) -> str:
    """A command argument or environment value: objects and lists (``{prices}``, ``{terms}``) as JSON text."""
    value = _jsonable(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else _as_text(value)


def render(template: Any, variables: Mapping[str, Any], *, url: bool = False, omit_null: bool = True) -> Any:
    """Fill a template: ``"{name}"`` alone gives the value itself; inside text it gives its text form."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole and not url:
            return _jsonable(variables.get(whole.group(1)))

        def sub(match: re.Match[str]) -> str:
            text = _as_text(variables.get(match.group(1)))
            return quote(text, safe="") if url else text

        parts = template.split("{{")
        return "{".join(p.replace("}}", "}") for p in (_PLACEHOLDER.sub(sub, part) for part in parts))
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


@dataclass(frozen=True)
class HttpAdapter:
    """A validated adapter file. ``broker()`` makes a new :class:`HttpBroker` (one per scenario)."""

    name: str
    base_url: str
    methods: Mapping[str, MethodSpec]
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    verify: bool = True
    source: str = "<adapter>"
    capabilities: frozenset[str] | None = None  # None: no `capabilities` key, everything is assumed
    billing: BillingPolicy = field(default_factory=BillingPolicy)

    @classmethod
    def load(cls, path: str | Path, *, base_url: str | None = None) -> HttpAdapter:
        """Read and validate an adapter file; ``base_url`` overrides the file's (e.g. a broker started here)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AdapterError(f"{path}: cannot read the adapter file: {exc.strerror or exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise AdapterError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
        return cls.from_dict(data, source=str(path), base_url=base_url)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<adapter>", base_url: str | None = None) -> HttpAdapter:
        def fail(where: str, message: str) -> AdapterError:
            return AdapterError(f"{source}: {where}: {message}")

        if not isinstance(data, dict):
            raise AdapterError(f"{source}: an adapter file is a mapping with base_url and methods")
        if "base_url" not in data and base_url is None and _commands_only(data.get("methods")):
            data = {**data, "base_url": "http://127.0.0.1"}  # a broker driven only by commands needs no URL
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
        data = {k: (_expand_env(v, k, source) if k != "methods" else v) for k, v in data.items()}
        url = base_url or data.get("base_url")
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            raise fail("base_url", f"must be an http(s) URL, not {url!r}")
        timeout = data.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise fail("timeout", f"must be a number of seconds, not {timeout!r}")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, (str, int)) for v in headers.values()):
            raise fail("headers", "must map header names to strings")
        variables = data.get("vars") or {}
        if not isinstance(variables, dict):
            raise fail("vars", "must be a mapping of names to values")
        omit_null = data.get("omit_null", True)
        if not isinstance(omit_null, bool):
            raise fail("omit_null", "must be true or false")
        verify = data.get("verify", True)
        if not isinstance(verify, bool):
            raise fail("verify", "must be true or false")
        default_result = _result_spec(data.get("result"), ResultSpec(), "result", fail)
        capabilities = _capabilities(data.get("capabilities", MISSING), fail)
        billing = _billing(data.get("billing"), fail)

        methods_data = data.get("methods")
        if not isinstance(methods_data, dict) or not methods_data:
            raise fail("methods", "must map broker methods (start, order, charges, ...) to HTTP calls")
        methods: dict[str, MethodSpec] = {}
        for name, spec in methods_data.items():
            where = f"methods.{name}"
            if name not in ALL_METHODS:
                raise fail(where, f"unknown broker method (known: {', '.join(ALL_METHODS)})")
            if spec is None:
                continue  # explicitly not supported
            if not isinstance(spec, dict):
                raise fail(where, "must be a mapping with method and url")
            spec = _expand_env(spec, where, source)
            bad = sorted(set(spec) - _METHOD_KEYS)
            if bad:
                raise fail(f"{where}.{bad[0]}", f"unknown key (known: {', '.join(sorted(_METHOD_KEYS))})")
            http_method = str(
                spec.get("method", "GET" if name in ("charges", "activation_code", "build") else "POST")
            ).upper()
            if http_method not in HTTP_METHODS:
                raise fail(f"{where}.method", f"must be one of {', '.join(HTTP_METHODS)}, not {spec.get('method')!r}")
            url_template = spec.get("url")
            command = spec.get("command")
            if command is not None and url_template is not None:
                raise fail(where, "has both url and command: a method is one HTTP call or one command")
            if command is not None:
                if (
                    isinstance(command, str)
                    or not isinstance(command, list)
                    or not command
                    or not all(isinstance(a, (str, int, float)) for a in command)
                ):
                    raise fail(
                        f"{where}.command", "must be a list of arguments (argv), e.g. [mybroker, order, '{ref}']"
                    )
                url_template = ""
            elif not isinstance(url_template, str) or not url_template:
                raise fail(
                    f"{where}.url",
                    "missing: the path (or full URL) of the call, e.g. /tenants/{tenant}/orders"
                    " (or a command: [argv...])",
                )
            allowed = set(ALL_METHODS[name]) | set(variables) | {"scenario_id"} | set(CONTEXT_FIELDS)
            if name != "start":
                allowed.add("tenant")
            for key in ("url", "body", "params", "headers", "command", "env", "stdin", "cwd"):
                used = _placeholders(spec.get(key))
                if key == "headers":
                    used |= set().union(*(_placeholders(v) for v in headers.values())) if headers else set()
                stray = sorted(used - allowed)
                if stray:
                    raise fail(
                        f"{where}.{key}",
                        f"unknown placeholder {{{stray[0]}}} (this method knows: {', '.join(sorted(allowed))})",
                    )
            for key in ("params", "headers"):
                if spec.get(key) is not None and not isinstance(spec[key], dict):
                    raise fail(f"{where}.{key}", "must be a mapping")
            kwargs: dict[str, Any] = {}
            if command is not None:
                env = spec.get("env") or {}
                if not isinstance(env, dict):
                    raise fail(f"{where}.env", "must map environment variable names to values")
                cwd = spec.get("cwd")
                if cwd is not None and not isinstance(cwd, str):
                    raise fail(f"{where}.cwd", "must be a directory")
                refused_exit = spec.get("refused_exit", [])
                refused_exit = [refused_exit] if isinstance(refused_exit, int) else refused_exit
                if not isinstance(refused_exit, list) or not all(
                    isinstance(c, int) and not isinstance(c, bool) for c in refused_exit
                ):
                    raise fail(f"{where}.refused_exit", "must be an exit status or a list of them")
                kwargs.update(
                    command=tuple(command),
                    env={str(k): v for k, v in env.items()},
                    cwd=cwd,
                    stdin=spec.get("stdin"),
                    refused_exit=tuple(refused_exit),
                )
            for key in ("method", "params", "headers", "body"):
                if command is not None and key in spec and key != "method":
                    raise fail(
                        f"{where}.{key}", "is for HTTP calls; a command takes its values in its argv, env or stdin"
                    )
            if command is None:
                for key in ("env", "cwd", "stdin", "refused_exit"):
                    if key in spec:
                        raise fail(f"{where}.{key}", "is for commands (command: [argv...])")
            id_path = spec.get("id")
            if id_path is not None:
                if name not in STEP_METHODS or "ref" not in STEP_METHODS[name]:
                    raise fail(f"{where}.id", "captures the broker's id of a step's ref: only steps with a ref have it")
                if not isinstance(id_path, str) or not id_path:
                    raise fail(f"{where}.id", "must be a JSON pointer (/data/id) or a dotted path into the answer")
                kwargs["id_path"] = id_path
            if name == "start":
                tenant_id = spec.get("tenant_id")
                if tenant_id is not None and not isinstance(tenant_id, str):
                    raise fail(f"{where}.tenant_id", "must be a dotted path into the answer, e.g. id")
                kwargs["tenant_id"] = tenant_id
            if name == "charges":
                items = spec.get("items", "items")
                if not isinstance(items, str):
                    raise fail(
                        f"{where}.items", "must be a dotted path to the list of invoice lines ('.' = the answer)"
                    )
                fields = spec.get("fields") or {}
                if not isinstance(fields, dict):
                    raise fail(f"{where}.fields", "must map Charge fields to dotted paths in a line")
                bad = sorted(set(fields) - set(CHARGE_FIELDS) - set(EXTRA_CHARGE_FIELDS))
                if bad:
                    raise fail(
                        f"{where}.fields.{bad[0]}",
                        f"not a Charge field (known: {', '.join(CHARGE_FIELDS + EXTRA_CHARGE_FIELDS)})",
                    )
                for key, path_ in fields.items():
                    if path_ is None and key not in NULLABLE_CHARGE_FIELDS + ("id", "ref"):
                        raise fail(
                            f"{where}.fields.{key}",
                            f"is required (only {', '.join(NULLABLE_CHARGE_FIELDS)} "
                            "may be null: not on the broker's invoice)",
                        )
                    if path_ is not None and not isinstance(path_, str):
                        raise fail(f"{where}.fields.{key}", "must be a JSON pointer or a dotted path in a line")
                if "id" in fields and "ref" not in fields:
                    fields = {**fields, "ref": None}  # the line names the broker's id, mapped back to the ref
                if fields.get("ref", "ref") is None and fields.get("id") is None:
                    raise fail(
                        f"{where}.fields",
                        "needs ref (the scenario's ref) or id (the broker's own id, captured by the steps' id:)",
                    )
                kwargs["items"] = items
                kwargs["fields"] = {
                    f: (None if f in fields and fields[f] is None else str(fields.get(f, f)))
                    for f in CHARGE_FIELDS
                    if f != "id" or fields.get("id")
                } | {f: str(fields[f]) for f in EXTRA_CHARGE_FIELDS if f in fields}
            if name in ("activation_code", "build"):
                value = spec.get("value", name)
                if not isinstance(value, str):
                    raise fail(
                        f"{where}.value",
                        f"must be a JSON pointer or dotted path to the {name.replace('_', ' ')} in the answer",
                    )
                kwargs["value"] = value
                missing = spec.get("missing_status", [404])
                missing = [missing] if isinstance(missing, int) else missing
                if not isinstance(missing, list) or not all(isinstance(s, int) for s in missing):
                    raise fail(f"{where}.missing_status", "must be a status or a list of statuses")
                kwargs["missing_status"] = tuple(missing)
            method_timeout = spec.get("timeout")
            if method_timeout is not None and (
                isinstance(method_timeout, bool) or not isinstance(method_timeout, (int, float)) or method_timeout <= 0
            ):
                raise fail(f"{where}.timeout", "must be a number of seconds")
            method_omit = spec.get("omit_null", omit_null)
            if not isinstance(method_omit, bool):
                raise fail(f"{where}.omit_null", "must be true or false")
            methods[name] = MethodSpec(
                name=name,
                method="RUN" if command is not None else http_method,
                url=url_template,
                body=spec.get("body"),
                params=spec.get("params"),
                headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
                result=_result_spec(spec.get("result"), default_result, f"{where}.result", fail),
                timeout=float(method_timeout) if method_timeout is not None else None,
                omit_null=method_omit,
                **kwargs,
            )
        if not any(m in methods for m in STEP_METHODS):
            raise fail(
                "methods",
                f"no step method: an adapter drives at least one of {', '.join(STEP_METHODS)} "
                "(start, advance_clock and charges are optional)",
            )
        return cls(
            name=str(data.get("name") or Path(source).stem),
            base_url=url.rstrip("/"),
            methods=methods,
            timeout=float(timeout),
            headers={str(k): str(v) for k, v in headers.items()},
            variables=variables,
            verify=verify,
            source=source,
            capabilities=capabilities,
            billing=billing,
        )

    def supports(self, method: str) -> bool:
        return method in self.methods

    def broker(self, *, transport: httpx.BaseTransport | None = None) -> HttpBroker:
        return HttpBroker(self, transport=transport)

    __call__ = broker  # an adapter is a broker factory


def _commands_only(methods: Any) -> bool:
    return (
        isinstance(methods, dict)
        and bool(methods)
        and all(spec is None or (isinstance(spec, dict) and "command" in spec) for spec in methods.values())
    )


def _capabilities(data: Any, fail: Any) -> frozenset[str] | None:
    from ksimkit.scenarios.capabilities import CAPABILITIES

    if data is MISSING:
        return None
    if isinstance(data, list):
        data = {name: True for name in data}
    if not isinstance(data, dict):
        raise fail("capabilities", "must map capability names to true/false (or list the supported ones)")
    for name, value in data.items():
        if name not in CAPABILITIES:
            raise fail(f"capabilities.{name}", f"unknown capability (known: {', '.join(CAPABILITIES)})")
        if not isinstance(value, bool):
            raise fail(f"capabilities.{name}", "must be true or false")
    return frozenset(name for name, value in data.items() if value)


def _billing(data: Any, fail: Any) -> BillingPolicy:
    if data is None:
        return BillingPolicy()
    if not isinstance(data, dict):
        raise fail("billing", "must be a mapping (policy, units)")
    bad = sorted(set(data) - {"policy", "units"})
    if bad:
        raise fail(f"billing.{bad[0]}", "unknown key (known: policy, units)")
    policy = data.get("policy", "pass_through")
    if policy not in POLICIES:
        raise fail("billing.policy", f"must be one of {', '.join(POLICIES)}, not {policy!r}")
    units = data.get("units", "vendor")
    if units not in UNITS:
        raise fail("billing.units", f"must be one of {', '.join(UNITS)}, not {units!r}")
    return BillingPolicy(policy=policy, units=units)


def _result_spec(data: Any, base: ResultSpec, where: str, fail: Any) -> ResultSpec:
    if data is None:
        return base
    if not isinstance(data, dict):
        raise fail(where, "must be a mapping (outcome, done, refused, code, message, activation_code)")
    bad = sorted(set(data) - _RESULT_KEYS)
    if bad:
        raise fail(f"{where}.{bad[0]}", f"unknown key (known: {', '.join(sorted(_RESULT_KEYS))})")
    values: dict[str, Any] = {}
    for key in ("outcome", "code", "message", "activation_code"):
        if key in data:
            if data[key] is not None and not isinstance(data[key], str):
                raise fail(f"{where}.{key}", "must be a dotted path into the answer (or null)")
            values[key] = data[key]
    if values.get("outcome", "x") is None:
        raise fail(f"{where}.outcome", "must be a dotted path, or http_status")
    for key in ("done", "refused"):
        if key in data:
            listed = data[key] if isinstance(data[key], list) else [data[key]]
            values[key] = tuple(listed)
    for key in ("outcomes", "codes"):
        if key in data:
            table = data[key]
            if not isinstance(table, dict):
                raise fail(
                    f"{where}.{key}",
                    "must be a table: the broker's value -> "
                    + ("done or refused" if key == "outcomes" else "the vendor's code"),
                )
            if key == "outcomes":
                wrong = [k for k, v in table.items() if v not in ("done", "refused")]
                if wrong:
                    raise fail(f"{where}.outcomes.{wrong[0]}", "must be done or refused")
            values[key] = {str(k): str(v) for k, v in table.items()}
    return dataclasses.replace(base, **values)


def context_values(setup: TenantSetup) -> dict[str, Any]:
    """The CONTEXT_FIELDS of a run: the partner's vendor terms and where ksim is, for every method's templates."""
    korm_base = setup.korm_url.rsplit("/korm/", 1)[0]
    terms = setup.terms or {}
    return {
        "scenario_id": setup.scenario_id,
        "programme": setup.programme,
        "billing_period": setup.billing_period,
        "msp_registered": setup.msp_registered,
        "timezone": setup.timezone,
        "prices": setup.prices,
        "terms": terms,
        "kss_prices": (terms.get("kss") or {}).get("prices"),
        "msp_tiers": (terms.get("kss") or {}).get("msp_tiers"),
        "currency": terms.get("currency"),
        "partner": setup.partner_id,
        "ksim_url": korm_base,
        "kss_rest_url": korm_base + "/kss/v1",
        "time_url": f"{korm_base}/_sim/partners/{setup.partner_id}/time" if setup.partner_id else None,
    }


def tls_transport() -> httpx.HTTPTransport:
    """A new httpx transport with the shared default TLS context (for clients that take a transport, not ``verify``)."""
    return httpx.HTTPTransport(verify=default_tls())


@dataclass(frozen=True)
class _Request:
    method: str
    url: str


@dataclass(frozen=True)
class Answer:
    """What one call of the broker answered: an HTTP response, or a command's exit status and standard output
    (exit 0 reads as 200, an exit status in ``refused_exit`` as 422, any other as 500)."""

    status_code: int
    content: bytes
    request: _Request

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        return cls(response.status_code, response.content, _Request(response.request.method, str(response.request.url)))

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400


class HttpBroker:
    """A broker tenant reached over HTTP or by commands, as an adapter file describes (see :class:`HttpAdapter`)."""

    def __init__(self, adapter: HttpAdapter, *, transport: httpx.BaseTransport | None = None) -> None:
        self.adapter = adapter
        self.tenant: str | None = None
        self.tenant_setup: TenantSetup | None = None
        self.ids: dict[str, str] = {}  # ref -> the broker's own id for it (captured by a method's `id:`)
        self._http = httpx.Client(
            base_url=adapter.base_url,
            headers=dict(adapter.headers),
            timeout=adapter.timeout,
            transport=transport,
            verify=default_tls() if adapter.verify else False,
        )

    @property
    def capabilities(self) -> frozenset[str] | None:
        return self.adapter.capabilities

    @property
    def billing(self) -> BillingPolicy:
        return self.adapter.billing

    @property
    def resets_state(self) -> bool:
        """Whether each scenario starts on fresh broker state (a tenant per scenario, or a reset call)."""
        return "start" in self.adapter.methods or "reset" in self.adapter.methods

    def supports(self, method: str) -> bool:
        return method in self.adapter.methods

    def __repr__(self) -> str:
        return f"HttpBroker({self.adapter.name!r}, tenant={self.tenant!r})"

    def close(self) -> None:
        self._http.close()

    # -- plumbing --

    def _spec(self, name: str) -> MethodSpec:
        spec = self.adapter.methods.get(name)
        if spec is None:
            raise NotImplementedError(f"the adapter {self.adapter.source} has no {name}")
        return spec

    def _variables(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "base_url": self.adapter.base_url,
            "python": sys.executable,
            **self.adapter.variables,
        }
        setup = self.tenant_setup
        if setup is not None:
            variables.update(context_values(setup))
        variables["tenant"] = self.tenant
        ref = extra.get("ref")
        if ref is not None:
            variables["id"] = self.ids.get(str(ref))
        variables.update(extra)
        return variables

    def _call(self, name: str, extra: Mapping[str, Any]) -> tuple[MethodSpec, Answer]:
        spec = self._spec(name)
        variables = self._variables(extra)
        if spec.is_command:
            return spec, self._run(name, spec, variables)
        url = render(spec.url, variables, url=True)
        kwargs: dict[str, Any] = {}
        if spec.body is not None:
            kwargs["json"] = render(spec.body, variables, omit_null=spec.omit_null)
        if spec.params:
            params = render(dict(spec.params), variables, omit_null=True)
            kwargs["params"] = {k: _as_text(v) for k, v in params.items()}
        headers = {k: str(render(v, variables, url=True)) for k, v in {**self.adapter.headers, **spec.headers}.items()}
        if headers:
            kwargs["headers"] = headers
        if spec.timeout is not None:
            kwargs["timeout"] = spec.timeout
        try:
            response = self._http.request(spec.method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise BrokerCallError(
                f"{name}: the broker did not answer: {type(exc).__name__}: {exc}", method=spec.method, url=str(url)
            ) from exc
        return spec, Answer.of(response)

    def _run(self, name: str, spec: MethodSpec, variables: Mapping[str, Any]) -> Answer:
        """Run the method's command: argv rendered (each argument as text), env added to ksim's own environment."""
        assert spec.command is not None
        argv = [_arg_text(render(str(arg), variables)) for arg in spec.command]
        env = {**os.environ, **{k: _arg_text(render(str(v), variables)) for k, v in spec.env.items()}}
        stdin = None
        if spec.stdin is not None:
            stdin = json.dumps(render(spec.stdin, variables, omit_null=spec.omit_null))
        cwd = _as_text(render(spec.cwd, variables)) if spec.cwd else None
        shown = " ".join(argv)
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                cwd=cwd,
                timeout=spec.timeout or self.adapter.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerCallError(
                f"{name}: the command did not run: {type(exc).__name__}: {exc}", method="RUN", url=shown
            ) from exc
        if done.returncode == 0:
            status = 200
        elif done.returncode in spec.refused_exit:
            status = 422
        else:
            raise BrokerCallError(
                f"{name}: the command exited with status {done.returncode}",
                method="RUN",
                url=shown,
                status=done.returncode,
                body=(done.stderr or done.stdout).strip()[-300:],
            )
        return Answer(status, done.stdout.encode(), _Request("RUN", shown))

    @staticmethod
    def _json(name: str, response: Answer, required: bool = True) -> Any:
        if not response.content:
            if required:
                raise BrokerCallError(
                    f"{name}: the answer has no body",
                    method=response.request.method,
                    url=str(response.request.url),
                    status=response.status_code,
                )
            return None
        try:
            return response.json()
        except ValueError as exc:
            if required:
                raise BrokerCallError(
                    f"{name}: the answer is not JSON",
                    method=response.request.method,
                    url=str(response.request.url),
                    status=response.status_code,
                    body=response.text,
                ) from exc
            return None

    @staticmethod
    def _check(name: str, response: Answer) -> None:
        if response.is_error:
            raise BrokerCallError(
                f"{name}: the broker answered {response.status_code}",
                method=response.request.method,
                url=str(response.request.url),
                status=response.status_code,
                body=response.text,
            )

    def _step(self, name: str, **fields: Any) -> StepResult:
        spec, response = self._call(name, fields)
        if response.status_code >= 500 or response.status_code < 200 or 300 <= response.status_code < 400:
            raise BrokerCallError(
                f"{name}: the broker answered {response.status_code}",
                method=response.request.method,
                url=str(response.request.url),
                status=response.status_code,
                body=response.text,
            )
        body = self._json(name, response, required=False)
        rs = spec.result
        by_status = "done" if response.is_success else "refused"
        found = MISSING if rs.outcome == "http_status" else dig(body, rs.outcome)
        raw_code = dig(body, rs.code)
        if rs.outcomes and found is not MISSING and found is not None and str(found) in rs.outcomes:
            outcome = rs.outcomes[str(found)]
        elif rs.outcomes and raw_code is not MISSING and raw_code is not None and str(raw_code) in rs.outcomes:
            outcome = rs.outcomes[str(raw_code)]
        elif rs.outcome == "http_status":
            outcome = by_status
        else:
            if found is MISSING or found is None:
                outcome = by_status
            elif found in rs.done:
                outcome = "done"
            elif found in rs.refused:
                outcome = "refused"
            else:
                raise BrokerCallError(
                    f"{name}: {rs.outcome} is {found!r}, neither done ({', '.join(map(str, rs.done))}) nor refused "
                    f"({', '.join(map(str, rs.refused))}); set result.done/result.refused in the adapter file",
                    method=response.request.method,
                    url=str(response.request.url),
                    status=response.status_code,
                    body=response.text,
                )

        def text(path: str | None) -> str | None:
            value = dig(body, path)
            return None if value is MISSING or value is None else str(value)

        code = text(rs.code)
        if code is not None:
            code = rs.codes.get(code, code)
        ref = fields.get("ref")
        if spec.id_path and ref is not None and outcome == "done":
            captured = dig(body, spec.id_path)
            if captured is MISSING or captured in (None, ""):
                raise BrokerCallError(
                    f"{name}: the answer has no id at {spec.id_path!r} (methods.{name}.id)",
                    method=response.request.method,
                    url=response.request.url,
                    status=response.status_code,
                    body=response.text,
                )
            self.ids[str(ref)] = str(captured)
        return StepResult(
            outcome=outcome,
            code=code,
            message=text(rs.message),  # type: ignore[arg-type]
            activation_code=text(rs.activation_code),
        )

    # -- the Broker protocol --

    def start(self, tenant: TenantSetup) -> None:
        self.tenant_setup = tenant
        if "start" not in self.adapter.methods:  # no tenant API: the broker is configured with (pooled) partners
            self.tenant = tenant.broker_tenant or tenant.partner_id or tenant.scenario_id
            if "reset" in self.adapter.methods:
                _, response = self._call("reset", {"now": tenant.now})
                self._check("reset", response)
            return
        korm_base = tenant.korm_url.rsplit("/korm/", 1)[0]
        fields = {f.name: getattr(tenant, f.name) for f in dataclasses.fields(tenant)}
        fields.update(
            ksim_url=korm_base, kss_url=tenant.kss_wsdl_url.split("?", 1)[0], kss_rest_url=korm_base + "/kss/v1"
        )
        spec, response = self._call("start", fields)
        self._check("start", response)
        if spec.tenant_id:
            body = self._json("start", response)
            found = dig(body, spec.tenant_id)
            if found is MISSING or found in (None, ""):
                raise BrokerCallError(
                    f"start: the answer has no tenant id at {spec.tenant_id!r}",
                    method=spec.method,
                    url=str(response.request.url),
                    status=response.status_code,
                    body=response.text,
                )
            self.tenant = str(found)
        else:
            self.tenant = tenant.scenario_id

    def stop_tenant(self) -> None:
        try:
            if "stop_tenant" in self.adapter.methods and self.tenant is not None:
                _, response = self._call("stop_tenant", {})
                self._check("stop_tenant", response)
        finally:
            self.close()

    def order(self, ref: str, customer: str, sku: str, quantity: int, approval_code: str | None = None) -> StepResult:
        return self._step("order", ref=ref, customer=customer, sku=sku, quantity=quantity, approval_code=approval_code)

    def change_quantity(self, ref: str, quantity: int) -> StepResult:
        return self._step("change_quantity", ref=ref, quantity=quantity)

    def switch_plan(self, ref: str, sku: str, quantity: int | None = None) -> StepResult:
        return self._step("switch_plan", ref=ref, sku=sku, quantity=quantity)

    def stop(self, ref: str) -> StepResult:
        return self._step("stop", ref=ref)

    def reactivate(self, ref: str) -> StepResult:
        return self._step("reactivate", ref=ref)

    def migrate(self) -> StepResult:
        return self._step("migrate")

    def activate(self, ref: str, customer: str, product: str, count: int, trial_days: int = 0) -> StepResult:
        return self._step("activate", ref=ref, customer=customer, product=product, count=count, trial_days=trial_days)

    def change_count(self, ref: str, count: int) -> StepResult:
        return self._step("change_count", ref=ref, count=count)

    def change_product(self, ref: str, product: str) -> StepResult:
        return self._step("change_product", ref=ref, product=product)

    def pause(self, ref: str, until: dt.datetime | None = None) -> StepResult:
        return self._step("pause", ref=ref, until=until)

    def resume(self, ref: str) -> StepResult:
        return self._step("resume", ref=ref)

    def cancel_at_month_end(self, ref: str, month: str) -> StepResult:
        return self._step("cancel_at_month_end", ref=ref, month=month, end=self._month_end(month))

    def hard_cancel(self, ref: str) -> StepResult:
        return self._step("hard_cancel", ref=ref)

    def _month_end(self, month: str) -> dt.datetime:
        from zoneinfo import ZoneInfo

        year, mon = (int(x) for x in month.split("-"))
        zone = ZoneInfo(self.tenant_setup.timezone if self.tenant_setup else "UTC")
        first = dt.date(year + mon // 12, mon % 12 + 1, 1)
        return dt.datetime.combine(first, dt.time(0, 0), zone).astimezone(UTC)

    def advance_clock(self, to: dt.datetime) -> None:
        """Move the broker's clock (nothing when the adapter has no advance_clock: the broker reads its time from
        ksim's time endpoint), then run its scheduled billing (run_billing) when the adapter has one."""
        for name in ("advance_clock", "run_billing"):
            if name in self.adapter.methods:
                _, response = self._call(name, {"to": to, "now": to})
                self._check(name, response)

    def charges(self, period: str) -> list[Charge]:
        spec, response = self._call("charges", {"period": period})
        if response.status_code == 404:
            return []
        self._check("charges", response)
        body = self._json("charges", response)
        lines = dig(body, spec.items)
        if lines is MISSING or lines is None:
            raise BrokerCallError(
                f"charges: the answer has no list of lines at {spec.items!r} (set methods.charges.items)",
                method=spec.method,
                url=str(response.request.url),
                body=response.text,
            )
        if not isinstance(lines, list):
            raise BrokerCallError(
                f"charges: {spec.items!r} is not a list",
                method=spec.method,
                url=str(response.request.url),
                body=response.text,
            )
        out = []
        refs_by_id = {v: k for k, v in self.ids.items()}
        for index, line in enumerate(lines):

            def get(name: str, default: Any = MISSING, line: Any = line, index: int = index) -> Any:
                path_ = spec.fields.get(name, MISSING)
                if path_ is None:  # mapped to null: not on this broker's invoices
                    return None
                value = MISSING if path_ is MISSING else dig(line, path_)
                if value is MISSING or value is None:
                    if default is not MISSING:
                        return default
                    raise BrokerCallError(
                        f"charges: line {index} has no {name} at {path_!r} (set methods.charges.fields.{name})",
                        method=spec.method,
                        url=str(response.request.url),
                        body=str(line),
                    )
                return value

            try:
                raw_units = get("units")
                units = None if raw_units is None else int(raw_units)
                amount = Decimal(str(get("amount")))
                raw_cost = get("vendor_cost")
                vendor_cost = None if raw_cost is None else Decimal(str(raw_cost))
            except (TypeError, ValueError, InvalidOperation) as exc:
                raise BrokerCallError(
                    f"charges: line {index} has a value that is not a number: {exc}",
                    method=spec.method,
                    url=str(response.request.url),
                    body=str(line),
                ) from exc
            if spec.fields.get("id"):
                broker_id = str(get("id"))
                ref = refs_by_id.get(broker_id) or (str(get("ref", broker_id)) if spec.fields.get("ref") else broker_id)
            else:
                ref = str(get("ref"))
            line_period = str(get("period", period))
            if re.match(r"^\d{4}-\d{2}-\d{2}", line_period):  # a line dated, not labelled: its calendar month
                line_period = line_period[:7]
            sku, kind = get("sku", None), get("kind", None)
            out.append(
                Charge(
                    period=line_period,
                    customer=str(get("customer", "")),
                    ref=ref,
                    units=units,
                    amount=amount,
                    vendor_cost=vendor_cost,
                    sku=None if sku is None else str(sku),
                    kind=None if kind is None else str(kind),
                )
            )
        return out

    def build(self) -> str | None:
        """The broker's build as its ``build`` method answers it; ``None`` when the adapter file has none."""
        if "build" not in self.adapter.methods:
            return None
        spec, response = self._call("build", {})
        self._check("build", response)
        found = dig(self._json("build", response), spec.value)
        return None if found is MISSING or found is None else str(found)

    def activation_code(self, ref: str) -> str | None:
        spec = self._spec("activation_code")
        if "id" in _placeholders(spec.url) | _placeholders(list(spec.command or ())) and ref not in self.ids:
            return None  # the broker never gave an id for this ref: it holds nothing for it
        spec, response = self._call("activation_code", {"ref": ref})
        if response.status_code in spec.missing_status:
            return None
        self._check("activation_code", response)
        body = self._json("activation_code", response)
        found = dig(body, spec.value)
        return None if found is MISSING or found is None else str(found)
