"""SIM-ERR-1: a property-based fuzzer for the KSS SOAP endpoint, on a real socket.

Hypothesis builds SubscriptionRequestContainer documents from a strategy over the item kinds of
contracts/kss-upi.xsd and their attributes (each checked against the XSD before it is sent), then mutates them:
wrong types, missing required attributes, unknown elements and attributes, huge values, random bytes, broken
encodings, truncation. Every document goes out with a valid AccessInfo. Whatever comes in, the answer is HTTP 200
with a SubscriptionResponseContainer that conforms to the XSD, or HTTP 500 with a SOAP 1.1 Fault; always
text/xml, never HTML; and after every refusal (a fault or a TransactionError) the partner's audit count and its
subscriptions (GET /kss/v1/subscriptions/...) are what they were.

Budget: ``KSIM_FUZZ_EXAMPLES`` examples per test (default 50, CI); the long run sets it higher.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.reliability.figures import record
from tests.wire.conftest import ENDPOINT, EXT, KSS, SAFE, SOAP_ACTION, SOAP_ENV, q

pytestmark = pytest.mark.wire

EXAMPLES = int(os.environ.get("KSIM_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="KSIM_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
ADMIN = {"Authorization": "Bearer test-admin"}
POOL = ["fz-started", "fz-paused", "fz-cancelled", "fz-new-1", "fz-new-2"]  # SubscriberIds the fuzzer aims at
SEEDED = POOL[:3]
PRODUCTS = ["KIS", "KTS", "KTSMD", "KESB-SELECT", "NOPE", ""]
_txn = itertools.count(1)

# ============================================================================== values by XSD type

# Characters XML 1.0 allows (no C0 controls but tab, newline, carriage return; no surrogates, no U+FFFE/FFFF).
XML_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff", min_codepoint=0x20
) | st.sampled_from("\t\n\r")
text = st.text(XML_CHARS, max_size=40)
sid = st.sampled_from(POOL) | st.text(XML_CHARS, min_size=0, max_size=30)
non_negative = st.integers(0, 10**6).map(str) | st.integers(0, 10**30).map(str)
positive = st.integers(1, 50).map(str) | st.integers(1, 10**20).map(str)


@st.composite
def date_time(draw: Any) -> str:
    """xs:dateTime: with Z, with an offset or zone-less; mostly near the partner's clock."""
    moment = draw(
        st.datetimes(min_value=dt.datetime(2008, 1, 1), max_value=dt.datetime(2030, 12, 31))
        | st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    )
    base = f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S")  # %Y does not pad years below 1000
    if draw(st.booleans()):
        base += "." + str(moment.microsecond).rjust(6, "0")
    zone = draw(st.sampled_from(["Z", "", "+03:00", "-05:30", "+14:00", "-12:00"]))
    return base + zone


end_time = date_time() | st.just("indefinite")

# kind -> (element name, {attribute: (required, strategy)})
IDENT = {"SubscriberId": (True, sid)}
KINDS: dict[str, tuple[str, dict[str, tuple[bool, Any]]]] = {
    "Activate": (
        "Activate",
        {
            **IDENT,
            "StartTime": (True, date_time()),
            "EndTime": (True, end_time),
            "LicenseCount": (False, positive),
            "ProductId": (True, st.sampled_from(PRODUCTS) | text),
            "ActivationType": (False, st.sampled_from(["Standard", "Secondary"])),
            "UserIgnore": (False, st.sampled_from(["true", "false", "1", "0"])),
            "ext:TrialDays": (False, non_negative),
            "ext:CustomerId": (False, text),
        },
    ),
    "Renew": ("Renew", {**IDENT, "EndTime": (False, end_time)}),
    "SoftCancel": ("SoftCancel", {**IDENT, "EndTime": (False, date_time())}),
    "HardCancel": ("HardCancel", {**IDENT, "EndTime": (False, date_time())}),
    "Pause": ("Pause", {**IDENT, "PauseTime": (False, date_time()), "ext:ResumeTime": (False, date_time())}),
    "Resume": ("Resume", IDENT),
    "GetInfo": (
        "GetInfo",
        {
            **IDENT,
            "InfoSection": (
                False,
                st.sampled_from(["Subscription", "SubscriptionUsage", "Subscription, SubscriptionUsage"]),
            ),
        },
    ),
    "GetDownloadLinks": (
        "GetDownloadLinks",
        {
            **IDENT,
            "Language": (True, st.sampled_from(["en", "pt", "de"]) | text),
            "Alphabet": (False, text),
            "Region": (False, text),
            "RebrandingCode": (False, text),
            "Platform": (True, st.sampled_from(["Windows", "macOS", "Android", "iOS"])),
        },
    ),
    "ChangeLicenseCount": ("ext:ChangeLicenseCount", {**IDENT, "LicenseCount": (True, positive)}),
    "ChangeProduct": ("ext:ChangeProduct", {**IDENT, "ProductId": (True, st.sampled_from(PRODUCTS) | text)}),
}


