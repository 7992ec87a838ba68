"""Contract tests for the KSS SOAP contract: contracts/kss-upi.xsd, contracts/kss-ext.xsd, contracts/kss-upi.wsdl.

What they prove:
- both schemas compile with lxml (libxml2 also checks Unique Particle Attribution at compile time);
- hand-written requests and answers (tests/contract/kss_samples/) validate, bad ones do not;
- the copies of the schemas inlined in the WSDL are identical in content to the .xsd files;
- zeep loads the WSDL, builds a request with every item kind (2.0 and ksim's ext), and what it builds
  validates against the XSD; zeep parses every sample answer.

After editing an .xsd, refresh the WSDL's inline copies with:
    python tests/contract/test_kss_contract.py sync-wsdl
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import sys
from pathlib import Path

import pytest
import zeep
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
SAMPLES = Path(__file__).resolve().parent / "kss_samples"
UPI_XSD = CONTRACTS / "kss-upi.xsd"
EXT_XSD = CONTRACTS / "kss-ext.xsd"
WSDL = CONTRACTS / "kss-upi.wsdl"

KSS = "http://schemas.kaspersky.com/services/subscription/2.0/"
EXT = "http://ksim.dev/kss/3.0/ext"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_ACTION = "http://schemas.kaspersky.com/services/subscription/subscriptionRequest"

REQUEST_KINDS_20 = ["Activate", "Renew", "SoftCancel", "HardCancel", "Pause", "Resume", "GetInfo", "GetDownloadLinks"]
REQUEST_KINDS_EXT = ["ChangeLicenseCount", "ChangeProduct"]
ERROR_KINDS_20 = [f"{k}Error" for k in REQUEST_KINDS_20]

pytestmark = pytest.mark.contract

# A parser that never loads DTDs, entities or anything from the network (docs/kss-wire.md: hostile XML).
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


# --------------------------------------------------------------------------------------- helpers


def load_schema(path: Path = UPI_XSD) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path), SAFE_PARSER))


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return load_schema()


def envelope_parts(path: Path) -> tuple[etree._Element | None, etree._Element]:
    """(AccessInfo header element or None, the Body's payload element) of a SOAP envelope file."""
    env = etree.parse(str(path), SAFE_PARSER).getroot()
    assert env.tag == q(SOAP_ENV, "Envelope"), path.name
    header = env.find(q(SOAP_ENV, "Header"))
    access = header.find(q(KSS, "AccessInfo")) if header is not None else None
    body = env.find(q(SOAP_ENV, "Body"))
    assert body is not None and len(body) == 1, path.name
    return access, body[0]


def assert_valid(schema: etree.XMLSchema, element: etree._Element, what: str = "") -> None:
    doc = etree.ElementTree(copy.deepcopy(element))
    if not schema.validate(doc):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
        pytest.fail(f"{what or element.tag} does not validate:\n{errors}")


def samples(prefix: str) -> list[Path]:
    found = sorted(SAMPLES.glob(f"{prefix}*.xml"))
    assert found, f"no {prefix}*.xml samples in {SAMPLES}"
    return found


def choice_names(complex_type: str) -> set[str]:
    """Clark names of the elements a choice in kss-upi.xsd admits (local elements and refs)."""
    doc = etree.parse(str(UPI_XSD), SAFE_PARSER).getroot()
    ctype = doc.find(f"{q(XS, 'complexType')}[@name='{complex_type}']")
    choice = ctype.find(q(XS, "choice"))
    names = set()
    for el in choice.findall(q(XS, "element")):
        if el.get("ref"):
            prefix, local = el.get("ref").split(":")
            names.add(q(el.nsmap[prefix], local))
        else:
            names.add(q(KSS, el.get("name")))
    return names


# ------------------------------------------------------------------------- inline copies in WSDL

_QNAME_ATTRS = {"type", "ref", "base", "itemType", "memberTypes", "substitutionGroup"}


def _canonical(el: etree._Element) -> tuple:
    """Content of a schema element, independent of prefixes, whitespace, comments and schemaLocation."""
    attrs = []
    for name, value in el.attrib.items():
        if el.tag == q(XS, "import") and name == "schemaLocation":
            continue  # a file reference; the inline copy finds the other schema in the same WSDL
        if name in _QNAME_ATTRS:
            resolved = []
            for token in value.split():
                prefix, _, local = token.rpartition(":")
                resolved.append(q(el.nsmap.get(prefix or None, ""), local))
            value = " ".join(resolved)
        attrs.append((name, value))
    text = " ".join((el.text or "").split())
    children = tuple(_canonical(c) for c in el if isinstance(c.tag, str))
    return (el.tag, tuple(sorted(attrs)), text, children)


def _inline_schemas(wsdl_root: etree._Element) -> dict[str, etree._Element]:
    types = wsdl_root.find(q(WSDL_NS, "types"))
    return {s.get("targetNamespace"): s for s in types.findall(q(XS, "schema"))}


def _inline_copy(xsd_text: str) -> str:
    body = xsd_text[xsd_text.index("<xs:schema") :].rstrip()
    body = body.replace(' schemaLocation="kss-ext.xsd"', "")
    return "\n".join(("    " + line) if line.strip() else "" for line in body.splitlines())


def render_wsdl(wsdl_text: str) -> str:
    """The WSDL text with its inline schema copies replaced by the current .xsd files."""
    for name in ("kss-ext.xsd", "kss-upi.xsd"):
        begin = f"<!-- BEGIN inline contracts/{name} -->"
        end = f"<!-- END inline contracts/{name} -->"
        i = wsdl_text.index(begin) + len(begin)
        j = wsdl_text.index(end)
        copy_text = _inline_copy((CONTRACTS / name).read_text(encoding="utf-8"))
        wsdl_text = wsdl_text[:i] + "\n" + copy_text + "\n    " + wsdl_text[j:]
    return wsdl_text


# ================================================================================== the schemas


@pytest.mark.parametrize("path", [UPI_XSD, EXT_XSD], ids=lambda p: p.name)
def test_xsd_compiles(path: Path) -> None:
    load_schema(path)


def test_schema_namespaces_and_forms() -> None:
    upi = etree.parse(str(UPI_XSD), SAFE_PARSER).getroot()
    ext = etree.parse(str(EXT_XSD), SAFE_PARSER).getroot()
    assert upi.get("targetNamespace") == KSS
    assert ext.get("targetNamespace") == EXT
    for root in (upi, ext):
        assert root.get("elementFormDefault") == "qualified"
    imports = upi.findall(q(XS, "import"))
    assert [(i.get("namespace"), i.get("schemaLocation")) for i in imports] == [(EXT, "kss-ext.xsd")]
    assert ext.findall(q(XS, "import")) == [], "kss-ext.xsd must stay self-contained (no import cycle)"


def test_unique_particle_attribution_is_enforced_and_holds() -> None:
    """libxml2 rejects a non-deterministic content model at compile time: our choices pass, and an
    xs:any beside the ext refs (the thing we avoided) would not."""
    load_schema()  # ours compiles: UPA holds
    doc = etree.parse(str(UPI_XSD), SAFE_PARSER)
    choice = doc.getroot().find(f"{q(XS, 'complexType')}[@name='SubscriptionRequestItemCollection']/{q(XS, 'choice')}")
    wildcard = etree.SubElement(choice, q(XS, "any"))
    wildcard.set("namespace", "##other")
    wildcard.set("processContents", "lax")
    with pytest.raises(etree.XMLSchemaParseError, match="not determinist"):
        etree.XMLSchema(doc)


def test_request_choice_has_every_item_kind_by_name_and_ref() -> None:
    assert choice_names("SubscriptionRequestItemCollection") == {
        *(q(KSS, k) for k in REQUEST_KINDS_20),
        *(q(EXT, k) for k in REQUEST_KINDS_EXT),
    }
    assert choice_names("SubscriptionResponseItemCollection") == {
        *(q(KSS, k) for k in REQUEST_KINDS_20),
        q(EXT, "ChangeLicenseCountResult"),
        q(EXT, "ChangeProductResult"),
    }
    assert choice_names("SubscriptionResponseErrorCollection") == {
        *(q(KSS, k) for k in ERROR_KINDS_20),
        q(EXT, "ChangeLicenseCountError"),
        q(EXT, "ChangeProductError"),
    }


def test_extensions_are_optional_for_2_0_clients() -> None:
    """A strict 2.0 client never has to send anything of ours: every ext attribute is optional, every
    ext element is only an alternative of a choice."""
    upi = etree.parse(str(UPI_XSD), SAFE_PARSER).getroot()
    ext_attr_refs = [a for a in upi.iter(q(XS, "attribute")) if (a.get("ref") or "").startswith("ext:")]
    assert {a.get("ref") for a in ext_attr_refs} == {
        "ext:TrialDays",
        "ext:CustomerId",
        "ext:ResumeTime",
        "ext:TrialEndTime",
        "ext:PauseEndTime",
        "ext:MaxLicenseCountThisPeriod",
    }
    assert all(a.get("use", "optional") == "optional" for a in ext_attr_refs)
    for el in upi.iter(q(XS, "element")):
        if (el.get("ref") or "").startswith("ext:"):
            assert el.getparent().tag == q(XS, "choice"), el.get("ref")


def test_error_code_tables_are_documented() -> None:
    upi_doc = " ".join(etree.parse(str(UPI_XSD), SAFE_PARSER).getroot().itertext())
    ext_doc = " ".join(etree.parse(str(EXT_XSD), SAFE_PARSER).getroot().itertext())
    for code in (1, 2, 3, 4, 5, 6, 8, 9, 99, 101, 103, 105, 202, 204, 303, 304, 401, 402, 501, 601, 602):
        assert re.search(rf"\n\s*{code}\s", upi_doc), f"known code {code} missing from kss-upi.xsd"
    for code in range(701, 711):
        assert re.search(rf"\n\s*{code}\s", ext_doc), f"ksim code {code} missing from kss-ext.xsd"
    wire_doc = (ROOT / "docs" / "kss-wire.md").read_text(encoding="utf-8")
    for code in (1, 6, 99, 101, 602, *range(701, 711)):
        assert re.search(rf"^\|\s*{code}\s*\|", wire_doc, re.M), f"code {code} missing from docs/kss-wire.md"


# ================================================================================== the samples


@pytest.mark.parametrize("path", samples("request_"), ids=lambda p: p.name)
def test_request_sample_validates(schema: etree.XMLSchema, path: Path) -> None:
    access, container = envelope_parts(path)
    assert container.tag == q(KSS, "SubscriptionRequestContainer")
    assert access is not None, "every sample request carries the AccessInfo header"
    assert_valid(schema, access, "AccessInfo")
    assert_valid(schema, container, path.name)


@pytest.mark.parametrize("path", samples("response_"), ids=lambda p: p.name)
def test_response_sample_validates(schema: etree.XMLSchema, path: Path) -> None:
    _, container = envelope_parts(path)
    assert container.tag == q(KSS, "SubscriptionResponseContainer")
    assert_valid(schema, container, path.name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_unknown_item.xml", "Suspend': This element is not expected"),
        ("bad_missing_unitid.xml", "attribute 'UnitId' is required but missing"),
        ("bad_infosection.xml", "attribute 'InfoSection'"),
    ],
)
def test_bad_sample_is_rejected(schema: etree.XMLSchema, name: str, expected: str) -> None:
    _, container = envelope_parts(SAMPLES / name)
    assert not schema.validate(etree.ElementTree(container))
    assert expected in str(schema.error_log), str(schema.error_log)


