"""SIM-AUTH-1 as an automatic matrix over the contracts, on a real socket.

* Every operation of contracts/korm-ss.openapi.yaml and contracts/kss-rest.openapi.yaml that takes a path
  parameter, and every partner-scoped listing, called with partner A's token and partner B's ids: B's state
  (KORM subscriptions and statements, KSS subscriptions, bills and report, clock, audit count, approval codes,
  prepaid licences, fault rules, partner record) is identical
  before and after, A gets 404 for B's objects and sees none of B's identifiers.
* Every KSS SOAP item kind with B's SubscriberId under A's AccessInfo: unknown subscriber (5); Activate makes
  A's own subscription and leaves B's alone.
* Every secured operation of both REST contracts with missing, wrong, expired (rotated out by
  rotateCredentials) or foreign credentials: 401; every SOAP item kind with missing, wrong, expired or mixed
  AccessInfo: TransactionError 710; every secured /_sim operation of
  contracts/admin.openapi.yaml with a partner's token or KSS password: 401. Nothing changes for any of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lxml import etree

from tests.wire.conftest import ENDPOINT, SOAP_ACTION, envelope, read_answer

pytestmark = pytest.mark.wire

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer test-admin"}
NOW = "2026-04-15T09:00:00Z"
PERIOD = "2026-04"
KORM_ORDER = {"customer_id": "bob-corp", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "contracts" / name).read_text(encoding="utf-8"))


def _deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(contract: str) -> list[dict[str, Any]]:
    """Every operation of a contract: id, method, path (with the server prefix), path parameters, security,
    and an example body taken from the contract."""
    doc = _load(contract)
    base = doc["servers"][0]["url"]
    found = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [_deref(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]
            body = None
            if "requestBody" in op:
                media = _deref(doc, op["requestBody"])["content"]["application/json"]
                examples = media.get("examples") or {}
                body = _deref(doc, next(iter(examples.values())))["value"] if examples else media.get("example", {})
            found.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": base + path,
                    "body": body,
                    "path_params": [p["name"] for p in params if p["in"] == "path"],
                    "secured": op.get("security", doc.get("security")) != [],
                }
            )
    return found


KORM_OPS = operations("korm-ss.openapi.yaml")
KSS_OPS = operations("kss-rest.openapi.yaml")
ADMIN_OPS = operations("admin.openapi.yaml")
REST_OPS = [("korm", op) for op in KORM_OPS] + [("kss", op) for op in KSS_OPS]

# The SOAP item kinds of contracts/kss-upi.xsd (SubscriptionRequestItemCollection), each as one item on {sid}.
SOAP_ITEMS = {
    "Activate": '<Activate UnitId="1" SubscriberId="{sid}" StartTime="2026-04-15T09:00:00Z" EndTime="indefinite" '
    'LicenseCount="2" ProductId="KIS"/>',
    "Renew": '<Renew UnitId="1" SubscriberId="{sid}" EndTime="2027-04-15T09:00:00Z"/>',
    "SoftCancel": '<SoftCancel UnitId="1" SubscriberId="{sid}" EndTime="2026-04-15T09:00:00Z"/>',
    "HardCancel": '<HardCancel UnitId="1" SubscriberId="{sid}" EndTime="2026-04-15T09:00:00Z"/>',
    "Pause": '<Pause UnitId="1" SubscriberId="{sid}" PauseTime="2026-04-15T09:00:00Z"/>',
    "Resume": '<Resume UnitId="1" SubscriberId="{sid}"/>',
    "GetInfo": '<GetInfo UnitId="1" SubscriberId="{sid}" InfoSection="Subscription, SubscriptionUsage"/>',
    "GetDownloadLinks": '<GetDownloadLinks UnitId="1" SubscriberId="{sid}" Language="en" Platform="Windows"/>',
    "ext:ChangeLicenseCount": '<ext:ChangeLicenseCount UnitId="1" SubscriberId="{sid}" LicenseCount="7"/>',
    "ext:ChangeProduct": '<ext:ChangeProduct UnitId="1" SubscriberId="{sid}" ProductId="KTS"/>',
}


def test_SIM_AUTH_1_the_matrix_covers_every_item_kind_of_the_schema() -> None:
    xsd = (ROOT / "contracts" / "kss-upi.xsd").read_text(encoding="utf-8")
    choice = re.search(r'name="SubscriptionRequestItemCollection">.*?<xs:choice.*?</xs:choice>', xsd, re.DOTALL).group(
        0
    )
    kinds = set(re.findall(r'<xs:element name="(\w+)"', choice)) | {
        f"ext:{n}" for n in re.findall(r'<xs:element ref="ext:(\w+)"', choice)
    }
    assert kinds == set(SOAP_ITEMS)


# ============================================================================== the partners


class Partner:
    def __init__(self, server: Any, admin: httpx.Client, body: dict[str, Any]) -> None:
        response = admin.post("/partners", json={"now": NOW, **body})
        assert response.status_code == 201, response.text
        self.data = response.json()
        self.id, self.token = self.data["id"], self.data["token"]
        self.username, self.password = self.data["kss"]["username"], self.data["kss"]["password"]
        self.server, self.admin = server, admin
        self.rest = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def soap(
        self,
        items: str,
        username: str | None = None,
        password: str | None = None,
        header: bool = True,
        txn: str = "iso-1",
    ) -> httpx.Response:
        body = envelope(
            items,
            txn=txn,
            username=(username or self.username) if header else None,
            password=self.password if password is None else password,
        )
        return httpx.post(
            self.server.url + ENDPOINT,
            content=body.encode(),
            timeout=30,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'},
        )


@pytest.fixture(scope="module")
def module_admin(server: Any) -> Any:
    with httpx.Client(base_url=server.url + "/_sim", headers=ADMIN, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def bob(server: Any, module_admin: httpx.Client, kss_schema: Any) -> Any:
    """Partner B: KORM subscriptions (one active, one stopped), KSS subscribers in several states, a clock
    moved into the next month so statement, bill and report have lines, a fault rule and a journal."""
    b = Partner(server, module_admin, {"programme": "xsp"})
    b.expired_token, b.expired_password = b.token, b.password  # rotated out: B's expired credentials
    rotated = module_admin.post(f"/partners/{b.id}/credentials")
    assert rotated.status_code == 200, rotated.text
    b.token, b.password = rotated.json()["token"], rotated.json()["kss"]["password"]
    b.rest.headers["Authorization"] = f"Bearer {b.token}"
    active = b.rest.post("/korm/v1/subscriptions", json=KORM_ORDER)
    stopped = b.rest.post("/korm/v1/subscriptions", json={**KORM_ORDER, "customer_id": "bob-other"})
    assert active.status_code == stopped.status_code == 201, active.text
    b.korm_ids = {"active": active.json()["id"], "stopped": stopped.json()["id"]}
    items = "".join(
        SOAP_ITEMS["Activate"].replace('UnitId="1"', f'UnitId="{u}"').format(sid=f"bob-{kind}")
        for u, kind in enumerate(("started", "paused", "cancelled"), 1)
    )
    items += '<Pause UnitId="4" SubscriberId="bob-paused"/><SoftCancel UnitId="5" SubscriberId="bob-cancelled"/>'
    answer = read_answer(b.soap(items, txn="bob-seed"), kss_schema)
    assert answer.transaction_error is None and all(u.ok for u in answer.units.values()), answer.order
    b.subscribers = ["bob-started", "bob-paused", "bob-cancelled"]
    b.codes = [answer[u]["ActivationCode"] for u in (1, 2, 3)]
    advanced = module_admin.post(f"/partners/{b.id}/clock/advance", json={"days": 20})
    assert advanced.status_code == 200, advanced.text
    assert b.rest.post(f"/korm/v1/subscriptions/{b.korm_ids['stopped']}/stop").status_code == 200
    yield b
    b.rest.close()


@pytest.fixture
def alice(server: Any, module_admin: httpx.Client) -> Any:
    """Partner A, fresh for each case (an Activate of B's SubscriberId makes A's own)."""
    a = Partner(server, module_admin, {"programme": "xsp"})
    yield a
    a.rest.close()


def _timeless(body: Any) -> Any:
    """An answer without the wall-clock `generated_at` stamps."""
    if isinstance(body, dict):
        return {k: _timeless(v) for k, v in body.items() if k != "generated_at"}
    if isinstance(body, list):
        return [_timeless(v) for v in body]
    return body


def state(p: Partner) -> dict[str, Any]:
    """Everything of a partner that another partner could read or change."""

    def get(path: str, **kw: Any) -> tuple[int, Any]:
        response = p.rest.get(path, **kw)
        return response.status_code, _timeless(response.json())

    def admin(path: str) -> tuple[int, Any]:
        response = p.admin.get(f"/partners/{p.id}{path}")
        return response.status_code, response.json()

    snap: dict[str, Any] = {
        "korm": get("/korm/v1/subscriptions", params={"include_deleted": "true"}),
        "statement": [get(f"/korm/v1/billing/{m}") for m in ("2026-04", "2026-05")],
        "kss": {sid: get(f"/kss/v1/subscriptions/{sid}") for sid in p.subscribers},
        "bill": [get(f"/kss/v1/bills/{m}") for m in ("2026-04", "2026-05")],
        "report": get(f"/kss/v1/reports/{PERIOD}"),
        "clock": admin("/clock"),
        "audit": admin("/audit?limit=1")[1]["total"],
        "approval": admin("/approval-codes"),
        "prepaid": admin("/kss/prepaid"),
        "faults": admin("/faults"),
        "partner": admin(""),
    }
    return snap


@pytest.fixture
def unchanged(bob: Partner) -> Any:
    """B's state before the case; checked again after it. (B's request journal is left out: it is a bounded
    ring that B's own snapshot reads keep filling.)"""
    before = state(bob)
    yield bob
    assert state(bob) == before, "another partner's call read or changed B's state"


