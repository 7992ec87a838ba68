"""SIM-ERR-1: a bounded property-based fuzzer of the kind that found the 500s of issue 13, on a real socket, on
SQLite and PostgreSQL (the ``server`` fixture): text with lone surrogates and NUL in every stored field and in
query parameters, JSON nested to any depth, headers of any size, on KORM REST, the control plane and KSS SOAP.

Whatever is sent, the answer is never a 500 on REST and never HTML: problem+json for a refusal, JSON for an
answer; SOAP answers XML (a response or a Client fault, never a Server fault). Budget: ``KSIM_FUZZ_EXAMPLES``
examples per test (default 30), derandomized unless the variable is set, so CI runs the same cases every time.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wire.conftest import ENDPOINT, KSS, SOAP_ACTION, SOAP_ENV

pytestmark = pytest.mark.wire

EXAMPLES = int(os.environ.get("KSIM_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="KSIM_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any code point, surrogates and control characters (NUL) included: what careless clients and fuzzers send.
ANY_TEXT = st.text(st.characters(codec=None, categories=None, exclude_categories=()), max_size=40)
NASTY = st.sampled_from(["\ud800", "\udfff", "\x00", "a\x00b", "\ud83d", "\ufffe", "\u202e", "'; DROP TABLE x;--"])
TEXT = st.one_of(ANY_TEXT, NASTY, st.builds(lambda a, b, c: a + b + c, ANY_TEXT, NASTY, ANY_TEXT))
# What HTTP can carry in a header: latin-1, no control characters, no space at either end (h11, like any client,
# refuses to send one there).
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
).map(lambda value: value.strip(" \t"))
DEPTH = st.one_of(st.just(0), st.integers(1, 80), st.integers(200, 20_000))
FIELDS = ("customer_id", "external_ref", "approval_code", "sku")


def nest(value: Any, depth: int) -> str:
    return "[" * depth + json.dumps(value) + "]" * depth


def rest_answer_is_clear(response: httpx.Response) -> None:
    text = response.text
    assert response.status_code < 500, text
    assert "<html" not in text.lower() and "traceback" not in text.lower(), text
    expected = "application/problem+json" if response.status_code >= 400 else "application/json"
    assert response.headers.get("content-type", "").startswith(expected), (response.status_code, text)
    if response.status_code >= 400:
        assert response.json()["code"]


@pytest.fixture
def korm_partner(server: Any, new_partner: Any) -> dict[str, Any]:
    return new_partner()


@FUZZ
@given(
    field=st.sampled_from(FIELDS),
    text=TEXT,
    depth=DEPTH,
    header_bytes=st.integers(0, 20_000),
    actor=HEADER_TEXT,
    key=st.one_of(st.none(), HEADER_TEXT),
)
def test_SIM_ERR_1_fuzz_korm_orders_never_get_a_500(
    server: Any,
    korm_partner: dict[str, Any],
    field: str,
    text: str,
    depth: int,
    header_bytes: int,
    actor: str,
    key: str | None,
) -> None:
    order = {"customer_id": "fz", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
    raw = json.dumps({**order, field: "@@"}).replace('"@@"', nest(text, depth))
    headers: dict[str, Any] = {
        "Authorization": f"Bearer {korm_partner['token']}",
        "Content-Type": "application/json",
        "X-Ksim-Actor": actor.encode("latin-1"),
        "X-Padding": "p" * header_bytes,
    }
    if key is not None:
        headers["Idempotency-Key"] = key.encode("latin-1")
    response = httpx.post(server.url + "/korm/v1/subscriptions", content=raw.encode(), headers=headers, timeout=30)
    rest_answer_is_clear(response)


@FUZZ
@given(
    text=TEXT.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),  # a URL cannot carry them
    where=st.sampled_from(["query", "path"]),
)
def test_SIM_ERR_1_fuzz_korm_paths_and_queries_never_get_a_500(
    server: Any, korm_partner: dict[str, Any], text: str, where: str
) -> None:
    headers = {"Authorization": f"Bearer {korm_partner['token']}"}
    base = server.url + "/korm/v1"
    if where == "query":
        response = httpx.get(base + "/subscriptions", params={"customer_id": text, "status": text}, headers=headers)
    else:
        response = httpx.get(base + "/subscriptions/" + quote(text, safe=""), headers=headers)
    rest_answer_is_clear(response)


@FUZZ
@given(name=TEXT, depth=DEPTH, to=TEXT, days=st.one_of(st.integers(-10, 50_000), TEXT))
def test_SIM_ERR_1_fuzz_the_control_plane_never_gets_a_500(
    server: Any, name: str, depth: int, to: str, days: Any
) -> None:
    admin = {"Authorization": "Bearer test-admin", "Content-Type": "application/json"}
    created = httpx.post(
        server.url + "/_sim/partners",
        headers=admin,
        content=json.dumps({"name": "@@"}).replace('"@@"', nest(name, depth)).encode(),
    )
    rest_answer_is_clear(created)
    if created.status_code == 201:
        partner = created.json()["id"]
        for body in ({"to": to}, {"days": days}):
            rest_answer_is_clear(
                httpx.post(
                    f"{server.url}/_sim/partners/{partner}/clock/advance",
                    headers=admin,
                    content=json.dumps(body).encode(),
                )
            )
        assert httpx.delete(f"{server.url}/_sim/partners/{partner}", headers=admin).status_code == 204


@FUZZ
@given(
    text=TEXT,
    depth=st.one_of(st.just(0), st.integers(1, 40), st.integers(200, 5_000)),
    header_bytes=st.integers(0, 20_000),
)
def test_SIM_ERR_1_fuzz_kss_soap_never_gets_html_or_a_server_fault(
    server: Any, korm_partner: dict[str, Any], text: str, depth: int, header_bytes: int
) -> None:
    item = (
        f'<Activate UnitId="1" SubscriberId={quoteattr(text)} StartTime="2026-04-15T09:00:00" '
        f'EndTime="indefinite" ProductId="KIS" LicenseCount="1">' + "<x>" * depth + "</x>" * depth + "</Activate>"
    )
    envelope = (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Header><AccessInfo xmlns="{KSS}">'
        f"<UserName>{korm_partner['kss']['username']}</UserName><Password>{korm_partner['kss']['password']}"
        f'</Password></AccessInfo></soapenv:Header><soapenv:Body><SubscriptionRequestContainer xmlns="{KSS}">'
        f"<Timestamp>2026-04-15T09:00:00</Timestamp><TransactionId>fz</TransactionId><SubscriptionRequest>"
        f"{item}</SubscriptionRequest></SubscriptionRequestContainer></soapenv:Body></soapenv:Envelope>"
    )
    response = httpx.post(
        server.url + ENDPOINT,
        content=envelope.encode("utf-8", "surrogatepass"),
        timeout=30,
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{SOAP_ACTION}"',
            "X-Padding": "p" * header_bytes,
        },
    )
    assert response.headers["content-type"] == "text/xml; charset=utf-8", response.text
    assert "<html" not in response.text.lower()
    assert response.status_code in (200, 500)
    if response.status_code == 500:
        assert "faultcode" in response.text and ":Client<" in response.text, response.text