def test_samples_cover_every_item_kind() -> None:
    """Keeps the samples honest when the schema grows: every item kind occurs in some sample."""
    seen: dict[str, set[str]] = {"request": set(), "response": set(), "error": set()}
    for path in [*samples("request_"), *samples("response_")]:
        _, container = envelope_parts(path)
        for part, key in (
            ("SubscriptionRequest", "request"),
            ("SubscriptionResponse", "response"),
            ("SubscriptionError", "error"),
        ):
            holder = container.find(q(KSS, part))
            if holder is not None:
                seen[key].update(child.tag for child in holder if isinstance(child.tag, str))
    assert seen["request"] == choice_names("SubscriptionRequestItemCollection")
    assert seen["response"] == choice_names("SubscriptionResponseItemCollection")
    assert seen["error"] == choice_names("SubscriptionResponseErrorCollection")


def test_real_client_sample_has_interleaved_kinds_and_zone_less_times() -> None:
    _, container = envelope_parts(SAMPLES / "request_real_client_interleaved.xml")
    kinds = [etree.QName(c).localname for c in container.find(q(KSS, "SubscriptionRequest"))]
    # interleaved: some kind reappears after another kind came between
    assert any(
        kinds[i] == kinds[j] and len(set(kinds[i : j + 1])) > 1
        for i in range(len(kinds))
        for j in range(i + 2, len(kinds))
    )
    zone_less = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
    assert zone_less.match(container.findtext(q(KSS, "Timestamp")))
    starts = [c.get("StartTime") for c in container.iter(q(KSS, "Activate"))]
    assert starts and all(zone_less.match(s) for s in starts)


