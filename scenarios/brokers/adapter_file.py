"""The adapter file's vocabulary and its validation: which methods it may map, each method's keys, how a step's
answer reads (``ResultSpec``) and how the broker bills (``BillingPolicy``). ``HttpAdapter`` (``brokers/http.py``)
is what it validates into; ``docs/certify-your-broker.md`` documents every key."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksimkit.scenarios.brokers.base import TenantSetup
from ksimkit.scenarios.brokers.templates import MISSING, expand_env, placeholders
from ksimkit.scenarios.errors import AdapterError
from ksimkit.scenarios.steps import StepKinds

__all__ = ["BillingPolicy", "MethodSpec", "OTHER_METHODS", "ResultSpec", "context_values", "read_adapter"]

# What each method's templates may use (besides `tenant`, `scenario_id`, the CONTEXT values and the adapter's
# `vars`): a step's are its fields (StepKind.template_names: `id` is the broker's own id for the step's ref, captured
# from an earlier answer by a method's `id:`); the other methods' are these.
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
    fields: Mapping[str, str | None] = field(default_factory=dict)  # charges: Charge field -> path in a line
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


def read_adapter(data: Any, *, source: str, base_url: str | None, steps: StepKinds) -> dict[str, Any]:
    """The fields of an ``HttpAdapter`` from an adapter file's content; :class:`AdapterError` names what is wrong.
    ``steps``: the broker steps the file may map (besides ``OTHER_METHODS``)."""

    def fail(where: str, message: str) -> AdapterError:
        return AdapterError(f"{source}: {where}: {message}")

    step_methods = {name: kind.template_names() for name, kind in steps.items()}
    all_methods = {**step_methods, **OTHER_METHODS}

    if not isinstance(data, dict):
        raise AdapterError(f"{source}: an adapter file is a mapping with base_url and methods")
    if "base_url" not in data and base_url is None and _commands_only(data.get("methods")):
        data = {**data, "base_url": "http://127.0.0.1"}  # a broker driven only by commands needs no URL
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    data = {k: (expand_env(v, k, source) if k != "methods" else v) for k, v in data.items()}
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
        if name not in all_methods:
            raise fail(where, f"unknown broker method (known: {', '.join(all_methods)})")
        if spec is None:
            continue  # explicitly not supported
        if not isinstance(spec, dict):
            raise fail(where, "must be a mapping with method and url")
        spec = expand_env(spec, where, source)
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
                raise fail(f"{where}.command", "must be a list of arguments (argv), e.g. [mybroker, order, '{ref}']")
            url_template = ""
        elif not isinstance(url_template, str) or not url_template:
            raise fail(
                f"{where}.url",
                "missing: the path (or full URL) of the call, e.g. /tenants/{tenant}/orders (or a command: [argv...])",
            )
        allowed = set(all_methods[name]) | set(variables) | {"scenario_id"} | set(CONTEXT_FIELDS)
        if name != "start":
            allowed.add("tenant")
        for key in ("url", "body", "params", "headers", "command", "env", "stdin", "cwd"):
            used = placeholders(spec.get(key))
            if key == "headers":
                used |= set().union(*(placeholders(v) for v in headers.values())) if headers else set()
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
                raise fail(f"{where}.{key}", "is for HTTP calls; a command takes its values in its argv, env or stdin")
        if command is None:
            for key in ("env", "cwd", "stdin", "refused_exit"):
                if key in spec:
                    raise fail(f"{where}.{key}", "is for commands (command: [argv...])")
        id_path = spec.get("id")
        if id_path is not None:
            if name not in step_methods or "ref" not in step_methods[name]:
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
                raise fail(f"{where}.items", "must be a dotted path to the list of invoice lines ('.' = the answer)")
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
    if not any(m in methods for m in step_methods):
        raise fail(
            "methods",
            f"no step method: an adapter drives at least one of {', '.join(step_methods)} "
            "(start, advance_clock and charges are optional)",
        )
    return {
        "name": str(data.get("name") or Path(source).stem),
        "base_url": url.rstrip("/"),
        "methods": methods,
        "timeout": float(timeout),
        "headers": {str(k): str(v) for k, v in headers.items()},
        "variables": variables,
        "verify": verify,
        "source": source,
        "capabilities": capabilities,
        "billing": billing,
        "steps": steps,
    }


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
