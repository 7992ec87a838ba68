"""KSS over SOAP 1.1 document/literal at /kss/soap/upi: read the envelope, call the rules, render. No rule here.

- ``GET /kss/soap/upi?wsdl``: contracts/kss-upi.wsdl (both schemas inline), its soap:address set to the address
  this request reached, computed per request (never cached from the first one).
- ``POST /kss/soap/upi``: header ``kss:AccessInfo``, body ``kss:SubscriptionRequestContainer``; the answer is a
  ``kss:SubscriptionResponseContainer`` or, for a request that is not a usable SOAP call, a SOAP 1.1 Fault.

What gets what (docs/kss-wire.md, "Faults and refusals"):

  SOAP Fault, HTTP 500 (nothing read, nothing changed)
    soapenv:Client           empty or non-XML body, not well-formed, a DOCTYPE or entity declaration (entity
                             bombs, external entities and DTDs included), a body over ``max_body_bytes`` (chunked
                             too), nesting deeper than 32 elements, a Content-Type that is not XML, a SOAPAction
                             other than the operation's (absent or "" is accepted), root not an Envelope,
                             no Body, a Body without exactly one element, a body element other than
                             kss:SubscriptionRequestContainer (another namespace included)
    soapenv:VersionMismatch  an Envelope outside the SOAP 1.1 namespace (e.g. SOAP 1.2)
    soapenv:MustUnderstand   a header entry other than AccessInfo marked mustUnderstand="1"
    soapenv:Server           an unexpected error (logged); the transaction is rolled back
  SOAP Fault, HTTP 405 / 400: a method other than GET and POST / a GET without ?wsdl
  TransactionError (HTTP 200): 710 AccessInfo missing, incomplete or wrong; 709 the container does not conform
    to the schema or passes a ksim limit; 708 a repeated UnitId and 6 a TransactionId seen before (the rules).
  Per unit (HTTP 200): the rules' codes, and 602 for a Renew without EndTime (decided here: the model has no
    "missing" end time; ``None`` means indefinite).

Every authenticated call runs through the test harness (ksimkit.simulators.core.harness, docs/harness.md): its fault
rules (the KSS-shaped kinds, a SOAP fault, a TransactionError, per-unit errors, are answered here) and strict
contract mode (TransactionError 709 for a request the contract verdict finds wanting).

The envelope is read and written with lxml (ksimkit.simulators.kss.xml), not spyne: why, in
docs/decisions/0001-soap-front-in-lxml-not-spyne.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask import Blueprint, Request, Response, g, request
from sqlalchemy.engine import Connection
from werkzeug.exceptions import RequestEntityTooLarge

from ksimkit.simulators.core import harness
from ksimkit.simulators.core.clock import system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.faults import Fault
from ksimkit.simulators.core.partners import partner_by_kss_credentials
from ksimkit.simulators.core.web import call_context, close_connection, runtime
from ksimkit.simulators.kss import container, control, xml_answer, xml_verdict
from ksimkit.simulators.kss import xml as kxml
from ksimkit.simulators.kss.errors import CLIENT, SERVER, KssCode, Refusal, SoapFault
from ksimkit.simulators.kss.faults import SOAP_FAULT, TRANSACTION_ERROR, UNIT_ERROR
from ksimkit.simulators.kss.model import (
    ItemError,
    ItemResult,
    RequestContainer,
    ResponseContainer,
    Resume,
    TransactionError,
    kind,
)

log = logging.getLogger("ksim.kss.soap")
bp = Blueprint("kss_soap", __name__, url_prefix="/kss/soap")


@bp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    """A refusal of the request head (core/web.py: size limits, NUL) is a SOAP fault here, not problem+json."""
    return _fault(CLIENT, problem.detail, 500, dict(problem.headers))


XML_TYPE = "text/xml; charset=utf-8"
METHODS = ["GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"]
ALLOW = "GET, HEAD, OPTIONS, POST"


def _verdict(req: Request, ex: harness.Exchange) -> list[dict[str, str]]:
    raw = ex.body()
    read = g.get("ksim_kss_read")  # what the front end made of this very body: not parsed or validated twice
    if read is not None and read.raw is raw:
        return xml_verdict.request_violations(
            raw,
            req.headers.get("Content-Type"),
            req.headers.get("SOAPAction"),
            envelope=read.envelope,
            payload_valid=read.payload_valid,
        )
    return xml_verdict.request_violations(raw, req.headers.get("Content-Type"), req.headers.get("SOAPAction"))


@dataclass
class _Read:
    """The request body as the front end read it: its envelope, and whether its payload passed the schema."""

    raw: bytes
    envelope: kxml.Envelope
    payload_valid: bool = False


# The SOAP front end as the harness sees it (``core.service``): fault rules name the operation or an item kind.
FRONT = harness.Front(
    "kss",
    "/kss/soap/",
    lambda: (kxml.OPERATION, *kxml.ITEM_KINDS),
    lambda req: kxml.OPERATION if req.method == "POST" else None,
    _verdict,
    rest=False,
)


def _xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, headers=headers, content_type=XML_TYPE)


def _fault(code: str, message: str, status: int = 500, headers: dict[str, str] | None = None) -> Response:
    return _xml(xml_answer.render_fault(code, message), status, headers)


@bp.route("/upi", methods=METHODS, provide_automatic_options=False)
def upi() -> Response:
    try:
        if request.method == "OPTIONS":
            return Response(status=200, headers={"Allow": ALLOW})
        if request.method == "GET":
            if any(key.lower() == "wsdl" for key in request.args):
                return _xml(xml_answer.render_wsdl(request.base_url))
            return _fault(CLIENT, "POST a SOAP 1.1 envelope here, or GET ?wsdl for the contract", 400)
        if request.method != "POST":
            return _fault(CLIENT, f"{request.method} is not allowed: POST a SOAP 1.1 envelope", 405, {"Allow": ALLOW})
        return _post()
    except SoapFault as fault:
        return _fault(fault.code, fault.message)
    except Exception:  # never an HTML page or a stack trace on the wire
        log.exception("KSS SOAP request failed")
        return _fault(SERVER, "the simulator failed while answering; nothing was changed; see its log")


def _check_headers() -> None:
    mimetype = request.mimetype
    if mimetype and not mimetype.endswith(("/xml", "+xml")):
        raise SoapFault(CLIENT, f"send a SOAP 1.1 envelope as text/xml, not {mimetype}")
    action = request.headers.get("SOAPAction")
    if action is not None:
        action = action.strip().strip('"').strip()
        if action and action != kxml.SOAP_ACTION:
            raise SoapFault(CLIENT, f"unknown SOAPAction {action!r}; the one operation's is {kxml.SOAP_ACTION!r}")


def _read_body() -> bytes:
    """The body, at most ``max_body_bytes`` of it, by Content-Length or chunked; never more is read."""
    limit = runtime().settings.max_body_bytes
    too_big = SoapFault(CLIENT, f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        harness.note_body(None)
        close_connection()  # the rest of the body is left unread: the connection cannot carry another request
        raise too_big
    request.max_content_length = limit + 1  # werkzeug then stops a chunked body one byte past our limit
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = request.stream.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        harness.note_body(None)
        close_connection()  # the rest of the body is left unread: the connection cannot carry another request
        raise too_big from None
    if size > limit:
        harness.note_body(None)
        close_connection()  # the rest of the body is left unread: the connection cannot carry another request
        raise too_big
    raw = b"".join(chunks)
    harness.note_body(raw)
    return raw


def _post() -> Response:
    """Through the test harness (ksimkit.simulators.core.harness): it picks the fault and refuses in strict mode."""
    _check_headers()
    raw = _read_body()
    envelope = kxml.read_envelope(raw)
    read = g.ksim_kss_read = _Read(raw, envelope)
    harness.note_items(kxml.item_kinds(envelope.payload))

    def identify(conn: Connection) -> CallContext:
        username, password = kxml.access_info(envelope)
        partner = partner_by_kss_credentials(conn, username, password)
        if partner is None:
            raise Refusal(KssCode.AUTHENTICATION_FAILED, "authentication failed: unknown UserName or wrong Password")
        return call_context(partner)

    def work(conn: Connection, ctx: CallContext, fault: Fault | None) -> Response:
        try:
            parsed = kxml.read_container(envelope.payload, ctx.clock.zone, ctx.clock.now)
        except Refusal as refusal:  # SIM-ERR-1: the TransactionId is not used up
            answer = _refusal(ctx.clock.now, envelope, refusal)
        else:
            read.payload_valid = parsed.exact  # read_container checked the schema first (of a tolerated copy: no)
            answer = _process(conn, ctx, _faulted_units(parsed, fault))
            _fault_results(answer, parsed, fault)
        if fault is not None and fault.kind == SOAP_FAULT.name:
            return _fault(
                fault.spec["fault_code"],
                fault.spec["message"] or f"injected by the ksim test harness (fault rule {fault.rule_id})",
            )
        if fault is not None and fault.kind == TRANSACTION_ERROR.name:
            answer = ResponseContainer(
                ctx.clock.now,
                answer.transaction_id,
                transaction_error=TransactionError(fault.spec["error_code"], _fault_message(fault)),
            )
        return _xml(xml_answer.render_answer(answer, ext=_ext_answers(conn, ctx, envelope, answer)))

    try:
        return harness.serve(identify, work)
    except Refusal as refusal:  # SIM-AUTH-1 (710): nothing is changed
        return _refused(system_now(), envelope, refusal)
    except harness.NonConforming as exc:  # strict contract mode: 709, nothing is changed
        ex = harness.exchange()
        now = ex.partner_now if ex is not None and ex.partner_now is not None else system_now()
        return _refused(
            now,
            envelope,
            Refusal(
                KssCode.NONCONFORMING, f"strict contract mode: the request does not conform to the contract: {exc}"
            ),
        )


def _ext_answers(conn: Connection, ctx: CallContext, envelope: kxml.Envelope, answer: ResponseContainer) -> bool:
    """Extension attributes in GetInfo answers: to a request that speaks ext, or for a partner that opted in."""
    if not any(r.subscription is not None for r in answer.results) or xml_answer.speaks_ext(envelope.payload):
        return True  # nothing to leave out, or the client reads ext
    return control.ext_answers(conn, ctx.partner_id)


def _refusal(now: dt.datetime, envelope: kxml.Envelope, refusal: Refusal) -> ResponseContainer:
    return ResponseContainer(
        timestamp=now,
        transaction_id=kxml.transaction_id_of(envelope.payload),
        transaction_error=TransactionError(refusal.code, refusal.message),
    )


def _refused(now: dt.datetime, envelope: kxml.Envelope, refusal: Refusal) -> Response:
    return _xml(xml_answer.render_answer(_refusal(now, envelope, refusal)))


# ---------------------------------------------------------------- faults of the test harness in the KSS shape


def _fault_message(fault: Fault) -> str:
    return str(fault.spec["message"] or f"injected by the ksim test harness (fault rule {fault.rule_id})")


def _hit(fault: Fault, item_kind: str) -> bool:
    """Whether a unit_error rule names this unit: its operation is the unit's kind, or names no kind."""
    return fault.spec["operation"] in (None, kxml.OPERATION, item_kind)