@pytest.mark.parametrize(
    ("xpath_attr", "value", "valid"),
    [
        (("Activate", "EndTime"), "indefinite", True),
        (("Activate", "EndTime"), "2027-01-01T00:00:00", True),
        (("Activate", "EndTime"), "2027-01-01T00:00:00+03:00", True),
        (("Activate", "EndTime"), "forever", False),
        (("Activate", "EndTime"), "Indefinite", False),
        (("SoftCancel", "EndTime"), "indefinite", False),  # only a dateTime there
        (("Activate", "StartTime"), "indefinite", False),
        (("Activate", "LicenseCount"), "0", False),
        (("Activate", "ActivationType"), "Primary", False),
        (("Activate", "UnitId"), "-1", False),
        (("GetDownloadLinks", "Platform"), "Linux", False),
        (("GetDownloadLinks", "Platform"), "macOS", True),
        (("GetInfo", "InfoSection"), "SubscriptionUsage", True),
    ],
)
def test_attribute_types(schema: etree.XMLSchema, xpath_attr: tuple[str, str], value: str, valid: bool) -> None:
    _, container = envelope_parts(SAMPLES / "request_every_item_kind.xml")
    kind, attr = xpath_attr
    container.find(f".//{q(KSS, kind)}").set(attr, value)
    assert schema.validate(etree.ElementTree(container)) is valid, str(schema.error_log)


