"""A small typed client of ksim's control plane (``/_sim``), for tests and scripts.

```python
from ksimkit.simulators.client import KsimAdmin

with KsimAdmin("http://127.0.0.1:8080", "ksim-admin") as ksim:
    partner = ksim.create_partner(programme="msp", now="2026-04-15T09:00:00Z")
    with partner.korm() as korm:                      # httpx.Client on <base>/korm/v1 with the bearer token
        korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25})
    partner.advance(to="2026-05-01")                  # everything due on the way has happened on return
    kss = partner.kss_zeep_client()  # zeep client on <base>/kss/soap/upi, AccessInfo sent on every call
```

Every refusal of the control plane raises :class:`KsimError` with the problem+json fields. Transport
failures are httpx's own exceptions. The KORM and KSS clients it builds are plain httpx and zeep clients:
their answers, refusals included, are for the test to judge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ssl
import time
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:  # zeep and lxml are imported only when a KSS client is asked for
    import zeep
    from lxml import etree

__all__ = ["Clock", "KsimAdmin", "KsimError", "KsimVerificationError", "PartnerHandle"]

KSS_NS = "http://schemas.kaspersky.com/services/subscription/2.0/"
KSS_SERVICE = "KasperskySubscriptionService"
KSS_PORT = "KasperskySubscriptionServicePort"
KSS_PATH = "/kss/soap/upi"
KORM_PATH = "/korm/v1"
KSS_REST_PATH = "/kss/v1"
DEFAULT_TIMEOUT = 10.0


class KsimError(Exception):
    """A refusal of the control plane: the RFC 9457 problem it answered with.

    ``status``, ``code``, ``title``, ``detail``, ``type`` and (when a rule refused) ``rule`` and
    (``VALIDATION_ERROR``) ``errors`` are the problem's fields; ``problem`` is the whole body. An answer
    that is not problem+json (a proxy's HTML page, say) gives ``code`` ``"HTTP_<status>"``.
    """

    def __init__(self, status: int, problem: dict[str, Any], *, method: str = "", url: str = "") -> None:
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code") or f"HTTP_{status}")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or "")
        self.type: str = str(problem.get("type") or "about:blank")
        self.rule: str | None = problem.get("rule")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.method = method
        self.url = url
        rule = f" ({self.rule})" if self.rule else ""
        where = f" [{method} {url}]" if method else ""
        super().__init__(f"{status} {self.code}{rule}: {self.detail}{where}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> KsimError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"detail": response.text[:500]}
        kind = KsimVerificationError if body.get("code") == "VERIFICATION_FAILED" else cls
        return kind(response.status_code, body, method=response.request.method, url=str(response.request.url))


class KsimVerificationError(KsimError, AssertionError):
    """:meth:`PartnerHandle.verify` did not hold (409 ``VERIFICATION_FAILED``); an ``AssertionError`` too, so pytest
    reports it as a failed check. ``matched``, ``expected`` and ``seen`` (the partner's latest journal entries,
    one line each) say what the journal held."""

    @property
    def matched(self) -> int:
        return int(self.problem.get("matched", 0))

    @property
    def expected(self) -> dict[str, int]:
        return dict(self.problem.get("expected") or {})

    @property
    def seen(self) -> list[dict[str, Any]]:
        return list(self.problem.get("seen") or [])


@dataclass(frozen=True)
class Clock:
    """A partner's clock: ``now`` (aware, UTC), ``today`` (the date in the partner's zone), ``timezone``."""

    now: dt.datetime
    today: dt.date
    timezone: str
    mode: str = "frozen"  # frozen | running (follows wall time from an offset)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Clock:
        return cls(
            now=dt.datetime.fromisoformat(body["now"].replace("Z", "+00:00")),
            today=dt.date.fromisoformat(body["today"]),
            timezone=body["timezone"],
            mode=body.get("mode", "frozen"),
        )


def _timestamp(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; pass an aware datetime (or an RFC 3339 string)")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _date(value: dt.date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


class KsimAdmin:
    """The control plane of one ksim server: ``KsimAdmin(base_url, admin_token)``.

    ``base_url`` is the server's root (``http://127.0.0.1:8080``), not ``/_sim``. ``transport`` is passed to
    every httpx client this makes (e.g. ``httpx.WSGITransport(app=create_app(...))`` to skip the socket;
    the zeep client always needs a real server).
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str = "ksim-admin",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self._http = httpx.Client(
            base_url=self.base_url + "/_sim",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
            transport=transport,
            verify=default_tls(),
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One control-plane call (``path`` relative to ``/_sim``); the JSON answer (``None`` for 204), or
        :class:`KsimError`."""
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise KsimError.from_response(response)
        return None if response.status_code == 204 else response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KsimAdmin:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KsimAdmin({self.base_url!r})"

    # -- the server -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}``; no token needed."""
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    def wait_until_ready(self, timeout: float = 10.0, interval: float = 0.05) -> dict[str, Any]:
        """Poll ``/_sim/health`` until it answers 200; ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except (httpx.TransportError, KsimError) as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"ksim at {self.base_url} did not answer /_sim/health within {timeout} s: {exc}"
                    ) from exc
                time.sleep(interval)

    def problem(self, *, wait: float = 0.0, token_hint: str = "") -> str | None:
        """Why this simulator cannot be used (down, not ksim, the admin token refused), as one sentence, or ``None``.
        ``wait``: seconds to wait for a server still starting; ``token_hint`` names where the token comes from."""
        try:
            if wait > 0:
                self.wait_until_ready(timeout=wait)
            else:
                self.health()
        except TimeoutError as exc:
            cause = exc.__cause__ or exc
            return (
                f"the simulator at {self.base_url} cannot be reached ({type(cause).__name__}: {cause or 'no answer'})"
            )
        except httpx.TransportError as exc:
            return f"the simulator at {self.base_url} cannot be reached ({type(exc).__name__}: {exc or 'no answer'})"
        except (KsimError, ValueError) as exc:
            return f"{self.base_url} does not answer as a ksim simulator (GET /_sim/health: {exc})"
        try:
            self.request("GET", "/partners/ptn_000000000000")  # any answer but 401 shows the token works
        except KsimError as exc:
            if exc.status == 401:
                return f"the simulator at {self.base_url} refuses the admin token" + (
                    f" ({token_hint})" if token_hint else ""
                )
        except httpx.TransportError as exc:
            return f"the simulator at {self.base_url} cannot be reached ({type(exc).__name__}: {exc})"
        return None

    # -- partners ---------------------------------------------------------------------------------

    def create_partner(
        self,
        *,
        name: str | None = None,
        programme: str | None = None,
        msp_registered: bool | None = None,
        timezone: str | None = None,
        billing_period: str | None = None,
        now: dt.datetime | str | None = None,
        strict_contract: bool | None = None,
        partner_id: str | None = None,
        token: str | None = None,
        kss_username: str | None = None,
        kss_password: str | None = None,
    ) -> PartnerHandle:
        """A new partner with its own credentials, clock and data. Omitted fields take the server's defaults.

        ``partner_id``, ``token``, ``kss_username``, ``kss_password`` fix what is otherwise random (a pooled partner
        a broker's configuration holds; ``KsimError`` 409 ``CREDENTIALS_IN_USE`` when taken).

        ``programme``: ``xsp``, ``reseller`` (default) or ``msp``; ``timezone``: IANA name; ``billing_period``:
        ``calendar_month`` or ``30_days``; ``now``: where its clock starts (aware datetime or RFC 3339);
        ``strict_contract``: refuse its non-conforming requests (docs/harness.md; default the server's setting).
        """
        body: dict[str, Any] = {
            key: value
            for key, value in (
                ("name", name),
                ("programme", programme),
                ("msp_registered", msp_registered),
                ("timezone", timezone),
                ("billing_period", billing_period),
                ("strict_contract", strict_contract),
            )
            if value is not None
        }
        if now is not None:
            body["now"] = _timestamp(now)
        if partner_id is not None:
            body["id"] = partner_id
        if token is not None:
            body["token"] = token
        kss = {k: v for k, v in (("username", kss_username), ("password", kss_password)) if v is not None}
        if kss:
            body["kss"] = kss
        return PartnerHandle.from_json(self, self.request("POST", "/partners", json=body))

    def partners(self) -> list[dict[str, Any]]:
        """Every partner, in creation order (without credentials)."""
        items: list[dict[str, Any]] = self.request("GET", "/partners")["items"]
        return items

    def partner(self, partner_id: str) -> dict[str, Any]:
        """One partner (without credentials); ``KsimError`` 404 ``PARTNER_NOT_FOUND`` if unknown."""
        result: dict[str, Any] = self.request("GET", f"/partners/{partner_id}")
        return result

    def delete_partner(self, partner_id: str) -> None:
        """Delete a partner with all its data, journal and audit; ``KsimError`` 404 ``PARTNER_NOT_FOUND`` if unknown."""
        self.request("DELETE", f"/partners/{partner_id}")


@dataclass(frozen=True)
class PartnerHandle:
    """A partner made by :meth:`KsimAdmin.create_partner`: its credentials, and its control-plane calls."""

    id: str
    name: str
    programme: str
    token: str = field(repr=False)
    kss_username: str
    kss_password: str = field(repr=False)
    base_url: str
    timezone: str
    msp_registered: bool
    billing_period: str
    info: dict[str, Any] = field(repr=False, compare=False)
    admin: KsimAdmin = field(repr=False, compare=False)
    strict_contract: bool | None = None  # None: the server's setting strict_contract

    @classmethod
    def from_json(cls, admin: KsimAdmin, body: dict[str, Any]) -> PartnerHandle:
        return cls(
            id=body["id"],
            name=body["name"],
            programme=body["programme"],
            token=body["token"],
            kss_username=body["kss"]["username"],
            kss_password=body["kss"]["password"],
            base_url=admin.base_url,
            timezone=body["timezone"],
            msp_registered=body["msp_registered"],
            billing_period=body["billing_period"],
            info=body,
            admin=admin,
            strict_contract=body.get("strict_contract"),
        )

    @property
    def korm_url(self) -> str:
        return self.base_url + KORM_PATH

    @property
    def kss_soap_url(self) -> str:
        return self.base_url + KSS_PATH

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.admin.request(method, f"/partners/{self.id}{path}", **kwargs)

    def delete(self) -> None:
        """Delete this partner with all its data, journal and audit (other partners are untouched); its
        credentials are refused from now on."""
        self.admin.delete_partner(self.id)

    # -- clock ------------------------------------------------------------------------------------

    def clock(self) -> Clock:
        return Clock.from_json(self._call("GET", "/clock"))

    def set_clock(self, now: dt.datetime | str) -> Clock:
        """Move the clock to ``now`` (forward only: earlier is ``KsimError`` 409 ``CLOCK_BACKWARDS``)."""
        return Clock.from_json(self._call("PUT", "/clock", json={"now": _timestamp(now)}))

    def advance(
        self, days: int | None = None, hours: int | None = None, to: dt.date | dt.datetime | str | None = None
    ) -> Clock:
        """Advance by ``days`` or ``hours``, or ``to`` a moment; exactly one of them.

        ``to`` as a ``date`` (or ``"2026-06-01"``) means 00:00 of that day in the partner's zone; a
        datetime must be aware. Renewals, anniversaries and every other due event have happened on return.
        """
        given = [(k, v) for k, v in (("days", days), ("hours", hours), ("to", to)) if v is not None]
        if len(given) != 1:
            raise ValueError("advance() takes exactly one of days=, hours=, to=")
        body: dict[str, int | str]
        if days is not None:
            body = {"days": days}
        elif hours is not None:
            body = {"hours": hours}
        else:
            assert to is not None
            body = {"to": _timestamp(to) if isinstance(to, dt.datetime) else _date(to)}
        return Clock.from_json(self._call("POST", "/clock/advance", json=body))

    def set_clock_mode(self, mode: str, offset_seconds: float | None = None) -> Clock:
        """``running``: follow wall time from the partner's now, or at wall time + ``offset_seconds`` (0: wall time,
        for a broker that reads its own clock); ``frozen``: stop where it is (docs/control-plane.md)."""
        body: dict[str, Any] = {"mode": mode}
        if offset_seconds is not None:
            body["offset_seconds"] = offset_seconds
        return Clock.from_json(self._call("PUT", "/clock/mode", json=body))

    def reset(self, now: dt.datetime | str | None = None) -> Clock:
        """Delete the partner's data and put its clock back to its start (or to ``now``, the new start: a pooled
        partner reused); credentials stay."""
        if now is None:
            return Clock.from_json(self._call("POST", "/reset"))
        return Clock.from_json(self._call("POST", "/reset", json={"now": _timestamp(now)}))

    def terms(self) -> dict[str, Any]:
        """The partner's vendor terms: programme, billing period, time zone, KORM and KSS prices, MSP tiers."""
        result: dict[str, Any] = self._call("GET", "/terms")
        return result

    @property
    def time_url(self) -> str:
        """The partner's time endpoint (a broker's clock source; the partner's own token reads it)."""
        return f"{self.base_url}/_sim/partners/{self.id}/time"

    def rotate_credentials(self) -> PartnerHandle:
        """New bearer token and KSS password; the old ones are refused from now on, as expired vendor credentials
        are (SIM-AUTH-1). A new handle with the new credentials (this one keeps the old)."""
        body: dict[str, Any] = self._call("POST", "/credentials")
        return dataclasses.replace(
            self, token=body["token"], kss_password=body["kss"]["password"], info={**self.info, **body}
        )

    # -- audit ------------------------------------------------------------------------------------

    def audit(
        self,
        *,
        service: str | None = None,
        object_id: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """One page of the audit log, in the server's order: ``{"items": [...], "total": n}`` (all matches).

        ``service``: ``korm``, ``kss`` or ``admin``; ``object_id``: e.g. a subscription id; ``limit`` 1..1000 (100).
        """
        params = {
            k: v
            for k, v in (("service", service), ("object_id", object_id), ("limit", limit), ("offset", offset))
            if v is not None
        }
        page: dict[str, Any] = self._call("GET", "/audit", params=params)
        return page

    # -- KORM test data ---------------------------------------------------------------------------

    def create_approval_code(
        self, percent: Decimal | str | int | float, expires_on: dt.date | str, code: str | None = None
    ) -> dict[str, Any]:
        """A single-use KORM discount code (KORM-APPR-1); ``code`` is generated when omitted.

        A code the partner already has is ``KsimError`` 409 ``APPROVAL_CODE_EXISTS``.
        """
        body: dict[str, Any] = {"percent": str(percent), "expires_on": _date(expires_on)}
        if code is not None:
            body["code"] = code
        created: dict[str, Any] = self._call("POST", "/approval-codes", json=body)
        return created

    def approval_codes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", "/approval-codes")["items"]
        return items

    def seed_legacy_subscription(
        self, customer_id: str, sku: str, quantity: int, activation_date: dt.date | str
    ) -> dict[str, Any]:
        """A pre-2021 KORM subscription (KORM-LEG-1/2, to migrate: KORM-MIG-1); the KORM ``Subscription``."""
        body = {"customer_id": customer_id, "sku": sku, "quantity": quantity, "activation_date": _date(activation_date)}
        created: dict[str, Any] = self._call("POST", "/korm/legacy-subscriptions", json=body)
        return created

    # -- KSS test data ----------------------------------------------------------------------------

    def seed_kss_prepaid(
        self, customer_id: str, product_id: str, licence_count: int, expires_on: dt.date | str
    ) -> dict[str, Any]:
        """Prepaid KSS licences of a customer, active while the partner's today is before ``expires_on``.

        Meanwhile a KSS ``Activate``/``ChangeProduct`` to that product for that customer answers 703
        (KSS-PREPAID-1). An unknown product is ``KsimError`` 422 ``UNKNOWN_PRODUCT``.
        """
        body = {
            "customer_id": customer_id,
            "product_id": product_id,
            "licence_count": licence_count,
            "expires_on": _date(expires_on),
        }
        created: dict[str, Any] = self._call("POST", "/kss/prepaid", json=body)
        return created

    def kss_prepaid(self) -> list[dict[str, Any]]:
        """The partner's prepaid KSS licences, in creation order, each with ``active`` as of its today."""
        items: list[dict[str, Any]] = self._call("GET", "/kss/prepaid")["items"]
        return items

    def set_kss_code_pool(self, remaining: int | None) -> dict[str, Any]:
        """How many new KSS activation codes the partner may draw (0: ``Activate`` answers 8); ``None``: no limit."""
        pool: dict[str, Any] = self._call("PUT", "/kss/code-pool", json={"remaining": remaining})
        return pool

    def activate_kss_device(self, subscriber_id: str, at: dt.datetime | str | None = None) -> dict[str, Any]:
        """A device uses the subscription's activation code: the first one sets ``FirstActivationTime``."""
        body = {} if at is None else {"at": _timestamp(at)}
        found: dict[str, Any] = self._call(
            "POST", f"/kss/subscriptions/{quote(subscriber_id, safe='')}/device-activations", json=body
        )
        return found

    def set_kss_options(self, *, ext_answers: bool) -> dict[str, Any]:
        """``ext_answers``: extension attributes in every KSS answer, not only to requests that use ext."""
        found: dict[str, Any] = self._call("PUT", "/kss/options", json={"ext_answers": ext_answers})
        return found

    # -- settings ---------------------------------------------------------------------------------

    def update(
        self,
        *,
        programme: str | None = None,
        msp_registered: bool | None = None,
        timezone: str | None = None,
        billing_period: str | None = None,
        strict_contract: bool | None = None,
    ) -> PartnerHandle:
        """Change the partner's settings; a new handle with them (this one is not changed).

        ``msp_registered`` may change at any time; the others only while the partner has no data (else
        ``KsimError`` 409 ``PARTNER_IN_USE``): right after creation or a :meth:`reset`.
        """
        body = {
            k: v
            for k, v in (
                ("programme", programme),
                ("msp_registered", msp_registered),
                ("timezone", timezone),
                ("billing_period", billing_period),
                ("strict_contract", strict_contract),
            )
            if v is not None
        }
        if not body:
            raise ValueError(
                "update() needs at least one of programme=, msp_registered=, timezone=, billing_period=, "
                "strict_contract="
            )
        return self._patch(body)

    def _patch(self, body: dict[str, Any]) -> PartnerHandle:
        info: dict[str, Any] = self.admin.request("PATCH", f"/partners/{self.id}", json=body)
        return dataclasses.replace(
            self,
            name=info["name"],
            programme=info["programme"],
            msp_registered=info["msp_registered"],
            timezone=info["timezone"],
            billing_period=info["billing_period"],
            info={**self.info, **info},
            strict_contract=info.get("strict_contract"),
        )

    # -- test harness: faults, journal, strict contract mode (docs/harness.md) --------------------------

    def set_strict(self, strict: bool | None = True) -> PartnerHandle:
        """Strict contract mode: ``True`` refuses the partner's requests that break the contract (REST 422
        ``VALIDATION_ERROR``, SOAP ``TransactionError`` 709); ``False`` only records the verdict in the journal;
        ``None`` follows the server's setting ``strict_contract``. A new handle (this one is not changed)."""
        return self._patch({"strict_contract": strict})

    def inject_fault(
        self,
        kind: str,
        *,
        service: str | None = None,
        operation: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        when: str | None = None,
        delay_ms: int | None = None,
        delay_max_ms: int | None = None,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        fault_code: str | None = None,
        error_code: int | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule; the rule as stored (``id``, ``fired``, ``remaining``, ...).

        ``kind``: ``delay``, ``status``, ``soap_fault``, ``transaction_error``, ``unit_error``, ``malformed``,
        ``truncated`` or ``drop``. ``service`` (``korm``, ``kss``, ``kss-rest``) and ``operation`` (an operationId
        such as ``createSubscription``, or a KSS item kind such as ``Activate``) choose the requests; ``times``
        and ``probability`` (with ``seed``) how often it fires; ``when="after"`` commits the request before the
        bad answer (a lost answer), ``"before"`` (default) changes nothing. The other fields shape the answer.
        """
        given = {
            "kind": kind,
            "service": service,
            "operation": operation,
            "times": times,
            "probability": probability,
            "seed": seed,
            "when": when,
            "delay_ms": delay_ms,
            "delay_max_ms": delay_max_ms,
            "status": status,
            "code": code,
            "message": message,
            "retry_after": retry_after,
            "fault_code": fault_code,
            "error_code": error_code,
        }
        created: dict[str, Any] = self._call("POST", "/faults", json={k: v for k, v in given.items() if v is not None})
        return created

    def faults(self) -> list[dict[str, Any]]:
        """The partner's fault rules in creation order, spent ones included, with ``matched`` and ``fired``."""
        items: list[dict[str, Any]] = self._call("GET", "/faults")["items"]
        return items

    def fault(self, fault_id: str) -> dict[str, Any]:
        """One fault rule; ``KsimError`` 404 ``FAULT_NOT_FOUND`` if the partner has none with this id."""
        rule: dict[str, Any] = self._call("GET", f"/faults/{fault_id}")
        return rule

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def journal(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        conforms: bool | None = None,
        faulted: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """One page of the partner's request journal, oldest first: ``{"items": [...], "total": n}``.

        Each entry has the request and answer (bodies up to the server's ``journal_body_bytes``), ``status``,
        ``duration_ms``, ``operation`` / ``items`` (KSS item kinds), ``fault`` and ``verdict``
        (``{"conforms": bool, "violations": [{"in", "path", "message"}, ...]}``).
        """
        filters = _journal_filters(service, operation, method, path, status, conforms, faulted)
        filters.update({k: v for k, v in {"limit": limit, "offset": offset}.items() if v is not None})
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()}
        page: dict[str, Any] = self._call("GET", "/journal", params=params)
        return page

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def verify(
        self,
        count: int | None = None,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
        service: str | None = None,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        conforms: bool | None = None,
        faulted: bool | None = None,
    ) -> int:
        """Check the journal: exactly ``count`` matching entries, or ``at_least``/``at_most`` (default: at least
        one). The number that matched; :class:`KsimVerificationError` (an ``AssertionError``) listing what the
        journal holds when the expectation fails.

        ``partner.verify(0, conforms=False)``: no request broke the contract.
        """
        body = _journal_filters(service, operation, method, path, status, conforms, faulted)
        body.update(
            {k: v for k, v in {"count": count, "at_least": at_least, "at_most": at_most}.items() if v is not None}
        )
        result: dict[str, Any] = self._call("POST", "/journal/verify", json=body)
        return int(result["matched"])

    # -- clients of the simulated services ---------------------------------------------------------

    def korm(self, *, actor: str | None = None, **client_kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on ``<base>/korm/v1`` with the partner's bearer token; close it (or use ``with``).

        ``actor`` is sent as ``X-Ksim-Actor`` (who the audit log names); other keyword arguments go to httpx.
        """
        return self._rest_client(KORM_PATH, actor, client_kwargs)

    def kss_rest(self, *, actor: str | None = None, **client_kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on ``<base>/kss/v1``, the KSS partner portal (bills, reports, audit); as :meth:`korm`."""
        return self._rest_client(KSS_REST_PATH, actor, client_kwargs)

    def _rest_client(self, path: str, actor: str | None, client_kwargs: dict[str, Any]) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}", **dict(client_kwargs.pop("headers", None) or {})}
        if actor is not None:
            headers["X-Ksim-Actor"] = actor
        client_kwargs.setdefault("timeout", self.admin.timeout)
        if self.admin.transport is not None:
            client_kwargs.setdefault("transport", self.admin.transport)
        client_kwargs.setdefault("verify", default_tls())
        return httpx.Client(base_url=self.base_url + path, headers=headers, **client_kwargs)

    def kss_access_info(self) -> etree._Element:
        """The KSS ``AccessInfo`` SOAP header with this partner's credentials, as an lxml element.

        Pass it to any zeep client as ``_soapheaders=[partner.kss_access_info()]`` (not needed with
        :meth:`kss_zeep_client`, which sends it on every call).
        """
        from lxml import etree

        header = etree.Element(f"{{{KSS_NS}}}AccessInfo", nsmap={None: KSS_NS})
        etree.SubElement(header, f"{{{KSS_NS}}}UserName").text = self.kss_username
        etree.SubElement(header, f"{{{KSS_NS}}}Password").text = self.kss_password
        return header

    def kss_zeep_client(self, *, access_info: bool = True, timeout: float | None = None) -> zeep.Client:
        """A ``zeep.Client`` from the packaged ``kss-upi.wsdl``, bound to ``<base>/kss/soap/upi``.

        With ``access_info`` (the default) every call carries this partner's ``AccessInfo`` header: call
        ``client.service.SubscriptionRequest(Timestamp=..., TransactionId=..., SubscriptionRequest=...)``
        without ``_soapheaders`` (zeep would send a second header). ``access_info=False`` gives a client
        without it, for sending your own (``_soapheaders=[...]``).
        """
        import zeep

        from ksimkit import contracts

        client = zeep.Client(
            str(contracts.path("kss-upi.wsdl")),
            transport=zeep.Transport(
                timeout=timeout or self.admin.timeout, operation_timeout=timeout or self.admin.timeout
            ),
        )
        # Bind the WSDL's port to this server before `client.service` is first built from it.
        client.wsdl.services[KSS_SERVICE].ports[KSS_PORT].binding_options["address"] = self.kss_soap_url
        if access_info:  # a zeep value renders afresh on every call (an lxml element would move between envelopes)
            header = client.get_element(f"{{{KSS_NS}}}AccessInfo")(
                UserName=self.kss_username, Password=self.kss_password
            )
            client.set_default_soapheaders([header])
        return client


def _journal_filters(
    service: str | None,
    operation: str | None,
    method: str | None,
    path: str | None,
    status: int | None,
    conforms: bool | None,
    faulted: bool | None,
) -> dict[str, Any]:
    """The journal's filters that are set: one definition for listing and for verifying."""
    filters = {
        "service": service,
        "operation": operation,
        "method": method and method.upper(),
        "path": path,
        "status": status,
        "conforms": conforms,
        "faulted": faulted,
    }
    return {k: v for k, v in filters.items() if v is not None}


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's default TLS context (verification on), made once: each new one loads the CA bundle (tens of ms), and
    the plugin opens a client per test."""
    return httpx.create_ssl_context()
