"""The test harness's contract verdict of a KSS SOAP request (docs/harness.md): every way it breaks the WSDL's
binding and the XSD, including what the service itself tolerates. Read only by the harness's strict contract mode
and its journal; the service's own answers never depend on it.
"""

from __future__ import annotations

import re

from lxml import etree

from ksimkit.simulators.kss.errors import SoapFault
from ksimkit.simulators.kss.xml import KSS, SOAP_ACTION, Envelope, contract_schema, q, read_envelope, tag_of

_STEP = re.compile(r"(?:[\w.-]+:)?([\w.-]+|\*)(?:\[([0-9]+)\])?")


def _readable_path(root: etree._Element, xpath: str | None) -> str:
    """libxml2's ``/*/*[3]/*`` as ``/SubscriptionRequestContainer/SubscriptionRequest/Activate`` (a repeated
    name gets its position among its namesakes, ``Activate[2]``)."""
    steps = [step for step in (xpath or "").split("/") if step]
    if not steps:
        return "/"
    node, names = root, [etree.QName(root).localname]
    for step in steps[1:]:
        match = _STEP.fullmatch(step)
        if match is None:
            break
        children = [
            c for c in node if isinstance(c.tag, str) and (match[1] == "*" or etree.QName(c).localname == match[1])
        ]
        index = int(match[2] or 1) - 1
        if index >= len(children):
            break
        node = children[index]
        name = etree.QName(node).localname
        namesakes = [c for c in node.itersiblings(preceding=True) if isinstance(c.tag, str) and c.tag == node.tag]
        following = any(isinstance(c.tag, str) and c.tag == node.tag for c in node.itersiblings())
        names.append(f"{name}[{len(namesakes) + 1}]" if namesakes or following else name)
    return "/" + "/".join(names)


def _schema_violations(element: etree._Element, where: str, limit: int) -> list[dict[str, str]]:
    schema = contract_schema()
    if schema.validate(element):
        return []
    return [
        {"in": where, "path": _readable_path(element, e.path), "message": f"line {e.line}: {e.message}"}
        for e in list(schema.error_log)[:limit]
    ]


def request_violations(
    raw: bytes | None,
    content_type: str | None,
    soap_action: str | None,
    limit: int = 50,
    *,
    envelope: Envelope | None = None,
    payload_valid: bool = False,
) -> list[dict[str, str]]:
    """The test harness's contract verdict of a SOAP request: every way it breaks the WSDL's binding and the XSD,
    including what the service tolerates (no SOAPAction, a Content-Type other than text/xml, an undeclared
    header entry). ``raw`` is ``None`` when the body was larger than the service reads.

    ``envelope``: ``read_envelope(raw)``, when the caller has it already (it is then not parsed again);
    ``payload_valid``: the caller found its payload valid against the schema (it is then not validated again)."""
    violations: list[dict[str, str]] = []
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if content_type is None:
        violations.append(
            {
                "in": "header",
                "path": "/headers/Content-Type",
                "message": "no Content-Type: a SOAP 1.1 request is text/xml; charset=utf-8",
            }
        )
    elif mimetype != "text/xml":
        violations.append(
            {
                "in": "header",
                "path": "/headers/Content-Type",
                "message": f"Content-Type {mimetype or content_type!r}: a SOAP 1.1 request is text/xml",
            }
        )
    action = None if soap_action is None else soap_action.strip().strip('"').strip()
    if action != SOAP_ACTION:
        said = "no SOAPAction header" if action is None else f"SOAPAction {soap_action!r}"
        violations.append(
            {
                "in": "header",
                "path": "/headers/SOAPAction",
                "message": f'{said}: the binding declares SOAPAction "{SOAP_ACTION}"',
            }
        )
    if raw is None:
        return [*violations, {"in": "body", "path": "/", "message": "the body is larger than the server accepts"}]
    if envelope is None:
        try:
            envelope = read_envelope(raw)
        except SoapFault as fault:
            return [*violations, {"in": "envelope", "path": "/", "message": fault.message}]
    access = [h for h in envelope.headers if h.tag == q(KSS, "AccessInfo")]
    for entry in envelope.headers:
        if entry.tag != q(KSS, "AccessInfo"):
            violations.append(
                {
                    "in": "soap-header",
                    "path": f"/Envelope/Header/{etree.QName(entry).localname}",
                    "message": f"the contract declares no SOAP header entry {tag_of(entry)}",
                }
            )
    if len(access) != 1:
        violations.append(
            {
                "in": "soap-header",
                "path": "/Envelope/Header",
                "message": f"the contract declares one kss:AccessInfo header entry; found {len(access)}",
            }
        )
    else:
        violations += _schema_violations(access[0], "soap-header", limit)
    if payload_valid:
        return violations
    return violations + _schema_violations(envelope.payload, "body", limit)