@pytest.mark.parametrize(
    ("kind", "attr", "value", "valid"),
    [
        ((KSS, "Activate"), (EXT, "TrialDays"), "-1", False),
        ((KSS, "Activate"), (EXT, "TrialDays"), "0", True),
        ((KSS, "Pause"), (EXT, "ResumeTime"), "soon", False),
        ((EXT, "ChangeLicenseCount"), (None, "LicenseCount"), "0", False),
        ((KSS, "Activate"), (KSS, "TrialDays"), "14", False),  # ext attributes only in the ext namespace
        ((KSS, "Activate"), (None, "TrialDays"), "14", False),
    ],
)
def test_ext_attribute_types(schema: etree.XMLSchema, kind, attr, value: str, valid: bool) -> None:
    _, container = envelope_parts(SAMPLES / "request_ext_every_item.xml")
    element = container.find(f".//{q(*kind)}")
    element.set(q(*attr) if attr[0] else attr[1], value)
    assert schema.validate(etree.ElementTree(container)) is valid, str(schema.error_log)


def test_ext_items_require_their_attributes(schema: etree.XMLSchema) -> None:
    _, container = envelope_parts(SAMPLES / "request_ext_every_item.xml")
    for kind, attr in (
        ("ChangeLicenseCount", "LicenseCount"),
        ("ChangeProduct", "ProductId"),
        ("ChangeProduct", "UnitId"),
    ):
        broken = copy.deepcopy(container)
        del broken.find(f".//{q(EXT, kind)}").attrib[attr]
        assert not schema.validate(etree.ElementTree(broken)), f"{kind} without {attr}"


