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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from ksimkit.scenarios.brokers.adapter_file import BillingPolicy, MethodSpec, context_values, read_adapter
from ksimkit.scenarios.brokers.base import Charge, StepResult, TenantSetup
from ksimkit.scenarios.brokers.templates import MISSING, arg_text, as_text, dig, placeholders, render
from ksimkit.scenarios.errors import AdapterError, BrokerCallError
from ksimkit.scenarios.steps import STEPS, StepKinds
from ksimkit.simulators.client import default_tls

__all__ = ["Answer", "HttpAdapter", "HttpBroker", "tls_transport"]

UTC = dt.UTC


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
    steps: StepKinds = field(default_factory=lambda: STEPS, repr=False, compare=False)  # the steps it may map

    @classmethod
    def load(cls, path: str | Path, *, base_url: str | None = None, steps: StepKinds = STEPS) -> HttpAdapter:
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
        return cls.from_dict(data, source=str(path), base_url=base_url, steps=steps)

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "<adapter>", base_url: str | None = None, steps: StepKinds = STEPS
    ) -> HttpAdapter:
        """Validate an adapter file's content (``adapter_file.read_adapter``)."""
        return cls(**read_adapter(data, source=source, base_url=base_url, steps=steps))

    def supports(self, method: str) -> bool:
        return method in self.methods

    def broker(self, *, transport: httpx.BaseTransport | None = None) -> HttpBroker:
        return HttpBroker(self, transport=transport)

    __call__ = broker  # an adapter is a broker factory


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
            kwargs["params"] = {k: as_text(v) for k, v in params.items()}
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
        argv = [arg_text(render(str(arg), variables)) for arg in spec.command]
        env = {**os.environ, **{k: arg_text(render(str(v), variables)) for k, v in spec.env.items()}}
        stdin = None
        if spec.stdin is not None:
            stdin = json.dumps(render(spec.stdin, variables, omit_null=spec.omit_null))
        cwd = as_text(render(spec.cwd, variables)) if spec.cwd else None
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
        by_status: Literal["done", "refused"] = "done" if response.is_success else "refused"
        outcome: Literal["done", "refused"]
        found = MISSING if rs.outcome == "http_status" else dig(body, rs.outcome)
        raw_code = dig(body, rs.code)
        if rs.outcomes and found is not MISSING and found is not None and str(found) in rs.outcomes:
            outcome = "done" if rs.outcomes[str(found)] == "done" else "refused"
        elif rs.outcomes and raw_code is not MISSING and raw_code is not None and str(raw_code) in rs.outcomes:
            outcome = "done" if rs.outcomes[str(raw_code)] == "done" else "refused"
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
            message=text(rs.message),
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

    def __getattr__(self, name: str) -> Callable[..., StepResult]:
        """A broker step of the adapter's step table (``scenarios/steps.py``), called as its typed Broker method is
        (``order(ref, customer, sku, quantity, approval_code=None)``): one templated call."""
        steps = self.__dict__.get("adapter") and self.adapter.steps
        kind = steps.get(name) if steps else None
        if kind is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def step(*args: Any, **kwargs: Any) -> StepResult:
            values = kind.bind(args, kwargs)
            if kind.adapter_values is not None:
                zone = self.tenant_setup.timezone if self.tenant_setup else "UTC"
                values.update(kind.adapter_values(values, zone))
            return self._step(name, **values)

        step.__name__ = name
        return step

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
                if name in spec.fields and spec.fields[name] is None:  # mapped to null: not on this broker's invoices
                    return None
                path_ = spec.fields.get(name)
                value = MISSING if path_ is None else dig(line, path_)
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
        if "id" in placeholders(spec.url) | placeholders(list(spec.command or ())) and ref not in self.ids:
            return None  # the broker never gave an id for this ref: it holds nothing for it
        spec, response = self._call("activation_code", {"ref": ref})
        if response.status_code in spec.missing_status:
            return None
        self._check("activation_code", response)
        body = self._json("activation_code", response)
        found = dig(body, spec.value)
        return None if found is MISSING or found is None else str(found)
