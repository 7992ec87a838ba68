"""KSS XML in: a hardened parser, the SOAP 1.1 envelope, the contract's XSD, a request read into model values.

No rule is decided here. This module turns request bytes into ``ksimkit.simulators.kss.model`` values, exactly as
contracts/kss-upi.xsd and contracts/kss-ext.xsd declare them; ``ksimkit.simulators.kss.xml_answer`` writes the
answers back, ``ksimkit.simulators.kss.xml_verdict`` judges a request for the test harness, and
``ksimkit.simulators.kss.soap`` wires them to HTTP and the rules.

- ``read_envelope``: bytes -> ``Envelope`` (header entries, the body's payload element), or ``SoapFault``.
  The parser never resolves entities, loads a DTD or touches the network; any DOCTYPE is refused, and so is
  nesting deeper than ``MAX_DEPTH`` elements.
- ``access_info``: the (UserName, Password) of the ``kss:AccessInfo`` header, or a ``Refusal`` (710).
- ``read_container``: a schema-valid ``kss:SubscriptionRequestContainer`` -> ``Parsed`` (model items, zone-less
  times read in the partner's zone), or a ``Refusal`` (709).
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from lxml import etree

from ksimkit import contracts
from ksimkit.simulators.kss.errors import CLIENT, MUST_UNDERSTAND, VERSION_MISMATCH, KssCode, Refusal, SoapFault
from ksimkit.simulators.kss.model import (
    Activate,
    ChangeLicenseCount,
    ChangeProduct,
    GetDownloadLinks,
    GetInfo,
    HardCancel,
    Item,
    ItemError,
    Pause,
    Renew,
    Resume,
    SoftCancel,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
KSS = "http://schemas.kaspersky.com/services/subscription/2.0/"
EXT = "http://ksim.dev/kss/3.0/ext"
SOAP_ACTION = "http://schemas.kaspersky.com/services/subscription/subscriptionRequest"
UTC = dt.UTC

# Limits of ours (docs/kss-wire.md, "Limits"). The body size limit is the setting max_body_bytes.
MAX_DEPTH = 32  # element nesting; a real request nests 5 deep (Envelope/Body/Container/SubscriptionRequest/item)
MAX_INT = 2_147_483_647  # LicenseCount: what every store backend holds
MAX_TRANSACTION_ID = 255  # characters, as stored
MAX_ID = 200  # SubscriberId, ext:CustomerId: characters, as stored


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def tag_of(el: etree._Element) -> str:
    """A parsed element's tag, ``{namespace}name`` (lxml types a tag as text or bytes; parsed ones are text)."""
    return etree.QName(el).text


# ====================================================================================== parsing