def test_response_is_either_transaction_error_or_results(schema: etree.XMLSchema) -> None:
    _, error = envelope_parts(SAMPLES / "response_transaction_error.xml")
    _, partial = envelope_parts(SAMPLES / "response_partial_success.xml")
    both = copy.deepcopy(partial)
    both.insert(2, copy.deepcopy(error.find(q(KSS, "TransactionError"))))
    assert not schema.validate(etree.ElementTree(both))
    swapped = copy.deepcopy(partial)  # SubscriptionError before SubscriptionResponse
    swapped.append(swapped.find(q(KSS, "SubscriptionResponse")))
    assert not schema.validate(etree.ElementTree(swapped))
    bad_code = copy.deepcopy(partial)
    bad_code.find(f".//{q(KSS, 'Activate')}").set("ActivationCode", "not-a-code")
    assert not schema.validate(etree.ElementTree(bad_code))


def _doc_examples() -> list[str]:
    text = (ROOT / "docs" / "kss-wire.md").read_text(encoding="utf-8")
    return re.findall(r"```xml\n(.*?)```", text, re.S)


@pytest.mark.parametrize("index", range(len(_doc_examples())))
def test_doc_example_validates(schema: etree.XMLSchema, index: int) -> None:
    """Every XML example on the user page (docs/kss-wire.md) conforms to the contract."""
    root = etree.fromstring(_doc_examples()[index].encode(), SAFE_PARSER)
    if root.tag == q(SOAP_ENV, "Envelope"):
        header = root.find(q(SOAP_ENV, "Header"))
        for part in ([] if header is None else list(header)) + list(root.find(q(SOAP_ENV, "Body"))):
            assert_valid(schema, part, f"doc example {index}")
    else:
        assert_valid(schema, root, f"doc example {index}")


def test_doc_has_an_example_per_extension_item() -> None:
    examples = "\n".join(_doc_examples())
    for name in (
        "ext:TrialDays",
        "ext:CustomerId",
        "ext:ResumeTime",
        "ext:ChangeLicenseCount ",
        "ext:ChangeLicenseCountResult",
        "ext:ChangeLicenseCountError",
        "ext:ChangeProduct ",
        "ext:ChangeProductResult",
        "ext:ChangeProductError",
        "ext:TrialEndTime",
        "ext:PauseEndTime",
        "ext:MaxLicenseCountThisPeriod",
        "<TransactionError",
        "<SubscriptionError>",
    ):
        assert name in examples, name


# ===================================================================================== the WSDL


def test_wsdl_inline_schemas_equal_the_xsd_files() -> None:
    inline = _inline_schemas(etree.parse(str(WSDL), SAFE_PARSER).getroot())
    assert set(inline) == {KSS, EXT}
    for ns, path in ((KSS, UPI_XSD), (EXT, EXT_XSD)):
        from_file = etree.parse(str(path), SAFE_PARSER).getroot()
        assert _canonical(inline[ns]) == _canonical(from_file), (
            f"the copy of {path.name} in kss-upi.wsdl differs; run: python {Path(__file__).relative_to(ROOT)} sync-wsdl"
        )


def test_wsdl_text_is_in_sync() -> None:
    text = WSDL.read_text(encoding="utf-8")
    assert render_wsdl(text) == text, f"run: python {Path(__file__).relative_to(ROOT)} sync-wsdl"


def test_wsdl_declares_the_public_service_shape() -> None:
    root = etree.parse(str(WSDL), SAFE_PARSER).getroot()
    assert root.get("targetNamespace") == KSS
    port_types = root.findall(q(WSDL_NS, "portType"))
    assert [p.get("name") for p in port_types] == ["KasperskySubscriptionServicePortType"]
    assert [o.get("name") for o in port_types[0].findall(q(WSDL_NS, "operation"))] == ["SubscriptionRequest"]
    binding = root.find(q(WSDL_NS, "binding"))
    soap_binding = binding.find(q(WSDL_SOAP, "binding"))
    assert soap_binding.get("style") == "document"
    assert soap_binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"
    operation = binding.find(q(WSDL_NS, "operation"))
    assert operation.find(q(WSDL_SOAP, "operation")).get("soapAction") == SOAP_ACTION
    header = operation.find(f"{q(WSDL_NS, 'input')}/{q(WSDL_SOAP, 'header')}")
    assert (header.get("part"), header.get("use")) == ("AccessInfo", "literal")
    assert all(b.get("use") == "literal" for b in binding.iter(q(WSDL_SOAP, "body")))
    service = root.find(q(WSDL_NS, "service"))
    assert service.get("name") == "KasperskySubscriptionService"
    address = service.find(f"{q(WSDL_NS, 'port')}/{q(WSDL_SOAP, 'address')}").get("location")
    assert address == "http://localhost:8080/kss/soap/upi"