def _faulted_units(parsed: kxml.Parsed, fault: Fault | None) -> kxml.Parsed:
    """A unit_error ``before``: the units it names are answered with its error and never reach the rules."""
    if fault is None or fault.kind != UNIT_ERROR.name or fault.when != "before":
        return parsed
    units = tuple(
        ItemError(kind(u), u.unit_id, u.subscriber_id, fault.spec["error_code"], _fault_message(fault))
        if not isinstance(u, ItemError) and _hit(fault, kind(u))
        else u
        for u in parsed.units
    )
    return kxml.Parsed(parsed.timestamp, parsed.transaction_id, units)


def _fault_results(answer: ResponseContainer, parsed: kxml.Parsed, fault: Fault | None) -> None:
    """A unit_error ``after``: the units it names were applied, but their answers say they failed."""
    if fault is None or fault.kind != UNIT_ERROR.name or fault.when != "after" or answer.transaction_error is not None:
        return
    kept: list[ItemResult] = []
    for result in answer.results:
        if _hit(fault, result.kind):
            answer.errors.append(
                ItemError(
                    result.kind, result.unit_id, result.subscriber_id, fault.spec["error_code"], _fault_message(fault)
                )
            )
        else:
            kept.append(result)
    answer.results = kept
    position = {u.unit_id: i for i, u in enumerate(parsed.units)}
    answer.errors.sort(key=lambda e: position.get(e.unit_id, len(position)))