def hardened_parser(*, strip: bool = True) -> etree.XMLParser:
    """A fresh hardened parser (one per call: parsers are not shared between threads)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=strip,
        remove_pis=strip,
        collect_ids=False,
    )


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _declares_dtd(raw: bytes) -> bool:
    """A cheap look for a DOCTYPE or an entity declaration before libxml2 reads one (also in UTF-16/32)."""
    text: bytes | str = raw
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            text = raw.decode(codec, errors="replace")
            break
    else:
        if b"\x00" in raw[:4]:  # UTF-16/32 without a BOM
            for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
                decoded = raw.decode(codec, errors="replace")
                if "<!DOCTYPE" in decoded or "<!ENTITY" in decoded:
                    return True
            return False
    if isinstance(text, str):
        return "<!DOCTYPE" in text or "<!ENTITY" in text
    return b"<!DOCTYPE" in text or b"<!ENTITY" in text


def _too_deep(root: etree._Element, limit: int) -> bool:
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > limit:
            return True
    return False


def parse_xml(raw: bytes, *, max_depth: int = MAX_DEPTH) -> etree._Element:
    """Well-formed XML without a DTD and not nested deeper than ``max_depth``, or a Client fault."""
    if not raw.strip():
        raise SoapFault(CLIENT, "the request has no body: POST a SOAP 1.1 envelope")
    if _declares_dtd(raw):
        raise SoapFault(CLIENT, "DOCTYPE and entity declarations are not allowed in a request")
    try:
        root = etree.fromstring(raw, hardened_parser())
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in str(exc):  # libxml2's own limit (256) lies past ours: say ours
            raise SoapFault(CLIENT, f"the request nests elements more than {max_depth} deep") from None
        raise SoapFault(CLIENT, f"the request is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the XML declaration
        raise SoapFault(CLIENT, f"the request cannot be read as XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise SoapFault(CLIENT, "DOCTYPE and entity declarations are not allowed in a request")
    if _too_deep(root, max_depth):
        raise SoapFault(CLIENT, f"the request nests elements more than {max_depth} deep")
    return root


@dataclass(frozen=True)
class Envelope:
    headers: tuple[etree._Element, ...]
    payload: etree._Element  # the Body's one element


def read_envelope(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Envelope:
    """The SOAP 1.1 envelope of a request whose body is the contract's one operation, or a Fault."""
    root = parse_xml(raw, max_depth=max_depth)
    name = etree.QName(root)
    if name.localname != "Envelope":
        raise SoapFault(CLIENT, f"the request is not a SOAP envelope: its root element is {name.text}")
    if name.namespace != SOAP_ENV:
        raise SoapFault(
            VERSION_MISMATCH, f"the Envelope must be in the SOAP 1.1 namespace {SOAP_ENV}, not {name.namespace}"
        )
    header = root.find(q(SOAP_ENV, "Header"))
    body = root.find(q(SOAP_ENV, "Body"))
    if body is None:
        raise SoapFault(CLIENT, "the SOAP envelope has no Body")
    headers = tuple(header) if header is not None else ()
    for entry in headers:
        if entry.tag != q(KSS, "AccessInfo") and entry.get(q(SOAP_ENV, "mustUnderstand"), "0").strip() in ("1", "true"):
            raise SoapFault(
                MUST_UNDERSTAND, f"the header entry {tag_of(entry)} is marked mustUnderstand and is not understood"
            )
    payload = list(body)
    if len(payload) != 1:
        raise SoapFault(
            CLIENT,
            f"the SOAP Body must hold exactly one element, {q(KSS, 'SubscriptionRequestContainer')}; "
            f"it holds {len(payload)}",
        )
    if payload[0].tag != q(KSS, "SubscriptionRequestContainer"):
        raise SoapFault(
            CLIENT,
            f"no operation takes {tag_of(payload[0])}: the one operation, SubscriptionRequest, takes "
            f"{q(KSS, 'SubscriptionRequestContainer')}",
        )
    return Envelope(headers, payload[0])


def access_info(envelope: Envelope) -> tuple[str, str]:
    """The credentials of the ``kss:AccessInfo`` header; a missing or incomplete header is refused with 710."""
    found = [h for h in envelope.headers if h.tag == q(KSS, "AccessInfo")]
    if not found:
        elsewhere = [tag_of(h) for h in envelope.headers if etree.QName(h).localname == "AccessInfo"]
        hint = f" ({elsewhere[0]} is in the wrong namespace)" if elsewhere else ""
        raise Refusal(
            KssCode.AUTHENTICATION_FAILED,
            f"authentication failed: the SOAP header has no AccessInfo in namespace {KSS}{hint}",
        )
    if len(found) > 1:
        raise Refusal(
            KssCode.AUTHENTICATION_FAILED, "authentication failed: the SOAP header has more than one AccessInfo"
        )
    user, password = found[0].find(q(KSS, "UserName")), found[0].find(q(KSS, "Password"))
    if user is None or password is None or len(user) or len(password):
        raise Refusal(
            KssCode.AUTHENTICATION_FAILED,
            "authentication failed: AccessInfo must hold UserName and Password, in this namespace",
        )
    return user.text or "", password.text or ""


# ====================================================================================== the schema


_local = threading.local()


def contract_schema() -> etree.XMLSchema:
    """The contract's schema, compiled once per thread (a schema's error log is not shared between requests)."""
    schema = getattr(_local, "schema", None)
    if schema is None:
        doc = etree.parse(str(contracts.path("kss-upi.xsd")), hardened_parser())  # imports kss-ext.xsd beside it
        schema = _local.schema = etree.XMLSchema(doc)
    return schema