# ======================================================================================== zeep


@pytest.fixture(scope="module")
def client():
    return zeep.Client(str(WSDL))


def _every_item(client) -> list[dict]:
    """One item of every kind, built from the WSDL's types the way a zeep user would."""
    t = lambda name: client.get_type(q(KSS, name))  # noqa: E731
    e = lambda name: client.get_element(q(EXT, name))  # noqa: E731
    start = dt.datetime(2026, 1, 5, 9, 0)  # zone-less, as real clients send
    return [
        {
            "Activate": t("SubscriptionRequestActivateItem")(
                UnitId=1,
                SubscriberId="sub-1",
                StartTime=start,
                EndTime="indefinite",
                LicenseCount=3,
                ProductId="KISMD",
                ActivationType="Standard",
                TrialDays=30,
                CustomerId="cust-1",
            )
        },
        {
            "GetInfo": t("SubscriptionRequestGetInfoItem")(
                UnitId=2, SubscriberId="sub-1", InfoSection="Subscription, SubscriptionUsage"
            )
        },
        {
            "Renew": t("SubscriptionRequestRenewItem")(
                UnitId=3, SubscriberId="sub-2", EndTime=dt.datetime(2027, 1, 5, tzinfo=dt.UTC)
            )
        },
        {"SoftCancel": t("SubscriptionRequestSoftCancelItem")(UnitId=4, SubscriberId="sub-3", EndTime=start)},
        {"HardCancel": t("SubscriptionRequestHardCancelItem")(UnitId=5, SubscriberId="sub-4", EndTime=start)},
        {
            "Activate": t("SubscriptionRequestActivateItem")(
                UnitId=6,
                SubscriberId="sub-4",
                StartTime=start,
                EndTime="2027-01-05T09:00:00",
                ProductId="KTSMD",
                ActivationType="Secondary",
            )
        },
        {
            "Pause": t("SubscriptionRequestPauseItem")(
                UnitId=7, SubscriberId="sub-5", PauseTime=start, ResumeTime=dt.datetime(2026, 3, 1)
            )
        },
        {"Resume": t("SubscriptionRequestResumeItem")(UnitId=8, SubscriberId="sub-6")},
        {
            "GetDownloadLinks": t("SubscriptionRequestGetDownloadLinksItem")(
                UnitId=9,
                SubscriberId="sub-1",
                Language="pt",
                Alphabet="Latin",
                Region="BR",
                RebrandingCode="ACME",
                Platform="Android",
            )
        },
        {"ChangeLicenseCount": e("ChangeLicenseCount")(UnitId=10, SubscriberId="sub-7", LicenseCount=12)},
        {"ChangeProduct": e("ChangeProduct")(UnitId=11, SubscriberId="sub-8", ProductId="KESB-ADV")},
    ]


def _build(client, items: list[dict], **access) -> etree._Element:
    collection = client.get_type(q(KSS, "SubscriptionRequestItemCollection"))(_value_1=items)
    access_info = client.get_element(q(KSS, "AccessInfo"))(
        UserName=access.get("UserName", "acme_isp"), Password=access.get("Password", "s3cret")
    )
    return client.create_message(
        client.service,
        "SubscriptionRequest",
        Timestamp=dt.datetime(2026, 1, 5, 9, 0),
        TransactionId="zeep-0001",
        SubscriptionRequest=collection,
        _soapheaders=[access_info],
    )


def test_zeep_loads_the_wsdl(client) -> None:
    service = client.wsdl.services["KasperskySubscriptionService"]
    port = service.ports["KasperskySubscriptionServicePort"]
    assert port.binding_options["address"] == "http://localhost:8080/kss/soap/upi"
    operation = port.binding.get("SubscriptionRequest")
    assert operation.soapaction == SOAP_ACTION
    signature = operation.input.signature()
    assert "SubscriptionRequest:" in signature and "SubscriptionRequestItemCollection" in signature
    assert "AccessInfo" in signature