@st.composite
def item(draw: Any, unit: int) -> tuple[str, dict[str, str]]:
    """One item as (element name, attributes in order), valid by the XSD."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    name, attrs = KINDS[kind]
    values = {"UnitId": str(unit)}
    for attr, (required, strategy) in attrs.items():
        if required or draw(st.booleans()):
            values[attr] = draw(strategy)
    return name, values


@st.composite
def container(draw: Any) -> dict[str, Any]:
    """A SubscriptionRequestContainer as data, valid by the XSD: its items, Timestamp and TransactionId."""
    count = draw(st.integers(1, 6))  # the choice needs one item at least
    units = draw(st.lists(st.integers(0, 10**6), min_size=count, max_size=count, unique=True))
    if count and draw(st.integers(0, 9)) == 0:  # now and then a UnitId twice (still XSD-valid: 708)
        units[-1] = units[0]
    return {
        "items": [draw(item(u)) for u in units],
        "timestamp": draw(date_time()),
        "txn": f"fz-{os.getpid()}-{next(_txn)}-" + draw(st.text(XML_CHARS, max_size=8)),
    }


def render_item(name: str, attrs: dict[str, str]) -> str:
    return f"<{name}" + "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items()) + "/>"


def render(doc: dict[str, Any], user: str, password: str, *, items: str | None = None, extra: str = "") -> str:
    body = "".join(render_item(n, a) for n, a in doc["items"]) if items is None else items
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Header>'
        f'<AccessInfo xmlns="{KSS}"><UserName>{escape(user)}</UserName><Password>{escape(password)}</Password>'
        f'</AccessInfo></soapenv:Header><soapenv:Body><SubscriptionRequestContainer xmlns="{KSS}" xmlns:ext="{EXT}">'
        f"<Timestamp>{doc['timestamp']}</Timestamp><TransactionId>{escape(doc['txn'])}</TransactionId>{extra}"
        f"<SubscriptionRequest>{body}</SubscriptionRequest></SubscriptionRequestContainer></soapenv:Body>"
        f"</soapenv:Envelope>"
    )


# ============================================================================== mutations

WRONG = {  # attribute -> values of the wrong type
    "UnitId": ["abc", "-1", "1.5", "", " ", "0x10", "１"],
    "LicenseCount": ["0", "-3", "many", "1e3", "", "2147483648"],
    "StartTime": ["yesterday", "2026-13-01T00:00:00", "2026-02-30T10:00:00", "2026-04-15", "", "2026-04-15T25:00:00"],
    "EndTime": ["never", "Indefinite", "2026-04-15T09:00:00+25:00", ""],
    "PauseTime": ["soon", "0000-01-01T00:00:00"],
    "ext:ResumeTime": ["later", "10000-01-01T00:00:00"],
    "ext:TrialDays": ["-1", "ten", "3.0"],
    "Platform": ["Linux", "windows", ""],
    "InfoSection": ["All", "Subscription,SubscriptionUsage"],
    "ActivationType": ["Primary"],
    "UserIgnore": ["yes", "2"],
}


@st.composite
def mutated(draw: Any, user: str, password: str) -> bytes:
    doc = draw(container())
    if not doc["items"]:
        doc["items"] = [draw(item(1))]
    how = draw(
        st.sampled_from(
            [
                "drop-required",
                "wrong-type",
                "unknown-element",
                "unknown-attribute",
                "huge-value",
                "bad-container",
                "random-splice",
                "truncate",
                "latin1-as-utf8",
                "utf16-declared-utf8",
                "invalid-utf8",
                "undeclared-prefix",
                "text-in-items",
                "control-char",
            ]
        )
    )
    i = draw(st.integers(0, len(doc["items"]) - 1))
    name, attrs = doc["items"][i]
    extra = ""
    if how == "drop-required":
        kind = next(k for k, (n, _) in KINDS.items() if n == name)
        required = ["UnitId"] + [a for a, (r, _) in KINDS[kind][1].items() if r]
        attrs.pop(draw(st.sampled_from(required)), None)
    elif how == "wrong-type":
        attr = draw(st.sampled_from(sorted(WRONG)))
        attrs[attr] = draw(st.sampled_from(WRONG[attr]))
    elif how == "unknown-element":
        where = draw(st.sampled_from(["item", "container", "ext-item", "child"]))
        if where == "item":
            doc["items"].insert(i, ("Delete", {"UnitId": "99", "SubscriberId": "fz-started"}))
        elif where == "ext-item":
            doc["items"].insert(i, ("ext:Transfer", {"UnitId": "98", "SubscriberId": "fz-started"}))
        elif where == "container":
            extra = "<Priority>high</Priority>"
        else:
            doc["items"][i] = (name, attrs)
            xml = render_item(name, attrs)
            return render(doc, user, password, items=xml[:-2] + "><Note>x</Note></" + name + ">").encode()
    elif how == "unknown-attribute":
        attrs[draw(st.sampled_from(["Color", "ext:Color", "xml:lang"]))] = draw(text)
    elif how == "huge-value":
        attr = draw(
            st.sampled_from(
                ["SubscriberId", "UnitId", "LicenseCount", "ProductId", "ext:CustomerId", "ext:TrialDays", "txn"]
            )
        )
        size = draw(st.sampled_from([201, 256, 4301, 70_000, 1_100_000]))
        value = ("9" if attr in ("UnitId", "LicenseCount", "ext:TrialDays") else "x") * size
        if attr == "txn":
            doc["txn"] = value
        else:
            attrs[attr] = value
    elif how == "bad-container":
        part = draw(st.sampled_from(["Timestamp", "TransactionId", "SubscriptionRequest"]))
        xml = render(doc, user, password)
        if part == "SubscriptionRequest":
            start, end = xml.index("<SubscriptionRequest>"), xml.index("</SubscriptionRequest>") + 22
        else:
            start, end = xml.index(f"<{part}>"), xml.index(f"</{part}>") + len(part) + 3
        return (xml[:start] + xml[end:]).encode()
    elif how == "undeclared-prefix":
        doc["items"][i] = ("foo:" + name.split(":")[-1], attrs)
    elif how == "text-in-items":
        return render(doc, user, password, items="hello" + "".join(render_item(n, a) for n, a in doc["items"])).encode()
    doc["items"][i] = (name, attrs) if how != "undeclared-prefix" else doc["items"][i]
    raw = render(doc, user, password, extra=extra).encode()
    if how == "random-splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=16)) + raw[at:]
    elif how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "latin1-as-utf8":
        raw = raw.replace(b"fz-", "fz-\u00e9\u00df".encode("latin-1"), 1)
    elif how == "utf16-declared-utf8":
        raw = raw.decode().encode("utf-16")
    elif how == "invalid-utf8":
        raw = raw.replace(b"<SubscriptionRequest>", b"<SubscriptionRequest>\xff\xfe\xc3(", 1)
    elif how == "control-char":
        raw = raw.replace(b'SubscriberId="', b'SubscriberId="\x01', 1)
    return raw


# ============================================================================== the partner and the checks


class Victim:
    """One partner under fuzz: seeded subscribers, and its state as another observer would see it."""

    def __init__(self, server: Any, admin: httpx.Client, schema: etree.XMLSchema) -> None:
        created = admin.post("/partners", json={"programme": "xsp", "now": "2026-04-15T09:00:00Z"})
        assert created.status_code == 201, created.text
        data = created.json()
        self.id, self.admin, self.schema = data["id"], admin, schema
        self.user, self.password = data["kss"]["username"], data["kss"]["password"]
        self.url = server.url + ENDPOINT
        self.tried: dict[int, int] = {}  # answers by HTTP status, for the figures
        self.http = httpx.Client(timeout=60)
        self.rest = httpx.Client(
            base_url=server.url + "/kss/v1", timeout=30, headers={"Authorization": f"Bearer {data['token']}"}
        )
        seed = {
            "timestamp": "2026-04-15T09:00:00Z",
            "txn": f"seed-{self.id}",
            "items": [
                (
                    "Activate",
                    {
                        "UnitId": str(u),
                        "SubscriberId": s,
                        "StartTime": "2026-04-15T09:00:00Z",
                        "EndTime": "indefinite",
                        "ProductId": "KIS",
                    },
                )
                for u, s in enumerate(SEEDED, 1)
            ]
            + [
                ("Pause", {"UnitId": "4", "SubscriberId": "fz-paused"}),
                ("SoftCancel", {"UnitId": "5", "SubscriberId": "fz-cancelled"}),
            ],
        }
        status, container_el = self.check(self.post(render(seed, self.user, self.password).encode()))
        assert status == 200 and container_el.find(q(KSS, "SubscriptionError")) is None

    def post(self, body: bytes) -> httpx.Response:
        return self.http.post(
            self.url,
            content=body,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'},
        )

    def state(self) -> tuple[int, dict[str, Any]]:
        audit = self.admin.get(f"/partners/{self.id}/audit", params={"limit": 1})
        subs = {}
        for s in POOL:
            r = self.rest.get(f"/subscriptions/{s}")
            subs[s] = (r.status_code, {k: v for k, v in r.json().items() if k != "generated_at"})
        return audit.json()["total"], subs

    def check(self, response: httpx.Response) -> tuple[int, etree._Element]:
        """The answer is a conforming container (200) or a SOAP Fault (500): text/xml, never HTML."""
        text = response.content.decode("utf-8", "replace")
        self.tried[response.status_code] = self.tried.get(response.status_code, 0) + 1
        assert response.status_code in (200, 500), (response.status_code, text[:2000])
        assert response.headers.get("content-type") == "text/xml; charset=utf-8", text[:2000]
        assert "<html" not in text.lower() and "traceback" not in text.lower(), text[:2000]
        env = etree.fromstring(response.content, SAFE)
        assert env.tag == q(SOAP_ENV, "Envelope"), text[:2000]
        (payload,) = list(env.find(q(SOAP_ENV, "Body")))
        if response.status_code == 500:
            assert payload.tag == q(SOAP_ENV, "Fault"), text[:2000]
            code = payload.findtext("faultcode")
            prefix, _, local = code.partition(":")
            assert payload.nsmap.get(prefix) == SOAP_ENV and local in (
                "Client",
                "Server",
                "VersionMismatch",
                "MustUnderstand",
            ), code
            assert payload.findtext("faultstring"), text[:2000]
            assert local != "Server", f"the simulator failed on this input: {text[:2000]}"
        else:
            assert payload.tag == q(KSS, "SubscriptionResponseContainer"), text[:2000]
            assert self.schema.validate(payload), f"{self.schema.error_log}\n{text[:2000]}"
        return response.status_code, payload

    def send_and_judge(self, body: bytes) -> tuple[int, etree._Element]:
        before = self.state()
        status, payload = self.check(self.post(body))
        refused = status == 500 or payload.find(q(KSS, "TransactionError")) is not None
        if refused:
            assert self.state() == before, "a refused request changed the partner's state"
        return status, payload


@pytest.fixture(scope="module")
def victim(server: Any, kss_schema: etree.XMLSchema) -> Any:
    with httpx.Client(base_url=server.url + "/_sim", headers=ADMIN, timeout=30) as admin:
        v = Victim(server, admin, kss_schema)
        yield v
        record(
            "soap_fuzz",
            backend=server.app.extensions["ksim"].store.url.get_backend_name(),
            examples_per_test=EXAMPLES,
            inputs=sum(v.tried.values()),
            answered_200=v.tried.get(200, 0),
            faults_500=v.tried.get(500, 0),
            other=sum(n for status, n in v.tried.items() if status not in (200, 500)),
        )
        v.http.close()
        v.rest.close()


@pytest.fixture(scope="module")
def request_schema(kss_schema: etree.XMLSchema) -> etree.XMLSchema:
    return kss_schema  # the same schema holds the request container


def units_of(doc: dict[str, Any]) -> list[int]:
    return [int(a["UnitId"]) for _, a in doc["items"]]


@FUZZ
@given(doc=container())
def test_SIM_ERR_1_fuzz_valid_containers_are_answered_per_unit(
    victim: Victim, request_schema: Any, doc: dict[str, Any]
) -> None:
    body = render(doc, victim.user, victim.password)
    sent = etree.fromstring(body.encode(), SAFE).find(f"{q(SOAP_ENV, 'Body')}/{q(KSS, 'SubscriptionRequestContainer')}")
    assert request_schema.validate(sent), f"the strategy built an invalid request: {request_schema.error_log}"
    status, payload = victim.send_and_judge(body.encode())
    assert status == 200, "a request valid by the XSD got a fault"
    error = payload.find(q(KSS, "TransactionError"))
    units = units_of(doc)
    if error is None:
        answered = sorted(int(el.get("UnitId")) for holder in payload[2:] for el in holder)
        assert answered == sorted(units), "every unit is answered exactly once"
    else:
        code = int(error.get("ErrorCode"))
        assert code in (708, 709), (code, error.get("ErrorMessage"))
        assert code != 708 or len(set(units)) < len(units)


@FUZZ
@given(data=st.data())
def test_SIM_ERR_1_fuzz_mutated_containers_are_refused_cleanly(victim: Victim, data: Any) -> None:
    victim.send_and_judge(data.draw(mutated(victim.user, victim.password)))


@FUZZ
@given(
    body=st.binary(max_size=2048) | st.text(max_size=512).map(lambda s: s.encode("utf-8", "surrogatepass")),
    content_type=st.sampled_from(
        [
            "text/xml; charset=utf-8",
            "application/soap+xml",
            "text/xml; charset=latin-1",
            "text/xml; charset=nope",
            "text/xml; charset=utf-16",
        ]
    ),
)
def test_SIM_ERR_1_fuzz_random_bytes_get_a_fault(victim: Victim, body: bytes, content_type: str) -> None:
    before = victim.state()
    response = victim.http.post(
        victim.url, content=body, headers={"Content-Type": content_type, "SOAPAction": f'"{SOAP_ACTION}"'}
    )
    status, _ = victim.check(response)
    assert status == 500, "random bytes are never a request"
    assert victim.state() == before