def schema_errors(element: etree._Element, limit: int = 3) -> list[str]:
    """Why ``element`` does not conform to the contract (empty when it does)."""
    schema = contract_schema()
    if schema.validate(element):
        return []
    return [f"line {e.line}: {e.message}" for e in list(schema.error_log)[:limit]]


# Item kinds of the contract (local names), for the test harness: fault rules and journal filters name them.
ITEM_KINDS = (
    "Activate",
    "Renew",
    "SoftCancel",
    "HardCancel",
    "Pause",
    "Resume",
    "GetInfo",
    "GetDownloadLinks",
    "ChangeLicenseCount",
    "ChangeProduct",
)
OPERATION = "SubscriptionRequest"


def item_kinds(container: etree._Element) -> tuple[str, ...]:
    """The local names of a container's items, in document order (read before the schema is checked)."""
    holder = container.find(q(KSS, "SubscriptionRequest"))
    return () if holder is None else tuple(etree.QName(el).localname for el in holder if isinstance(el.tag, str))


# ====================================================================================== reading


_DATETIME = re.compile(
    r"(?P<year>-?\d{4,})-(?P<month>\d\d)-(?P<day>\d\d)T(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
    r"(?P<fraction>\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)?"
)


# What common clients write for a dateTime besides xs:dateTime: a space for the "T" (suds and Python's str() of a
# datetime, ``2027-06-01 12:00:35.107539``; many SQL-minded clients), with or without a zone.
_SPACED = re.compile(r"\s*(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)\s*")
# The request's dateTime and union (dateTime or "indefinite") attributes, and the optional typed attributes an
# empty value of which (``EndTime=""``: some generated clients write every attribute) is read as absent.
TIME_ATTRIBUTES = ("StartTime", "EndTime", "PauseTime", q(EXT, "ResumeTime"))
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "Activate": ("LicenseCount", "ActivationType", "UserIgnore", q(EXT, "TrialDays"), q(EXT, "CustomerId")),
    "Renew": ("EndTime",),
    "SoftCancel": ("EndTime",),
    "HardCancel": ("EndTime",),
    "Pause": ("PauseTime", q(EXT, "ResumeTime")),
    "GetInfo": ("InfoSection",),
}


def spaced_to_xsd(value: str) -> str | None:
    """``YYYY-MM-DD HH:MM:SS[.ffffff][zone]`` as xs:dateTime; None for anything else."""
    match = _SPACED.fullmatch(value)
    return None if match is None else f"{match[1]}T{match[2]}"


def tolerate(container: etree._Element) -> etree._Element | None:
    """A copy of the container with the forms common clients send instead of the schema's rewritten to the schema's
    (a spaced dateTime; an empty optional attribute dropped), or None when there are none. Nothing else changes: a
    value that is neither form still fails the schema (709)."""
    changes: list[tuple[etree._Element, str, str | None]] = []
    stamp = container.find(q(KSS, "Timestamp"))
    holder = container.find(q(KSS, "SubscriptionRequest"))
    items = [] if holder is None else [el for el in holder if isinstance(el.tag, str)]
    for el in items:
        local = etree.QName(el).localname
        for name in _OPTIONAL.get(local, ()):
            if (value := el.get(name)) is not None and not value.strip():
                changes.append((el, name, None))
        for name in TIME_ATTRIBUTES:
            if (value := el.get(name)) is not None and (fixed := spaced_to_xsd(value)) is not None:
                changes.append((el, name, fixed))
    fixed_stamp = None if stamp is None or len(stamp) else spaced_to_xsd(stamp.text or "")
    if not changes and fixed_stamp is None:
        return None
    copy = etree.fromstring(etree.tostring(container), hardened_parser())
    copy_holder, copy_stamp = copy.find(q(KSS, "SubscriptionRequest")), copy.find(q(KSS, "Timestamp"))
    copy_items = [] if copy_holder is None else [el for el in copy_holder if isinstance(el.tag, str)]
    for el, name, value in changes:
        target = copy_items[items.index(el)]
        if value is None:
            del target.attrib[name]
        else:
            target.set(name, value)
    if fixed_stamp is not None and copy_stamp is not None:
        copy_stamp.text = fixed_stamp
    return copy