def test_zeep_builds_every_item_kind_and_it_validates(client, schema: etree.XMLSchema) -> None:
    items = _every_item(client)
    envelope = _build(client, items)
    header = envelope.find(q(SOAP_ENV, "Header"))
    body = envelope.find(q(SOAP_ENV, "Body"))
    access = header.find(q(KSS, "AccessInfo"))
    container = body.find(q(KSS, "SubscriptionRequestContainer"))
    assert_valid(schema, access, "zeep AccessInfo")
    assert_valid(schema, container, "zeep SubscriptionRequestContainer")
    # the items arrive in the order given, interleaved kinds and ext items included
    rendered = [child.tag for child in container.find(q(KSS, "SubscriptionRequest"))]
    expected = [q(EXT if k in REQUEST_KINDS_EXT else KSS, k) for item in items for k in item]
    assert rendered == expected
    assert set(rendered) == choice_names("SubscriptionRequestItemCollection")
    activate = container.find(f".//{q(KSS, 'Activate')}")
    assert activate.get(q(EXT, "TrialDays")) == "30" and activate.get(q(EXT, "CustomerId")) == "cust-1"
    assert activate.get("EndTime") == "indefinite" and activate.get("StartTime") == "2026-01-05T09:00:00"
    assert container.find(f".//{q(KSS, 'Pause')}").get(q(EXT, "ResumeTime")) == "2026-03-01T00:00:00"


def test_zeep_builds_a_strict_2_0_request_without_ext(client, schema: etree.XMLSchema) -> None:
    items = [i for i in _every_item(client) if not set(i) & set(REQUEST_KINDS_EXT)]
    for item in items:  # a 2.0 client leaves the ext attributes unset
        for value in item.values():
            for name in ("TrialDays", "CustomerId", "ResumeTime"):
                if name in value:
                    value[name] = None
    container = _build(client, items).find(f"{q(SOAP_ENV, 'Body')}/{q(KSS, 'SubscriptionRequestContainer')}")
    assert_valid(schema, container)
    assert EXT not in etree.tostring(container).decode()


def zeep_items(holder) -> list[tuple[str, object]]:
    """(kind, item) pairs of a zeep-parsed SubscriptionResponse or SubscriptionError, in document order.
    zeep gives each run of one kind as a list (the alternatives have maxOccurs="unbounded"), except
    GetInfo, which is one item per entry."""
    pairs = []
    for entry in holder._value_1 if holder is not None else []:
        ((kind, value),) = entry.items()
        pairs.extend((kind, item) for item in (value if isinstance(value, list) else [value]))
    return pairs


@pytest.mark.parametrize("path", samples("response_"), ids=lambda p: p.name)
def test_zeep_parses_every_sample_answer(client, path: Path) -> None:
    operation = client.service._binding._operations["SubscriptionRequest"]
    result = operation.output.deserialize(etree.parse(str(path), SAFE_PARSER).getroot())
    assert result.TransactionId
    assert result.Timestamp.tzinfo is not None and result.Timestamp.utcoffset() == dt.timedelta(0)
    if result.TransactionError is not None:
        assert isinstance(result.TransactionError.ErrorCode, int)
        assert result.SubscriptionResponse is None and result.SubscriptionError is None
        return
    units = []
    for holder in (result.SubscriptionResponse, result.SubscriptionError):
        for kind, item in zeep_items(holder):
            units.append(item.UnitId)
            if kind == "GetInfo":
                for sub in item.Subscription:
                    assert sub.EndTime == "indefinite" or sub.EndTime.endswith("Z")
    assert units and len(units) == len(set(units)), "every unit is answered once"
    _, container = envelope_parts(path)
    in_document = [int(e.get("UnitId")) for e in container.iter() if e.get("UnitId") is not None]
    assert units == in_document, "zeep keeps the document order"