def bob_identifiers(b: Partner) -> list[str]:
    return [*b.korm_ids.values(), *b.subscribers, *b.codes, "bob-corp", "bob-other", b.id, b.token]


# ============================================================================== A with B's ids (REST)


def _path_values(b: Partner, op: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Every B object the operation could reach, by path parameter."""
    names = op["path_params"]
    if not names:
        return [("-", {})]
    (name,) = names
    if name == "subscription_id":
        return [(k, {name: v}) for k, v in b.korm_ids.items()]
    if name == "subscriber_id":
        return [(s, {name: s}) for s in b.subscribers]
    if name == "period":
        return [(m, {name: m}) for m in ("2026-04", "2026-05")]
    if name == "sku":
        return [(KORM_ORDER["sku"], {name: KORM_ORDER["sku"]})]
    raise AssertionError(f"no B value for path parameter {name} of {op['id']}")


# B's objects per path parameter, by name (the fixture `bob` makes them).
TARGETS = {
    "subscription_id": ["active", "stopped"],
    "subscriber_id": ["bob-started", "bob-paused", "bob-cancelled"],
    "period": ["2026-04", "2026-05"],
    "sku": [KORM_ORDER["sku"]],
}
CROSS = [
    pytest.param(service, op, target, id=f"SIM-AUTH-1-{service}-{op['id']}-{target}")
    for service, op in REST_OPS
    if op["secured"] and (op["path_params"] or op["method"] == "GET")
    for target in TARGETS.get((op["path_params"] or [None])[0], ["-"])
]


@pytest.mark.parametrize(("service", "op", "target"), CROSS)
def test_SIM_AUTH_1_partner_A_with_partner_B_ids(
    unchanged: Partner, alice: Partner, service: str, op: dict[str, Any], target: str
) -> None:
    b = unchanged
    values = dict(_path_values(b, op))[target]
    response = alice.rest.request(op["method"], op["path"].format(**values), json=op["body"])
    text = response.text
    assert "<html" not in text.lower()
    if op["path_params"] and op["path_params"][0] in ("subscription_id", "subscriber_id"):
        assert response.status_code == 404, text
        assert response.headers["content-type"].startswith("application/problem+json")
    elif op["path_params"] == ["sku"]:  # the catalog is shared, not partner data: A reads what B reads
        assert response.status_code == 200, text
        assert response.json() == b.rest.get(op["path"].format(**values)).json()
    else:
        assert response.status_code == 200, text
    for ident in bob_identifiers(b):
        if ident not in values.values():  # a 404 may name the id A asked for, nothing else of B's
            assert ident not in text, f"A's answer shows B's {ident}"


# ============================================================================== A with B's ids (SOAP)


@pytest.mark.parametrize("kind", [pytest.param(k, id=f"SIM-AUTH-1-soap-{k}") for k in SOAP_ITEMS])
@pytest.mark.parametrize("sid", ["bob-started", "bob-paused", "bob-cancelled"])
def test_SIM_AUTH_1_soap_item_with_partner_B_subscriber(
    unchanged: Partner, alice: Partner, kss_schema: Any, kind: str, sid: str
) -> None:
    answer = read_answer(alice.soap(SOAP_ITEMS[kind].format(sid=sid)), kss_schema)
    assert answer.transaction_error is None
    (unit,) = answer.units.values()
    if kind == "Activate":  # A's own subscriber that happens to have the same id
        assert unit.ok, etree_text(unit)
        assert unit["ActivationCode"] not in unchanged.codes
        assert alice.rest.get(f"/kss/v1/subscriptions/{sid}").status_code == 200
    else:
        assert not unit.ok and unit.code == 5, etree_text(unit)
    for ident in bob_identifiers(unchanged):
        if ident != sid:
            assert ident not in answer_text(answer)


def etree_text(unit: Any) -> str:
    return etree.tostring(unit.el).decode()


def answer_text(answer: Any) -> str:
    return etree.tostring(answer.root).decode()


# ============================================================================== refused credentials


REST_CREDENTIALS = [
    "missing",
    "wrong-token",
    "expired-token",
    "basic-scheme",
    "admin-token",
    "kss-password",
    "empty-bearer",
]


def _rest_headers(kind: str, b: Partner) -> dict[str, str]:
    return {
        "missing": {},
        "wrong-token": {"Authorization": "Bearer " + b.token[:-4] + "zzzz"},
        "expired-token": {"Authorization": "Bearer " + b.expired_token},  # valid until rotateCredentials
        "basic-scheme": {"Authorization": "Basic " + b.token},
        "admin-token": ADMIN,
        "kss-password": {"Authorization": "Bearer " + b.password},
        "empty-bearer": {"Authorization": "Bearer"},
    }[kind]


@pytest.mark.parametrize("cred", REST_CREDENTIALS)
@pytest.mark.parametrize(
    ("service", "op"), [pytest.param(s, op, id=f"SIM-AUTH-1-{s}-{op['id']}") for s, op in REST_OPS if op["secured"]]
)
def test_SIM_AUTH_1_rest_refuses_bad_credentials(
    server: Any, unchanged: Partner, service: str, op: dict[str, Any], cred: str
) -> None:
    b = unchanged
    values = {name: dict(_path_values(b, op))[_path_values(b, op)[0][0]][name] for name in op["path_params"]}
    response = httpx.request(
        op["method"],
        server.url + op["path"].format(**values),
        json=op["body"],
        headers=_rest_headers(cred, b),
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "UNAUTHORIZED"


def test_SIM_AUTH_1_every_rest_operation_is_secured_but_the_contract() -> None:
    assert {op["id"] for _, op in REST_OPS if not op["secured"]} == {"getContract"}


SOAP_CREDENTIALS = [
    "no-header",
    "wrong-password",
    "expired-password",
    "wrong-username",
    "B-user-A-password",
    "A-user-B-password",
    "bearer-token-as-password",
    "empty-password",
]


@pytest.mark.parametrize("cred", SOAP_CREDENTIALS)
@pytest.mark.parametrize("kind", [pytest.param(k, id=f"SIM-AUTH-1-soap-{k}") for k in SOAP_ITEMS])
def test_SIM_AUTH_1_soap_refuses_bad_credentials(
    unchanged: Partner, alice: Partner, kss_schema: Any, kind: str, cred: str
) -> None:
    b = unchanged
    user, password = {
        "no-header": (None, None),
        "wrong-password": (b.username, b.password + "x"),
        "expired-password": (b.username, b.expired_password),
        "wrong-username": (b.username + "x", b.password),
        "B-user-A-password": (b.username, alice.password),
        "A-user-B-password": (alice.username, b.password),
        "bearer-token-as-password": (b.username, b.token),
        "empty-password": (b.username, ""),
    }[cred]
    alice_audit = alice.admin.get(f"/partners/{alice.id}/audit").json()["total"]
    response = b.soap(
        SOAP_ITEMS[kind].format(sid="bob-started"),
        username=user,
        password=password,
        header=user is not None,
        txn=f"refused-{cred}",
    )
    answer = read_answer(response, kss_schema)
    assert answer.transaction_error is not None and answer.transaction_error[0] == 710, response.text
    assert answer.units == {}
    assert alice.admin.get(f"/partners/{alice.id}/audit").json()["total"] == alice_audit


# ============================================================================== the control plane


ADMIN_CREDENTIALS = ["partner-token", "kss-password", "missing", "basic-admin-token"]


@pytest.mark.parametrize("cred", ADMIN_CREDENTIALS)
@pytest.mark.parametrize(
    "op", [pytest.param(op, id=f"SIM-AUTH-1-admin-{op['id']}") for op in ADMIN_OPS if op["secured"]]
)
def test_SIM_AUTH_1_the_control_plane_refuses_partner_tokens(
    server: Any, unchanged: Partner, alice: Partner, op: dict[str, Any], cred: str
) -> None:
    b = unchanged
    # getTime is a partner's clock source: its own token reads it (docs/control-plane.md), another partner's may not
    token = alice.token if op["id"] == "getTime" else b.token
    headers = {
        "partner-token": {"Authorization": f"Bearer {token}"},
        "kss-password": {"Authorization": f"Bearer {b.password}"},
        "missing": {},
        "basic-admin-token": {"Authorization": "Basic test-admin"},
    }[cred]
    values = {"partner_id": b.id, "fault_id": "flt_0", "subscriber_id": "sub-0"}
    partners_before = b.admin.get("/partners").json()
    response = httpx.request(
        op["method"], server.url + op["path"].format(**values), json=op["body"], headers=headers, timeout=30
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHORIZED"
    assert b.admin.get("/partners").json() == partners_before


def test_SIM_AUTH_1_only_health_and_the_contract_are_open_on_the_control_plane() -> None:
    assert {op["id"] for op in ADMIN_OPS if not op["secured"]} == {"health", "getAdminContract"}