def parse_datetime(value: str, zone: ZoneInfo) -> dt.datetime:
    """An xs:dateTime (or its spaced form) as aware UTC; without a zone it is read in ``zone`` (the partner's).
    ValueError if unusable."""
    match = _DATETIME.fullmatch(spaced_to_xsd(value) or value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not an xs:dateTime")
    year = int(match["year"])
    if not 1 <= year <= 9999:
        raise ValueError(f"{value!r}: ksim reads years 0001 to 9999 only")
    micro = int((match["fraction"] or ".0")[1:7].ljust(6, "0"))
    hour, extra = int(match["hour"]), dt.timedelta()
    if hour == 24:  # 24:00:00 is the end of the day, i.e. the next day's start
        hour, extra = 0, dt.timedelta(days=1)
    try:
        naive = (
            dt.datetime(
                year, int(match["month"]), int(match["day"]), hour, int(match["minute"]), int(match["second"]), micro
            )
            + extra
        )
        if match["zone"] is None:
            local = naive.replace(tzinfo=zone)
        elif match["zone"] == "Z":
            local = naive.replace(tzinfo=UTC)
        else:
            sign = -1 if match["zone"][0] == "-" else 1
            hours, minutes = int(match["zone"][1:3]), int(match["zone"][4:6])
            local = naive.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes)))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is outside the dates ksim can read (years 0001 to 9999)") from None


@dataclass(frozen=True)
class Parsed:
    """A request container: its units in document order; a unit the wire refuses itself is an ItemError."""

    timestamp: dt.datetime
    transaction_id: str
    units: tuple[Item | ItemError, ...]
    exact: bool = True  # False: read only after ``tolerate`` rewrote a form the schema does not name


class _Reader:
    """Attribute access on one item, with the limits and the partner's time zone."""

    def __init__(self, el: etree._Element, zone: ZoneInfo, now: dt.datetime) -> None:
        self.el, self.zone, self.now = el, zone, now
        self.kind = etree.QName(el).localname

    def _where(self, name: str) -> str:
        return f"{self.kind} UnitId={self.el.get('UnitId', '')[:40]!r} {name}"

    def text(self, name: str, ns: str | None = None, *, max_len: int | None = None) -> str | None:
        value = self.el.get(q(ns, name) if ns else name)
        if value is not None and max_len is not None and len(value) > max_len:
            raise Refusal(
                KssCode.NONCONFORMING, f"{self._where(name)}: longer than {max_len} characters (a ksim limit)"
            )
        return value

    def _int(self, name: str, raw: str) -> int:
        try:
            return int(raw.strip())
        except ValueError:  # schema-valid, but more digits than Python reads (4300)
            raise Refusal(KssCode.NONCONFORMING, f"{self._where(name)}: too many digits (a ksim limit)") from None

    def integer(self, name: str, ns: str | None = None, *, maximum: int | None = None) -> int | None:
        raw = self.text(name, ns)
        if raw is None:
            return None
        value = self._int(name, raw)
        if maximum is not None and value > maximum:
            raise Refusal(
                KssCode.NONCONFORMING, f"{self._where(name)}: {value} is larger than {maximum} (a ksim limit)"
            )
        return value

    def time(self, name: str, ns: str | None = None) -> dt.datetime | None:
        raw = self.text(name, ns)
        if raw is None:
            return None
        try:
            return parse_datetime(raw, self.zone)
        except ValueError as exc:
            raise Refusal(KssCode.NONCONFORMING, f"{self._where(name)}: {exc}") from None

    def end_time(self, name: str = "EndTime") -> dt.datetime | None:
        raw = self.text(name)
        return None if raw is None or raw.strip() == "indefinite" else self.time(name)

    def identity(self) -> tuple[int, str]:
        return self._int("UnitId", self.el.get("UnitId", "")), self.text("SubscriberId", max_len=MAX_ID) or ""