def test_zeep_reads_ext_answers(client) -> None:
    operation = client.service._binding._operations["SubscriptionRequest"]
    path = SAMPLES / "response_every_item_kind.xml"
    result = operation.output.deserialize(etree.parse(str(path), SAFE_PARSER).getroot())
    by_kind: dict[str, list] = {}
    for holder in (result.SubscriptionResponse, result.SubscriptionError):
        for kind, item in zeep_items(holder):
            by_kind.setdefault(kind, []).append(item)
    assert by_kind["ChangeLicenseCountResult"][0].ActivationCode == "M4TQ8-2ZC6V-RJ7KW-9XHNB"
    assert by_kind["ChangeProductError"][0].ErrorCode == 705
    subscription = by_kind["GetInfo"][0].Subscription[0]
    assert subscription.TrialEndTime == dt.datetime(2026, 4, 1, 8, 0, tzinfo=subscription.TrialEndTime.tzinfo)
    assert subscription.CustomerId == "cust-17" and subscription.MaxLicenseCountThisPeriod == 25


# ================================================================= suds (optional: not a dependency)


def test_suds_public_client_patterns(schema: etree.XMLSchema) -> None:
    """The public suds-based client's own idioms work on our WSDL: lists per kind, HardCancel sent
    before Activate, errors read as error[0], GetInfo read as info['Subscription'][0].
    Runs only where suds is installed (pip install suds)."""
    import suds.client as suds_client

    client = suds_client.Client(WSDL.as_uri(), nosend=True)
    request = client.factory.create("SubscriptionRequestItemCollection")
    token = client.factory.create("AccessInfo")
    token.UserName, token.Password = "acme_isp", "s3cret"
    client.set_options(soapheaders=token)
    activate = client.factory.create("SubscriptionRequestItemCollection.Activate")
    activate._UnitId, activate._SubscriberId, activate._ProductId = "1767603600", "sub-1", "KISMD"
    activate._StartTime, activate._EndTime, activate._LicenseCount = dt.datetime(2026, 1, 5, 9), "indefinite", 5
    cancel = client.factory.create("SubscriptionRequestItemCollection.HardCancel")
    cancel._UnitId, cancel._SubscriberId, cancel._EndTime = "1767603601", "sub-1", dt.datetime(2026, 1, 5, 9)
    request.Activate, request.HardCancel = [activate], [cancel]
    context = client.service.SubscriptionRequest(dt.datetime(2026, 1, 5, 9), "20260105090000", request)
    envelope = etree.fromstring(context.envelope, SAFE_PARSER)
    container = envelope.find(f"{q(SOAP_ENV, 'Body')}/{q(KSS, 'SubscriptionRequestContainer')}")
    assert_valid(schema, container, "suds request")
    assert_valid(schema, envelope.find(f"{q(SOAP_ENV, 'Header')}/{q(KSS, 'AccessInfo')}"), "suds header")
    kinds = [etree.QName(c).localname for c in container.find(q(KSS, "SubscriptionRequest"))]
    assert kinds == ["HardCancel", "Activate"]

    result = context.process_reply((SAMPLES / "response_partial_success.xml").read_bytes())
    for _kind, error in result["SubscriptionError"]:
        assert error[0]._ErrorCode in (303, 401, 501, 202)
    for _kind, success in result["SubscriptionResponse"]:
        assert success[0]._UnitId is not None
    single_info = (SAMPLES / "response_partial_success.xml").read_text(encoding="utf-8")
    single_info = re.sub(r'\s*<GetInfo UnitId="8".*?</GetInfo>', "", single_info, flags=re.S)
    result = context.process_reply(single_info.encode())
    info = result["SubscriptionResponse"]["GetInfo"]
    assert info._SubscriberId and info["Subscription"][0]._Status == "Started"


# ================================================================================ maintenance CLI

if __name__ == "__main__":  # python tests/contract/test_kss_contract.py sync-wsdl
    if sys.argv[1:] != ["sync-wsdl"]:
        sys.exit("usage: python tests/contract/test_kss_contract.py sync-wsdl")
    current = WSDL.read_text(encoding="utf-8")
    fresh = render_wsdl(current)
    if fresh != current:
        WSDL.write_text(fresh, encoding="utf-8")
        print(f"updated the inline schemas in {WSDL.relative_to(ROOT)}")
    else:
        print(f"{WSDL.relative_to(ROOT)} already in sync")
