"""A partner made on the control plane: its credentials, clock, settings, test data, and clients of the simulated
services."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from ksimkit.simulators._client_harness import PartnerHarness
from ksimkit.simulators._client_wire import (
    KORM_PATH,
    KSS_NS,
    KSS_PATH,
    KSS_PORT,
    KSS_REST_PATH,
    KSS_SERVICE,
    Clock,
    ControlPlane,
    date_text,
    default_tls,
    timestamp,
)

if TYPE_CHECKING:  # zeep and lxml are imported only when a KSS client is asked for
    import zeep
    from lxml import etree


@dataclass(frozen=True)
class PartnerHandle(PartnerHarness):
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
    admin: ControlPlane = field(repr=False, compare=False)
    strict_contract: bool | None = None  # None: the server's setting strict_contract

    @classmethod
    def from_json(cls, admin: ControlPlane, body: dict[str, Any]) -> PartnerHandle:
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
        return Clock.from_json(self._call("PUT", "/clock", json={"now": timestamp(now)}))

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
            body = {"to": timestamp(to) if isinstance(to, dt.datetime) else date_text(to)}
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
        return Clock.from_json(self._call("POST", "/reset", json={"now": timestamp(now)}))

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
        body: dict[str, Any] = {"percent": str(percent), "expires_on": date_text(expires_on)}
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
        body = {
            "customer_id": customer_id,
            "sku": sku,
            "quantity": quantity,
            "activation_date": date_text(activation_date),
        }
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
            "expires_on": date_text(expires_on),
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
        body = {} if at is None else {"at": timestamp(at)}
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