def _activate(r: _Reader, unit: int, sid: str) -> Item:
    start = r.time("StartTime")
    assert start is not None  # required by the schema
    return Activate(
        unit,
        sid,
        start,
        r.end_time(),
        r.text("ProductId") or "",
        license_count=r.integer("LicenseCount", maximum=MAX_INT) or 1,
        activation_type=r.text("ActivationType") or "Standard",
        trial_days=r.integer("TrialDays", EXT),
        customer_id=r.text("CustomerId", EXT, max_len=MAX_ID),
    )


def _renew(r: _Reader, unit: int, sid: str) -> Item | ItemError:
    if r.text("EndTime") is None:  # kss-upi.xsd: "No EndTime: 602"
        return ItemError("Renew", unit, sid, KssCode.BAD_ATTRIBUTE, "Renew needs an EndTime (a dateTime or indefinite)")
    return Renew(unit, sid, r.end_time())


def _info_sections(raw: str | None) -> tuple[str, ...]:
    return ("Subscription",) if raw is None else tuple(part.strip() for part in raw.split(","))


READERS: dict[str, Callable[[_Reader, int, str], Item | ItemError]] = {
    q(KSS, "Activate"): _activate,
    q(KSS, "Renew"): _renew,
    q(KSS, "SoftCancel"): lambda r, u, s: SoftCancel(u, s, r.time("EndTime") or r.now),
    q(KSS, "HardCancel"): lambda r, u, s: HardCancel(u, s, r.time("EndTime") or r.now),
    q(KSS, "Pause"): lambda r, u, s: Pause(u, s, r.time("PauseTime") or r.now, r.time("ResumeTime", EXT)),
    q(KSS, "Resume"): lambda r, u, s: Resume(u, s),
    q(KSS, "GetInfo"): lambda r, u, s: GetInfo(u, s, _info_sections(r.text("InfoSection"))),
    q(KSS, "GetDownloadLinks"): lambda r, u, s: GetDownloadLinks(
        u,
        s,
        r.text("Language") or "",
        r.text("Platform") or "",
        alphabet=r.text("Alphabet"),
        region=r.text("Region"),
        rebranding_code=r.text("RebrandingCode"),
    ),
    q(EXT, "ChangeLicenseCount"): lambda r, u, s: ChangeLicenseCount(
        u, s, r.integer("LicenseCount", maximum=MAX_INT) or 0
    ),
    q(EXT, "ChangeProduct"): lambda r, u, s: ChangeProduct(u, s, r.text("ProductId") or ""),
}


def transaction_id_of(container: etree._Element) -> str:
    """The TransactionId to echo in an answer, even from a container that is otherwise unusable."""
    found = container.find(q(KSS, "TransactionId"))
    return (found.text or "") if found is not None and len(found) == 0 else ""


def read_container(container: etree._Element, zone: ZoneInfo, now: dt.datetime) -> Parsed:
    """A ``kss:SubscriptionRequestContainer`` as model values, or Refusal 709 (schema, or a ksim limit).

    Defaults: LicenseCount 1, ActivationType Standard, InfoSection Subscription; SoftCancel/HardCancel
    without EndTime and Pause without PauseTime: ``now`` (the partner's clock); Renew without EndTime: 602.
    """
    tolerated = tolerate(container)
    container = container if tolerated is None else tolerated
    errors = schema_errors(container)
    if errors:
        raise Refusal(KssCode.NONCONFORMING, "the request does not conform to the schema: " + "; ".join(errors))
    transaction_id = transaction_id_of(container)
    if len(transaction_id) > MAX_TRANSACTION_ID:
        raise Refusal(
            KssCode.NONCONFORMING, f"TransactionId: longer than {MAX_TRANSACTION_ID} characters (a ksim limit)"
        )
    try:
        timestamp = parse_datetime(container.findtext(q(KSS, "Timestamp")) or "", zone)
    except ValueError as exc:
        raise Refusal(KssCode.NONCONFORMING, f"Timestamp: {exc}") from None
    units: list[Item | ItemError] = []
    holder = container.find(q(KSS, "SubscriptionRequest"))
    assert holder is not None  # the schema requires it
    for el in holder:
        reader = _Reader(el, zone, now)
        unit, sid = reader.identity()
        units.append(READERS[tag_of(el)](reader, unit, sid))
    return Parsed(timestamp, transaction_id, tuple(units), exact=tolerated is None)
