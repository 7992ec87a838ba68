"""KSS XML out: the answer container, SOAP 1.1 faults and the WSDL, as bytes in the shape of
contracts/kss-upi.xsd and contracts/kss-ext.xsd. No rule is decided here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from lxml import etree

from ksimkit import contracts
from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.kss.model import ItemError, ItemResult, ResponseContainer, SubscriptionInfo
from ksimkit.simulators.kss.xml import EXT, KSS, SOAP_ENV, hardened_parser, q

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"

_EXT_RESULTS = {
    "ChangeLicenseCount": q(EXT, "ChangeLicenseCountResult"),
    "ChangeProduct": q(EXT, "ChangeProductResult"),
}
_EXT_KINDS = ("ChangeLicenseCount", "ChangeProduct")


def _set(el: etree._Element, name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dt.datetime):
        value = iso_utc(value)
    el.set(name, str(value))


def _identity(el: etree._Element, unit_id: int, subscriber_id: str) -> etree._Element:
    el.set("UnitId", str(unit_id))
    el.set("SubscriberId", subscriber_id)
    return el


def speaks_ext(container: etree._Element) -> bool:
    """Whether a request uses or declares ksim's extension namespace: only then (or when the partner opts in) do
    its answers carry extension attributes, so a pure 2.0 client gets pure 2.0 answers."""
    return any(EXT in el.nsmap.values() for el in container.iter() if isinstance(el.tag, str))


def _subscription(parent: etree._Element, info: SubscriptionInfo, ext: bool) -> None:
    el = etree.SubElement(parent, q(KSS, "Subscription"))
    _set(el, "Status", info.status)
    _set(el, "StatusChangeTime", info.status_change_time)
    _set(el, "StartTime", info.start_time)
    _set(el, "EndTime", "indefinite" if info.end_time is None else info.end_time)
    _set(el, "LicenseCount", info.license_count)
    _set(el, "ProductId", info.product_id)
    _set(el, "ActivationCode", info.activation_code)
    if not ext:
        return
    _set(el, q(EXT, "TrialEndTime"), info.trial_end_time)
    _set(el, q(EXT, "PauseEndTime"), info.pause_end_time)
    _set(el, q(EXT, "CustomerId"), info.customer_id)
    _set(el, q(EXT, "MaxLicenseCountThisPeriod"), info.max_license_count_this_period)


def _result(parent: etree._Element, result: ItemResult, ext: bool) -> None:
    tag = _EXT_RESULTS.get(result.kind, q(KSS, result.kind))
    el = _identity(etree.SubElement(parent, tag), result.unit_id, result.subscriber_id)
    if result.kind in ("Activate", *_EXT_KINDS):
        _set(el, "ActivationCode", result.activation_code)
    elif result.kind == "GetInfo":
        if result.subscription is not None:
            _subscription(el, result.subscription, ext)
        if result.usage is not None:
            usage = etree.SubElement(el, q(KSS, "SubscriptionUsage"))
            _set(usage, "FirstActivationTime", result.usage.first_activation_time)
    elif result.kind == "GetDownloadLinks":
        _set(el, "Platform", result.platform)
        links = etree.SubElement(el, q(KSS, "DownloadLinks"))
        for link in result.links:
            item = etree.SubElement(links, q(KSS, "DownloadLink"))
            for name, value in (
                ("Url", link.url),
                ("Language", link.language),
                ("Alphabet", link.alphabet),
                ("Region", link.region),
                ("RebrandingCode", link.rebranding_code),
                ("ApplicationName", link.application_name),
            ):
                _set(item, name, value)


def _error(parent: etree._Element, error: ItemError) -> None:
    tag = q(EXT if error.kind in _EXT_KINDS else KSS, f"{error.kind}Error")
    el = _identity(etree.SubElement(parent, tag), error.unit_id, error.subscriber_id)
    el.set("ErrorCode", str(error.code))
    el.set("ErrorMessage", error.message)


def _uses_ext(answer: ResponseContainer, ext: bool) -> bool:
    return any(r.kind in _EXT_KINDS or (ext and r.subscription is not None) for r in answer.results) or any(
        e.kind in _EXT_KINDS for e in answer.errors
    )


def answer_element(answer: ResponseContainer, *, ext: bool = True) -> etree._Element:
    """``kss:SubscriptionResponseContainer``, as kss-upi.xsd declares it; times in UTC with Z. ``ext``: GetInfo's
    extension attributes are written (a request that speaks ext, or a partner that opts in)."""
    nsmap = {None: KSS, "ext": EXT} if _uses_ext(answer, ext) else {None: KSS}
    root = etree.Element(q(KSS, "SubscriptionResponseContainer"), nsmap=nsmap)
    etree.SubElement(root, q(KSS, "Timestamp")).text = iso_utc(answer.timestamp)
    etree.SubElement(root, q(KSS, "TransactionId")).text = answer.transaction_id
    if answer.transaction_error is not None:
        refused = etree.SubElement(root, q(KSS, "TransactionError"))
        refused.set("ErrorCode", str(answer.transaction_error.code))
        refused.set("ErrorMessage", answer.transaction_error.message)
        return root
    if answer.results:
        holder = etree.SubElement(root, q(KSS, "SubscriptionResponse"))
        for result in answer.results:
            _result(holder, result, ext)
    if answer.errors:
        holder = etree.SubElement(root, q(KSS, "SubscriptionError"))
        for error in answer.errors:
            _error(holder, error)
    return root


def _envelope(payload: etree._Element) -> bytes:
    env = etree.Element(q(SOAP_ENV, "Envelope"), nsmap={"soapenv": SOAP_ENV})
    etree.SubElement(env, q(SOAP_ENV, "Body")).append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def render_answer(answer: ResponseContainer, *, ext: bool = True) -> bytes:
    return _envelope(answer_element(answer, ext=ext))


_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_fault(code: str, message: str) -> bytes:
    fault = etree.Element(q(SOAP_ENV, "Fault"), nsmap={"soapenv": SOAP_ENV})
    etree.SubElement(fault, "faultcode").text = f"soapenv:{code}"
    etree.SubElement(fault, "faultstring").text = _NOT_XML_CHARS.sub("?", message)
    return _envelope(fault)


@functools.cache
def _wsdl_bytes() -> bytes:
    return contracts.path("kss-upi.wsdl").read_bytes()


def render_wsdl(address: str) -> bytes:
    """contracts/kss-upi.wsdl (schemas inline) with soap:address set to ``address``, for this request only."""
    doc = etree.fromstring(
        _wsdl_bytes(), hardened_parser(strip=False)
    ).getroottree()  # a tree per request: none is shared
    for port_address in doc.getroot().iterfind(
        f"{q(WSDL_NS, 'service')}/{q(WSDL_NS, 'port')}/{q(WSDL_SOAP, 'address')}"
    ):
        port_address.set("location", address)
    return etree.tostring(doc, xml_declaration=True, encoding="utf-8")