def _process(conn: Connection, ctx: CallContext, parsed: kxml.Parsed) -> ResponseContainer:
    """container.process on the units, with the units this layer refused itself (602) put back in document order."""
    tolerance = runtime().settings.kss_start_tolerance_seconds
    refused = [u for u in parsed.units if isinstance(u, ItemError)]
    items = tuple(u for u in parsed.units if not isinstance(u, ItemError))
    unit_ids = [u.unit_id for u in parsed.units]
    if refused and len(set(unit_ids)) != len(unit_ids):
        # A repeated UnitId: the rules answer 6 or 708 before they apply any unit, so a stand-in for the units
        # refused here gets the answer the whole container would.
        items = tuple(Resume(u.unit_id, u.subscriber_id) if isinstance(u, ItemError) else u for u in parsed.units)
        refused = []
    answer = container.process(
        conn, ctx, RequestContainer(parsed.timestamp, parsed.transaction_id, items), start_tolerance_seconds=tolerance
    )
    if len(set(unit_ids)) != len(unit_ids) and answer.transaction_error is None:  # rolled back: a Server fault
        raise RuntimeError("the rules applied a container with a repeated UnitId")
    if refused and answer.transaction_error is None:
        position = {unit_id: i for i, unit_id in enumerate(unit_ids)}
        answer.errors = sorted([*answer.errors, *refused], key=lambda e: position[e.unit_id])
    return answer
