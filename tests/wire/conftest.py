"""KSS SOAP fixtures: a partner's SOAP client over a real socket (raw XML with httpx, or zeep), and answer reading.

Every answer these helpers read is checked against contracts/kss-upi.xsd with a schema compiled here, not by
the code under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
KSS = "http://schemas.kaspersky.com/services/subscription/2.0/"
EXT = "http://ksim.dev/kss/3.0/ext"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION = "http://schemas.kaspersky.com/services/subscription/subscriptionRequest"
ENDPOINT = "/kss/soap/upi"
BINDING = f"{{{KSS}}}KasperskySubscriptionServiceBinding"
SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_txn = itertools.count(1)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@pytest.fixture(scope="session")
def kss_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(ROOT / "contracts" / "kss-upi.xsd"), SAFE))


# ============================================================================== reading answers


@dataclass
class Unit:
    kind: str  # element local name: Activate, ChangeLicenseCountResult, RenewError, ...
    ok: bool  # in SubscriptionResponse (True) or SubscriptionError (False)
    el: etree._Element

    def __getitem__(self, name: str) -> str | None:
        return self.el.get(name)

    @property
    def code(self) -> int:
        return int(self.el.get("ErrorCode"))

    def sub(self, name: str) -> etree._Element:
        found = self.el.find(q(KSS, name))
        assert found is not None, f"{self.kind} has no {name}: {etree.tostring(self.el).decode()}"
        return found


@dataclass
class Answer:
    root: etree._Element  # the SubscriptionResponseContainer
    units: dict[int, Unit] = field(default_factory=dict)
    order: list[tuple[str, int]] = field(default_factory=list)  # ("ok"|"error", UnitId) in document order

    @property
    def transaction_error(self) -> tuple[int, str] | None:
        error = self.root.find(q(KSS, "TransactionError"))
        return None if error is None else (int(error.get("ErrorCode")), error.get("ErrorMessage"))

    @property
    def transaction_id(self) -> str:
        return self.root.findtext(q(KSS, "TransactionId"))

    @property
    def timestamp(self) -> str:
        return self.root.findtext(q(KSS, "Timestamp"))

    def __getitem__(self, unit_id: int) -> Unit:
        return self.units[unit_id]


def read_answer(response: httpx.Response, schema: etree.XMLSchema) -> Answer:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    env = etree.fromstring(response.content, SAFE)
    assert env.tag == q(SOAP_ENV, "Envelope")
    body = env.find(q(SOAP_ENV, "Body"))
    (container,) = list(body)
    assert container.tag == q(KSS, "SubscriptionResponseContainer")
    if not schema.validate(container):
        pytest.fail(f"the answer does not conform to kss-upi.xsd: {schema.error_log}\n{response.text}")
    answer = Answer(container)
    for part, ok in (("SubscriptionResponse", True), ("SubscriptionError", False)):
        holder = container.find(q(KSS, part))
        for el in [] if holder is None else holder:
            unit_id = int(el.get("UnitId"))
            assert unit_id not in answer.units, f"unit {unit_id} answered twice"
            answer.units[unit_id] = Unit(etree.QName(el).localname, ok, el)
            answer.order.append(("ok" if ok else "error", unit_id))
    return answer


@dataclass
class FaultAnswer:
    status: int
    code: str
    message: str


def read_fault(response: httpx.Response) -> FaultAnswer:
    """A SOAP 1.1 Fault as XML, never HTML or a stack trace."""
    assert response.headers["content-type"] == "text/xml; charset=utf-8", response.text
    text = response.text
    assert "<html" not in text.lower() and "traceback" not in text.lower(), text
    env = etree.fromstring(response.content, SAFE)
    assert env.tag == q(SOAP_ENV, "Envelope"), text
    fault = env.find(f"{q(SOAP_ENV, 'Body')}/{q(SOAP_ENV, 'Fault')}")
    assert fault is not None, text
    code = fault.findtext("faultcode")
    prefix, _, local = code.partition(":")
    assert fault.nsmap.get(prefix) == SOAP_ENV, code
    return FaultAnswer(response.status_code, local, fault.findtext("faultstring"))


# ============================================================================== a partner's client


def envelope(
    items: str, *, txn: str, username: str | None, password: str | None, timestamp: str = "2026-01-05T09:00:00"
) -> str:
    """A request written by hand the way real clients write it: default namespace, no prefixes."""
    header = (
        ""
        if username is None
        else (
            f'<soapenv:Header><AccessInfo xmlns="{KSS}"><UserName>{username}</UserName>'
            f"<Password>{password}</Password></AccessInfo></soapenv:Header>"
        )
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">{header}<soapenv:Body>'
        f'<SubscriptionRequestContainer xmlns="{KSS}" xmlns:ext="{EXT}">'
        f"<Timestamp>{timestamp}</Timestamp><TransactionId>{txn}</TransactionId>"
        f"<SubscriptionRequest>{items}</SubscriptionRequest></SubscriptionRequestContainer>"
        f"</soapenv:Body></soapenv:Envelope>"
    )


class KssPartner:
    """One partner of a running server, seen through raw SOAP and the control plane."""

    def __init__(self, server: Any, admin: httpx.Client, partner: dict[str, Any], schema: etree.XMLSchema) -> None:
        self.server, self.admin, self.partner, self.schema = server, admin, partner, schema
        self.id = partner["id"]
        self.username, self.password = partner["kss"]["username"], partner["kss"]["password"]
        self.url = server.url + ENDPOINT
        self.http = httpx.Client(timeout=30)

    def txn(self) -> str:
        return f"{self.id}-{next(_txn)}"

    def envelope(self, items: str, txn: str | None = None, **kw: Any) -> str:
        kw.setdefault("username", self.username)
        kw.setdefault("password", self.password)
        return envelope(items, txn=txn or self.txn(), **kw)

    def post(
        self,
        body: str | bytes,
        *,
        soap_action: str | None = f'"{SOAP_ACTION}"',
        content_type: str | None = "text/xml; charset=utf-8",
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if soap_action is not None:
            headers["SOAPAction"] = soap_action
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.post(self.url, content=body.encode() if isinstance(body, str) else body, headers=headers, **kw)

    def send(self, items: str, txn: str | None = None, **kw: Any) -> Answer:
        return read_answer(self.post(self.envelope(items, txn, **kw)), self.schema)

    def info(self, subscriber_id: str) -> dict[str, str] | int:
        """GetInfo's Subscription attributes, or the error code."""
        unit = self.send(f'<GetInfo UnitId="1" SubscriberId="{subscriber_id}" InfoSection="Subscription"/>')[1]
        if not unit.ok:
            return unit.code
        return dict(unit.sub("Subscription").attrib)

    def advance(self, **body: Any) -> dict[str, Any]:
        response = self.admin.post(f"/partners/{self.id}/clock/advance", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def device(self, subscriber_id: str, **body: Any) -> httpx.Response:
        """The control plane's simulated device activation of a subscription's code."""
        return self.admin.post(f"/partners/{self.id}/kss/subscriptions/{subscriber_id}/device-activations", json=body)

    def audit_total(self) -> int:
        response = self.admin.get(f"/partners/{self.id}/audit")
        assert response.status_code == 200, response.text
        return response.json()["total"]


@pytest.fixture
def kss_partner(server: Any, admin: httpx.Client, new_partner: Any, kss_schema: etree.XMLSchema) -> Iterator[Any]:
    """``kss_partner(programme="xsp", timezone=..., now=...)`` -> a KssPartner on the session's server."""
    made: list[KssPartner] = []

    def make(**body: Any) -> KssPartner:
        body.setdefault("programme", "xsp")
        client = KssPartner(server, admin, new_partner(**body), kss_schema)
        made.append(client)
        return client

    yield make
    for client in made:
        client.http.close()


# ============================================================================== zeep


@pytest.fixture(scope="session")
def zeep_from_contract(server: Any) -> Any:
    """A zeep client generated from contracts/kss-upi.wsdl, pointed at the server."""
    client = zeep.Client(str(ROOT / "contracts" / "kss-upi.wsdl"))
    return client, client.create_service(BINDING, server.url + ENDPOINT)


@pytest.fixture(scope="session")
def zeep_from_server(server: Any) -> Any:
    """A zeep client built from the WSDL the server publishes (its soap:address is used as is)."""
    client = zeep.Client(server.url + ENDPOINT + "?wsdl")
    return client, client.service


def zeep_call(
    client: zeep.Client,
    service: Any,
    partner: KssPartner,
    items: list[dict[str, Any]],
    txn: str | None = None,
    timestamp: dt.datetime | None = None,
) -> Any:
    """One SubscriptionRequest through zeep, items as zeep builds them (one-key dicts, in sending order)."""
    collection = client.get_type(q(KSS, "SubscriptionRequestItemCollection"))(_value_1=items)
    access = client.get_element(q(KSS, "AccessInfo"))(UserName=partner.username, Password=partner.password)
    return service.SubscriptionRequest(
        Timestamp=timestamp or dt.datetime(2026, 1, 5, 9, 0),
        TransactionId=txn or partner.txn(),
        SubscriptionRequest=collection,
        _soapheaders=[access],
    )


def zeep_units(result: Any) -> dict[int, tuple[str, bool, Any]]:
    """UnitId -> (kind, ok, item) of a zeep answer; zeep gives runs of one kind as lists (GetInfo excepted)."""
    units: dict[int, tuple[str, bool, Any]] = {}
    for holder, ok in ((result.SubscriptionResponse, True), (result.SubscriptionError, False)):
        for entry in [] if holder is None else holder._value_1:
            ((kind, value),) = entry.items()
            for item in value if isinstance(value, list) else [value]:
                assert item.UnitId not in units
                units[int(item.UnitId)] = (kind, ok, item)
    return units
