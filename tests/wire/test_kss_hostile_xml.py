"""Hostile and bad input on the KSS SOAP endpoint, over a real socket (SIM-ERR-1).

Every case gets a SOAP 1.1 Fault or a TransactionError as docs/kss-wire.md says, as text/xml, never an HTML
page or a stack trace, and the partner's state is what it was: the same audit trail, the same subscription,
and the request's TransactionId not used up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.wire.conftest import (
    ENDPOINT,
    KSS,
    ROOT,
    SOAP_ACTION,
    SOAP_ENV,
    KssPartner,
    read_answer,
    read_fault,
)

pytestmark = pytest.mark.wire

TXN = "hostile-1"
SAMPLES = ROOT / "tests" / "contract" / "kss_samples"
GOOD = (
    '<Activate UnitId="1" SubscriberId="s-new" StartTime="2026-04-15T09:00:00" EndTime="indefinite" ProductId="KIS"/>'
)
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


@pytest.fixture
def victim(kss_partner: Any) -> Iterator[KssPartner]:
    """A partner with one subscription; after the test, its state must be unchanged and TXN still unused."""
    partner = kss_partner(now="2026-04-15T09:00:00Z")
    seeded = partner.send(GOOD.replace("s-new", "s-1").replace('UnitId="1"', 'UnitId="7" LicenseCount="3"'))
    assert seeded[7].ok
    audit, info = partner.audit_total(), partner.info("s-1")
    yield partner
    assert partner.audit_total() == audit, "a refused request changed the audit trail"
    assert partner.info("s-1") == info
    assert partner.info("s-new") == 5
    after = partner.send(GOOD, txn=TXN)
    assert after.transaction_error is None and after[1].ok, "the refused request used up its TransactionId"


def billion_laughs(where: str) -> str:
    entities = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f"<!DOCTYPE soapenv:Envelope [{entities}]>"
    if where == "text":
        return doctype + ENVELOPE.format(txn="&lol9;", items=GOOD)
    return doctype + ENVELOPE.format(txn=TXN, items=GOOD.replace('SubscriberId="s-new"', 'SubscriberId="&lol9;"'))


ENVELOPE = (
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Header><AccessInfo xmlns="{KSS}">'
    "<UserName>@USER@</UserName><Password>@PASS@</Password></AccessInfo></soapenv:Header><soapenv:Body>"
    f'<SubscriptionRequestContainer xmlns="{KSS}"><Timestamp>2026-04-15T09:00:00</Timestamp>'
    "<TransactionId>{txn}</TransactionId><SubscriptionRequest>{items}</SubscriptionRequest>"
    "</SubscriptionRequestContainer></soapenv:Body></soapenv:Envelope>"
)


def valid() -> str:
    return ENVELOPE.format(txn=TXN, items=GOOD)


def nested(depth: int) -> str:
    return valid().replace(GOOD, GOOD + "<x>" * depth + "</x>" * depth)


def huge() -> str:
    filler = '<GetInfo UnitId="{}" SubscriberId="s-1"/>'
    items = GOOD + "".join(filler.format(u) for u in range(2, 30_000))
    return ENVELOPE.format(txn=TXN, items=items)


# (name, body, request options) -> (HTTP status, fault code)
FAULTS: dict[str, tuple[Callable[[], str | bytes], dict[str, Any], int, str, str]] = {
    "not-xml": (lambda: "hello, world", {}, 500, "Client", "not well-formed XML"),
    "empty": (lambda: "", {}, 500, "Client", "has no body"),
    "truncated": (lambda: valid()[: len(valid()) // 2], {}, 500, "Client", "not well-formed XML"),
    "json": (
        lambda: '{"TransactionId": "hostile-1"}',
        {"content_type": "application/json"},
        500,
        "Client",
        "not application/json",
    ),
    "billion-laughs": (lambda: billion_laughs("text"), {}, 500, "Client", "DOCTYPE and entity declarations"),
    "billion-laughs-in-attribute": (lambda: billion_laughs("attribute"), {}, 500, "Client", "DOCTYPE"),
    "billion-laughs-utf16": (
        lambda: ('<?xml version="1.0" encoding="UTF-16"?>' + billion_laughs("text")).encode("utf-16"),
        {},
        500,
        "Client",
        "DOCTYPE",
    ),
    "billion-laughs-utf16-no-bom": (
        lambda: ('<?xml version="1.0" encoding="UTF-16LE"?>' + billion_laughs("text")).encode("utf-16-le"),
        {},
        500,
        "Client",
        "DOCTYPE",
    ),
    "external-entity": (
        lambda: (
            '<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + ENVELOPE.format(txn="&xxe;", items=GOOD)
        ),
        {},
        500,
        "Client",
        "DOCTYPE",
    ),
    "external-dtd": (
        lambda: '<!DOCTYPE soapenv:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">' + valid(),
        {},
        500,
        "Client",
        "DOCTYPE",
    ),
    "parameter-entity": (
        lambda: '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>' + valid(),
        {},
        500,
        "Client",
        "DOCTYPE",
    ),
    "undeclared-entity": (lambda: ENVELOPE.format(txn="&xxe;", items=GOOD), {}, 500, "Client", "not well-formed"),
    "bad-utf8": (
        lambda: valid().encode().replace(b"hostile-1", b"hostile-\xff\xfe"),
        {},
        500,
        "Client",
        "not well-formed",
    ),
    "unknown-encoding": (lambda: '<?xml version="1.0" encoding="x-no-such"?>' + valid(), {}, 500, "Client", "XML"),
    "huge-body": (huge, {}, 500, "Client", "larger than 1000000 bytes"),
    "huge-body-chunked": (huge, {"chunked": True}, 500, "Client", "larger than 1000000 bytes"),
    "deep-nesting": (lambda: nested(40), {}, 500, "Client", "nests elements more than 32 deep"),
    "very-deep-nesting": (lambda: nested(50_000), {}, 500, "Client", "nests elements more than 32 deep"),
    "not-an-envelope": (
        lambda: valid()[valid().index("<SubscriptionRequestContainer") : valid().index("</soapenv:Body>")],
        {},
        500,
        "Client",
        "not a SOAP envelope",
    ),
    "soap-1.2-envelope": (lambda: valid().replace(SOAP_ENV, SOAP12), {}, 500, "VersionMismatch", SOAP_ENV),
    "no-body": (
        lambda: valid()[: valid().index("<soapenv:Body>")] + "</soapenv:Envelope>",
        {},
        500,
        "Client",
        "has no Body",
    ),
    "empty-body": (
        lambda: valid()[: valid().index("<soapenv:Body>")] + "<soapenv:Body/></soapenv:Envelope>",
        {},
        500,
        "Client",
        "exactly one element",
    ),
    "two-body-elements": (
        lambda: valid().replace("</soapenv:Body>", f'<Extra xmlns="{KSS}"/></soapenv:Body>'),
        {},
        500,
        "Client",
        "it holds 2",
    ),
    "container-in-another-namespace": (
        lambda: valid().replace(
            f'<SubscriptionRequestContainer xmlns="{KSS}"',
            '<SubscriptionRequestContainer xmlns="http://schemas.kaspersky.com/services/subscription/3.0/"',
        ),
        {},
        500,
        "Client",
        "no operation takes {http://schemas.kaspersky.com/services/subscription/3.0/}",
    ),
    "unknown-operation": (
        lambda: valid().replace("SubscriptionRequestContainer", "GetSubscriptions"),
        {},
        500,
        "Client",
        "no operation takes",
    ),
    "wrong-soap-action": (
        valid,
        {"soap_action": '"http://schemas.kaspersky.com/services/subscription/delete"'},
        500,
        "Client",
        "unknown SOAPAction",
    ),
    "must-understand": (
        lambda: valid().replace(
            "</soapenv:Header>",
            '<wsse:Security xmlns:wsse="urn:x-security" soapenv:mustUnderstand="1"/></soapenv:Header>',
        ),
        {},
        500,
        "MustUnderstand",
        "{urn:x-security}Security",
    ),
}


@pytest.mark.parametrize("case", FAULTS)
def test_SIM_ERR_1_hostile_or_broken_requests_get_a_soap_fault(victim: KssPartner, case: str) -> None:
    make, options, status, code, says = FAULTS[case]
    options = dict(options)
    body = make()
    if isinstance(body, str):
        body = body.replace("@USER@", victim.username).replace("@PASS@", victim.password).encode()
    if options.pop("chunked", False):
        options["content"] = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        response = victim.http.post(
            victim.url, headers={"Content-Type": "text/xml", "SOAPAction": f'"{SOAP_ACTION}"'}, **options
        )
        assert "content-length" not in response.request.headers
    else:
        response = victim.post(body, **options)
    fault = read_fault(response)
    assert (fault.status, fault.code) == (status, code), fault.message
    assert says in fault.message, fault.message


REFUSED_709: dict[str, tuple[Callable[[str], str], str]] = {
    "unknown-item": (
        lambda s: s.replace(GOOD, GOOD + '<Suspend UnitId="2" SubscriberId="s-1"/>'),
        "Element '{http://schemas.kaspersky.com/services/subscription/2.0/}Suspend': This element is not expected",
    ),
    "missing-unit-id": (lambda s: s.replace('UnitId="1" ', ""), "The attribute 'UnitId' is required but missing"),
    "bad-info-section": (
        lambda s: s.replace(
            GOOD, GOOD + '<GetInfo UnitId="2" SubscriberId="s-1" InfoSection="Subscription,SubscriptionUsage"/>'
        ),
        "attribute 'InfoSection'",
    ),
    "item-in-no-namespace": (lambda s: s.replace("<Activate ", '<Activate xmlns="" '), "Element 'Activate'"),
    "xinclude": (
        lambda s: s.replace(
            GOOD,
            GOOD + '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>',
        ),
        "Element '{http://www.w3.org/2001/XInclude}include': This element is not expected",
    ),
    "end-time-word": (lambda s: s.replace('EndTime="indefinite"', 'EndTime="forever"'), "attribute 'EndTime'"),
    "no-items": (lambda s: s.replace(GOOD, ""), "Missing child element(s)"),
    "no-timestamp": (
        lambda s: s.replace("<Timestamp>2026-04-15T09:00:00</Timestamp>", ""),
        "Element '{http://schemas.kaspersky.com/services/subscription/2.0/}TransactionId': This element is not expected",
    ),
    "text-in-an-item": (lambda s: s.replace(GOOD, GOOD[:-2] + ">text</Activate>"), "Character content"),
    "license-count-too-large": (
        lambda s: s.replace('ProductId="KIS"', 'ProductId="KIS" LicenseCount="99999999999999999999"'),
        "LicenseCount: 99999999999999999999 is larger than 2147483647 (a ksim limit)",
    ),
    "year-10000": (
        lambda s: s.replace('StartTime="2026-04-15T09:00:00"', 'StartTime="10000-01-01T00:00:00"'),
        "StartTime: '10000-01-01T00:00:00': ksim reads years 0001 to 9999 only",
    ),
    "year-1-east-of-utc": (
        lambda s: s.replace('StartTime="2026-04-15T09:00:00"', 'StartTime="0001-01-01T00:00:00+01:00"'),
        "outside the dates ksim can read",
    ),
    "unit-id-of-5000-digits": (lambda s: s.replace('UnitId="1"', f'UnitId="{"9" * 5000}"'), "UnitId: too many digits"),
    "subscriber-id-too-long": (
        lambda s: s.replace('SubscriberId="s-new"', f'SubscriberId="{"x" * 201}"'),
        "SubscriberId: longer than 200 characters (a ksim limit)",
    ),
}


@pytest.mark.parametrize("case", REFUSED_709)
def test_SIM_ERR_1_a_container_off_the_schema_answers_709(victim: KssPartner, case: str) -> None:
    change, says = REFUSED_709[case]
    body = change(valid()).replace("@USER@", victim.username).replace("@PASS@", victim.password)
    answer = read_answer(victim.post(body), victim.schema)
    code, message = answer.transaction_error
    assert code == 709, message
    assert says in message, message
    assert (answer.transaction_id, answer.timestamp) == (TXN, "2026-04-15T09:00:00Z")


def test_SIM_ERR_1_transaction_id_too_long_answers_709(victim: KssPartner) -> None:
    long_txn = "t" * 256
    answer = victim.send(GOOD, txn=long_txn)
    assert answer.transaction_error == (709, "TransactionId: longer than 255 characters (a ksim limit)")
    assert answer.transaction_id == long_txn


@pytest.mark.parametrize(
    ("name", "txn"),
    [
        ("bad_unknown_item.xml", "bad-unknown-item"),
        ("bad_missing_unitid.xml", "bad-missing-unitid"),
        ("bad_infosection.xml", "bad-infosection"),
    ],
)
def test_SIM_ERR_1_the_contracts_bad_samples_answer_709(victim: KssPartner, name: str, txn: str) -> None:
    body = (SAMPLES / name).read_text(encoding="utf-8")
    body = body.replace("acme_isp", victim.username).replace("s3cret", victim.password)
    answer = read_answer(victim.post(body), victim.schema)
    assert answer.transaction_error[0] == 709 and answer.transaction_id == txn
    assert victim.send('<GetInfo UnitId="1" SubscriberId="s-1"/>', txn=txn)[1].ok  # not used up


@pytest.mark.parametrize(
    ("method", "query", "status", "says"),
    [
        ("PUT", "", 405, "PUT is not allowed"),
        ("DELETE", "", 405, "DELETE is not allowed"),
        ("PATCH", "?wsdl", 405, "PATCH is not allowed"),
        ("GET", "", 400, "GET ?wsdl"),
        ("GET", "?xsd=../../etc/passwd", 400, "GET ?wsdl"),
    ],
)
def test_SIM_ERR_1_other_methods_get_a_fault(
    victim: KssPartner, method: str, query: str, status: int, says: str
) -> None:
    response = victim.http.request(
        method, victim.url + query, content=valid().encode(), headers={"Content-Type": "text/xml"}
    )
    fault = read_fault(response)
    assert (fault.status, fault.code) == (status, "Client") and says in fault.message
    if status == 405:
        assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_SIM_ERR_1_an_unexpected_error_is_a_server_fault_and_rolls_back(
    victim: KssPartner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The rules applied a unit, then something broke: the whole request is undone and logged."""
    import ksimkit.simulators.kss.soap as soap

    real = soap.container.process

    def broken(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(soap.container, "process", broken)
    with caplog.at_level(logging.ERROR, logger="ksim.kss.soap"):
        response = victim.post(
            ENVELOPE.format(txn=TXN, items=GOOD).replace("@USER@", victim.username).replace("@PASS@", victim.password)
        )
    fault = read_fault(response)
    assert (fault.status, fault.code) == (500, "Server")
    assert fault.message == "the simulator failed while answering; nothing was changed; see its log"
    assert "disk on fire" not in response.text
    assert "KSS SOAP request failed" in caplog.text and "disk on fire" in caplog.text
    monkeypatch.undo()


def test_SIM_ERR_1_a_bare_post_without_soap_action_or_content_type_is_still_served(victim: KssPartner) -> None:
    """Lenient where real clients differ: no SOAPAction, an empty one, no Content-Type, application/xml."""
    for options in (
        {"soap_action": None},
        {"soap_action": '""'},
        {"content_type": None},
        {"content_type": "application/soap+xml; charset=utf-8"},
    ):
        body = ENVELOPE.format(txn=victim.txn(), items='<GetInfo UnitId="1" SubscriberId="s-1"/>')
        body = body.replace("@USER@", victim.username).replace("@PASS@", victim.password)
        answer = read_answer(victim.post(body, **options), victim.schema)
        assert answer[1].ok, options


def test_SIM_ERR_1_the_wsdl_endpoint_is_not_an_open_door(victim: KssPartner) -> None:
    """No other path under /kss/soap answers SOAP, and none answers HTML."""
    response = victim.http.get(victim.server.url + "/kss/soap/other?wsdl")
    assert response.status_code == 404 and "<html" not in response.text.lower()
    response = victim.http.post(victim.server.url + ENDPOINT + "/", content=b"<x/>")
    assert response.status_code == 404 and "<html" not in response.text.lower()
    response = victim.http.options(victim.url)
    assert (response.status_code, response.headers["allow"], response.content) == (200, "GET, HEAD, OPTIONS, POST", b"")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_SIM_ERR_1_the_size_limit_is_exact(victim: KssPartner, chunked: bool) -> None:
    limit = 1_000_000  # the setting max_body_bytes of the test server (the default)
    body = ENVELOPE.format(txn=victim.txn(), items='<GetInfo UnitId="1" SubscriberId="s-1"/>')
    body = body.replace("@USER@", victim.username).replace("@PASS@", victim.password).encode()
    for size, ok in ((limit, True), (limit + 1, False)):
        padded = body + b" " * (size - len(body))  # whitespace after the root element is allowed
        headers = {"Content-Type": "text/xml", "SOAPAction": f'"{SOAP_ACTION}"'}
        content: Any = iter([padded[:500_000], padded[500_000:]]) if chunked else padded
        response = victim.http.post(victim.url, headers=headers, content=content)
        if ok:
            assert read_answer(response, victim.schema)[1].ok
        else:
            assert read_fault(response).message == f"the request body is larger than {limit} bytes"
