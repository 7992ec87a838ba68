"""Contracts that cannot drift from the server: each example of a REST contract (KORM SS, KSS REST, the control
plane) is compared with what the server answers in the situation the example describes, and every number format a
contract states is checked on what the server sends.

Only what is random is not compared for equality (ids, activation codes, the wall-clock ``generated_at``): it is
checked against the contract's own schema for it instead. The examples each test drives are listed in
``COMPARED``, and a test fails when a contract has an example that is not there.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

import httpx
import pytest

from ksimkit import contracts
from ksimkit.simulators.core.yamlfile import load_yaml
from tests.wire.test_kss_rest import portal, reseller  # noqa: F401  (the worked example of docs/kss-rest.md)

CONTRACTS = ("korm-ss.openapi.yaml", "kss-rest.openapi.yaml", "admin.openapi.yaml")
VOLATILE = {"subscription_id", "id", "partner_id", "activation_code", "generated_at"}


@cache
def contract(name: str) -> dict[str, Any]:
    return load_yaml(contracts.path(name).read_text(encoding="utf-8"))


def example(name: str, key: str) -> Any:
    return contract(name)["components"]["examples"][key]["value"]


def same(expected: Any, actual: Any, where: str = "", volatile: frozenset[str] = frozenset()) -> None:
    """Equal, but for the volatile fields, which only need to be there, of the same type."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (
            f"{where}: {sorted(actual)} != {sorted(expected)}"
        )
        for key, value in expected.items():
            if key in VOLATILE or key in volatile:
                assert type(actual[key]) is type(value), f"{where}/{key}"
            else:
                same(value, actual[key], f"{where}/{key}", volatile)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            same(e, a, f"{where}[{i}]", volatile)
    else:
        assert actual == expected, f"{where}: the server answers {actual!r}, the contract shows {expected!r}"


# Examples this module compares with the server, by contract.
COMPARED = {
    "korm-ss.openapi.yaml": {
        "StatementMay2026",
        "SkuKesbSelectPayg20to49",
        "SkuListKesbSelectPayg",
        "OrderPayg25",
        "OrderYearly10",
        "QuantityChange20",
        "SubscriptionPaygOrdered",
        "SubscriptionPaygReduced",
        "SubscriptionPaygStopped",
        "SubscriptionListOne",
        *(
            f"Problem_{c}"
            for c in (
                "MALFORMED_JSON",
                "UNAUTHORIZED",
                "NOT_FOUND",
                "SUBSCRIPTION_NOT_FOUND",
                "SKU_NOT_FOUND",
                "METHOD_NOT_ALLOWED",
                "DECREASE_NOT_ALLOWED",
                "SWITCH_NOT_ALLOWED",
                "NOT_YET_ACTIVE",
                "SUBSCRIPTION_ACTIVE",
                "MIGRATION_NOT_ALLOWED",
                "IDEMPOTENCY_KEY_REUSED",
                "SUBSCRIPTION_DELETED",
                "PAYLOAD_TOO_LARGE",
                "UNSUPPORTED_MEDIA_TYPE",
                "VALIDATION_ERROR",
                "VALIDATION_ERROR_query",
                "VALIDATION_ERROR_empty",
                "UNKNOWN_SKU",
                "OUT_OF_RANGE",
                "TRIAL_NOT_SUPPORTED",
                "INVALID_APPROVAL_CODE",
                "APPROVAL_CODE_EXPIRED",
                "APPROVAL_CODE_USED",
                "INVALID_EFFECTIVE_DATE",
                "INVALID_ACTIVATION_DATE",
                "SWITCH_TO_OTHER_PRODUCT",
                "SAME_PLAN",
                "INVALID_PERIOD",
                "VALIDATION_ERROR_path",
            )
        ),
        "EmptyObject",
        "MigrationJune",
        "PlanSwitch50to99",
    },
    "kss-rest.openapi.yaml": {
        "BillApril2026",
        "BillEmpty",
        "ReportApril2026",
        "SubscriptionIncreased",
        "AuditPageIncrease",
        *(
            f"Problem_{c}"
            for c in (
                "INVALID_PERIOD",
                "METHOD_NOT_ALLOWED",
                "NOT_FOUND",
                "SUBSCRIBER_NOT_FOUND",
                "UNAUTHORIZED",
                "VALIDATION_ERROR_path",
                "VALIDATION_ERROR_query",
            )
        ),
    },
    "admin.openapi.yaml": {
        "ClockJune",
        "ClockSetJune",
        "ClockModeRunning",
        "KssDeviceActivationAt",
        "KssDeviceActivated",
        "KssOptionsExt",
        "HealthOk",
        "PartnerCreateReseller",
        "PartnerCredentialsReseller",
        "PartnerReseller",
        "PartnerUpdateMsp",
        "PartnerMsp",
        "ClockAdvanceDays",
        "ClockAdvanceHours",
        "ClockAdvanceToDate",
        "KssPrepaidCreateAcme",
        "KssPrepaidAcme",
        "KssPrepaidListOne",
        "KssCodePoolEmpty",
        "KssCodePoolUnlimited",
        "ApprovalCodeCreate15",
        "ApprovalCode15",
        "LegacySeed25",
        "SubscriptionLegacy25",
        "PartnerListOne",
        "EmptyObject",
        "ApprovalCodeListOne",
        "AuditPageOrder",
        "FaultCreateLostOrder",
        "FaultLostOrder",
        "FaultListOne",
        "FaultCreateFlakyKss",
        "JournalVerifyOneOrder",
        "JournalVerifyResultOne",
        "JournalVerifyConforming",
        "JournalPageOrder",
        *(
            f"Problem_{c}"
            for c in (
                "APPROVAL_CODE_EXISTS",
                "CLOCK_BACKWARDS",
                "CODE_NOT_USABLE",
                "CREDENTIALS_IN_USE",
                "FAULT_NOT_FOUND",
                "MALFORMED_JSON",
                "METHOD_NOT_ALLOWED",
                "NOT_FOUND",
                "OUT_OF_RANGE",
                "PARTNER_IN_USE",
                "PARTNER_NOT_FOUND",
                "PAYLOAD_TOO_LARGE",
                "SUBSCRIBER_NOT_FOUND",
                "UNAUTHORIZED",
                "UNKNOWN_PRODUCT",
                "UNKNOWN_SKU",
                "UNSUPPORTED_MEDIA_TYPE",
                "VALIDATION_ERROR",
                "VERIFICATION_FAILED",
            )
        ),
    },
}


@pytest.mark.parametrize("name", CONTRACTS)
def test_SIM_ERR_1_every_example_is_compared(name: str) -> None:
    """A new example fails here until a test drives it from its situation and lists it in ``COMPARED``."""
    examples = set(contract(name)["components"]["examples"])
    assert COMPARED[name] == examples, (sorted(examples - COMPARED[name]), sorted(COMPARED[name] - examples))


# ---------------------------------------------------------------- KORM SS


def korm(server: Any, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/korm/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_KORM_PAYG_2_the_subscription_and_statement_examples_are_the_servers_answers(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    """The PAYG subscription of the examples, ordered on 15 April 2026 09:30, reduced to 20 on 10 May 08:00 and
    stopped on 1 June 07:00. StatementMay2026: ONE licence_days line for the subscription and SKU (not one per
    count), 25 × 9 + 20 × 22 = 665 licence-days × 2.82 ÷ 31 = 60.49, the unit price with 6 decimals."""
    partner = new_partner(now="2026-04-15T09:30:00Z")
    k = "korm-ss.openapi.yaml"
    with korm(server, partner["token"]) as api:
        ordered = api.post("/subscriptions", json=example(k, "OrderPayg25"))
        assert ordered.status_code == 201, ordered.text
        same(example(k, "SubscriptionPaygOrdered"), ordered.json())
        same(example(k, "SubscriptionListOne"), api.get("/subscriptions").json())
        sub = ordered.json()["id"]
        admin.put(f"/partners/{partner['id']}/clock", json={"now": "2026-05-10T08:00:00Z"})
        reduced = api.post(f"/subscriptions/{sub}/quantity", json=example(k, "QuantityChange20"))
        assert reduced.status_code == 200, reduced.text
        same(example(k, "SubscriptionPaygReduced"), reduced.json())
        admin.put(f"/partners/{partner['id']}/clock", json={"now": "2026-06-01T07:00:00Z"})
        stopped = api.post(f"/subscriptions/{sub}/stop", json={})
        assert stopped.status_code == 200, stopped.text
        same(example(k, "SubscriptionPaygStopped"), stopped.json())
        same(example(k, "StatementMay2026"), api.get("/billing/2026-05").json())
        yearly = api.post("/subscriptions", json=example(k, "OrderYearly10"))
        assert yearly.status_code == 201, yearly.text


def test_KORM_PLAN_1_the_sku_examples_are_the_servers_skus(server: Any, partner: dict[str, Any]) -> None:
    with korm(server, partner["token"]) as api:
        same(
            example("korm-ss.openapi.yaml", "SkuKesbSelectPayg20to49"),
            api.get("/products/KESB-SELECT-PAYG-20-49").json(),
        )
        listed = {item["sku"]: item for item in api.get("/products").json()["items"]}
        for item in example("korm-ss.openapi.yaml", "SkuListKesbSelectPayg")["items"]:
            same(item, listed[item["sku"]], item["sku"])


def _pattern(name: str, schema: str) -> re.Pattern[str]:
    return re.compile(contract(name)["components"]["schemas"][schema]["pattern"])


def test_KORM_YEAR_3_every_number_format_the_contract_states_is_what_the_server_sends(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    """Money with exactly 2 decimals; a derived unit price (licence_days, yearly_increase) with exactly 6, others
    with 2; the gross from the exact price: units × unit_price within units × 0.0000005 of it. The Yearly line is
    docs/korm.md's worked example of KORM-YEAR-3: 20 × 28.20 from 15 March 2026, +10 on 1 September 2026 →
    10 × 28.20 × 195 ÷ 365 = 150.66 (195 days left in the subscription year, which ends on 15 March 2027)."""
    partner = new_partner(now="2026-03-15T09:00:00Z")
    money, unit_price = _pattern("korm-ss.openapi.yaml", "Money"), _pattern("korm-ss.openapi.yaml", "UnitPrice")
    with korm(server, partner["token"]) as api:
        yearly = api.post(
            "/subscriptions", json={"customer_id": "c-y", "sku": "KESB-SELECT-YEARLY-20-49", "quantity": 20}
        ).json()
        api.post("/subscriptions", json={"customer_id": "c-p", "sku": "KESB-ADV-PAYG-20-49", "quantity": 23})
        admin.post(f"/partners/{partner['id']}/clock/advance", json={"to": "2026-09-01"})
        assert api.post(f"/subscriptions/{yearly['id']}/quantity", json={"quantity": 30}).status_code == 200
        admin.post(f"/partners/{partner['id']}/clock/advance", json={"to": "2026-10-01"})
        lines = [line for period in ("2026-03", "2026-09") for line in api.get(f"/billing/{period}").json()["lines"]]
    kinds = {line["kind"] for line in lines}
    assert {"licence_days", "yearly_fee", "yearly_increase"} <= kinds
    for line in lines:
        for field in ("gross", "discount", "amount"):
            assert money.fullmatch(line[field]), line
        assert unit_price.fullmatch(line["unit_price"]), line
        decimals = len(line["unit_price"].split(".")[1])
        assert decimals == (6 if line["kind"] in ("licence_days", "yearly_increase") else 2), line
        product = Decimal(line["units"]) * Decimal(line["unit_price"])
        assert abs(product - Decimal(line["gross"])) <= Decimal(line["units"]) * Decimal("0.0000005") + Decimal("0.005")
    (increase,) = [line for line in lines if line["kind"] == "yearly_increase"]
    assert (increase["units"], increase["days"], increase["unit_price"], increase["amount"]) == (
        10,
        195,
        "15.065753",
        "150.66",
    )
    assert (Decimal(increase["unit_price"]) * 10).quantize(Decimal("0.01"), ROUND_HALF_UP) == Decimal("150.66")


# ---------------------------------------------------------------- KSS REST (the worked example of docs/kss-rest.md)


def test_KSS_BILL_1_the_kss_rest_examples_are_the_servers_answers(
    portal: httpx.Client,  # noqa: F811
    reseller: dict[str, Any],
) -> None:  # noqa: F811
    same(example("kss-rest.openapi.yaml", "BillApril2026"), portal.get("/bills/2026-04").json())
    same(example("kss-rest.openapi.yaml", "BillEmpty"), portal.get("/bills/2026-03").json())
    same(example("kss-rest.openapi.yaml", "ReportApril2026"), portal.get("/reports/2026-04").json())
    same(example("kss-rest.openapi.yaml", "SubscriptionIncreased"), portal.get("/subscriptions/acme-1").json())


# ---------------------------------------------------------------- the control plane


def test_SIM_CLOCK_1_the_clock_examples_are_the_servers_answers(admin: httpx.Client, new_partner: Any) -> None:
    partner = new_partner(timezone="Europe/Berlin", now="2026-05-01T00:00:00Z")
    answer = admin.put(f"/partners/{partner['id']}/clock", json=example("admin.openapi.yaml", "ClockSetJune"))
    same(example("admin.openapi.yaml", "ClockJune"), answer.json())
    same(example("admin.openapi.yaml", "ClockJune"), admin.get(f"/partners/{partner['id']}/clock").json())
    running = admin.put(f"/partners/{partner['id']}/clock/mode", json=example("admin.openapi.yaml", "ClockModeRunning"))
    assert running.status_code == 200 and running.json()["mode"] == "running"


def test_KSS_CODE_1_the_device_activation_and_options_examples_are_the_servers_answers(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    from tests.wire.test_kss_rest import activate, ok  # the worked example's KSS helpers

    partner = new_partner(programme="reseller", now="2026-03-02T09:00:00Z")
    ok(server, partner["id"], activate("cust-17/endpoint-pool", "cust-17", "KESB-SELECT", 20))
    admin.post(f"/partners/{partner['id']}/clock/advance", json={"to": "2026-03-02T10:00:00Z"})
    answer = admin.post(
        f"/partners/{partner['id']}/kss/subscriptions/cust-17/endpoint-pool/device-activations",
        json=example("admin.openapi.yaml", "KssDeviceActivationAt"),
    )
    assert answer.status_code == 201, answer.text
    same(example("admin.openapi.yaml", "KssDeviceActivated"), answer.json())
    options = admin.put(f"/partners/{partner['id']}/kss/options", json=example("admin.openapi.yaml", "KssOptionsExt"))
    same(example("admin.openapi.yaml", "KssOptionsExt"), options.json())
    assert admin.get(f"/partners/{partner['id']}/kss/options").json() == options.json()


def test_SIM_ERR_1_generated_at_is_a_date_time() -> None:
    """The one volatile field that is not an id: an RFC 3339 instant in UTC, as the schemas say."""
    for name, key in (("korm-ss.openapi.yaml", "StatementMay2026"), ("kss-rest.openapi.yaml", "BillApril2026")):
        value = example(name, key)["generated_at"]
        assert dt.datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset() == dt.timedelta(0)


def test_KORM_RANGE_1_KORM_YEAR_2_a_yearly_plan_never_leaves_its_band(server: Any, partner: dict[str, Any]) -> None:
    """docs/korm.md's band rule: 25 × KESB-SELECT-YEARLY-20-49 can grow to 49, never to 50, never below 25, never
    switch; the answers are the contract's problems."""
    with korm(server, partner["token"]) as api:
        sub = api.post(
            "/subscriptions", json={"customer_id": "c-b", "sku": "KESB-SELECT-YEARLY-20-49", "quantity": 25}
        ).json()
        quantity = f"/subscriptions/{sub['id']}/quantity"
        assert api.post(quantity, json={"quantity": 49}).status_code == 200
        over = api.post(quantity, json={"quantity": 50})
        assert (over.status_code, over.json()["code"], over.json()["licence_min"], over.json()["licence_max"]) == (
            422,
            "OUT_OF_RANGE",
            20,
            49,
        )
        under = api.post(quantity, json={"quantity": 24})
        assert (under.status_code, under.json()["code"]) == (409, "DECREASE_NOT_ALLOWED")
        switch = api.post(
            f"/subscriptions/{sub['id']}/switch-plan", json={"sku": "KESB-SELECT-YEARLY-50-99", "quantity": 60}
        )
        assert (switch.status_code, switch.json()["code"]) == (409, "SWITCH_NOT_ALLOWED")
        assert api.get(f"/subscriptions/{sub['id']}").json()["quantity"] == 49


# What the control plane makes up each time: credentials, the faker contact, the system time of creation, the
# version of the running ksim, ids of rows shared by every partner, approval codes.
ADMIN_VOLATILE = frozenset(
    {"token", "username", "password", "contact", "email", "country", "created_at", "version", "code"}
)


def test_SIM_AUTH_1_the_partner_examples_are_the_servers_answers(admin: httpx.Client, server: Any) -> None:
    a = "admin.openapi.yaml"
    same(example(a, "HealthOk"), httpx.get(server.url + "/_sim/health").json(), volatile=ADMIN_VOLATILE)
    created = admin.post("/partners", json=example(a, "PartnerCreateReseller"))
    assert created.status_code == 201, created.text
    same(example(a, "PartnerCredentialsReseller"), created.json(), volatile=ADMIN_VOLATILE)
    pid = created.json()["id"]
    same(example(a, "PartnerReseller"), admin.get(f"/partners/{pid}").json(), volatile=ADMIN_VOLATILE)
    same(
        example(a, "PartnerMsp"),
        admin.patch(f"/partners/{pid}", json=example(a, "PartnerUpdateMsp")).json(),
        volatile=ADMIN_VOLATILE,
    )
    prepaid = admin.post(f"/partners/{pid}/kss/prepaid", json=example(a, "KssPrepaidCreateAcme"))
    assert prepaid.status_code == 201, prepaid.text
    same(example(a, "KssPrepaidAcme"), prepaid.json(), volatile=ADMIN_VOLATILE)
    same(example(a, "KssPrepaidListOne"), admin.get(f"/partners/{pid}/kss/prepaid").json(), volatile=ADMIN_VOLATILE)
    for pool in ("KssCodePoolEmpty", "KssCodePoolUnlimited"):
        same(example(a, pool), admin.put(f"/partners/{pid}/kss/code-pool", json=example(a, pool)).json())
    approval = admin.post(f"/partners/{pid}/approval-codes", json=example(a, "ApprovalCodeCreate15"))
    assert approval.status_code == 201, approval.text
    same(example(a, "ApprovalCode15"), approval.json(), volatile=ADMIN_VOLATILE)
    legacy = admin.post(f"/partners/{pid}/korm/legacy-subscriptions", json=example(a, "LegacySeed25"))
    assert legacy.status_code == 201, legacy.text
    same(example(a, "SubscriptionLegacy25"), legacy.json(), volatile=ADMIN_VOLATILE | {"at", "updated_at"})
    for advance in ("ClockAdvanceHours", "ClockAdvanceDays", "ClockAdvanceToDate"):
        moved = admin.post(f"/partners/{pid}/clock/advance", json=example(a, advance))
        assert moved.status_code == 200, (advance, moved.text)


# ---------------------------------------------------------------- KORM problems

PROBLEM_FIELDS = ("type", "title", "status", "code", "rule")


def test_SIM_ERR_1_every_korm_problem_example_is_the_servers_problem(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    """Each Problem_* example of the KORM contract against the server's answer to a request that causes it: the
    same type, title, status, code and rule, and the same fields (``detail`` and ``errors`` say it in their words)."""
    partner = new_partner(now="2026-04-15T09:00:00Z")
    pid, url = partner["id"], server.url + "/korm/v1"
    api = korm(server, partner["token"])

    def order(**body: Any) -> httpx.Response:
        return api.post(
            "/subscriptions", json={"customer_id": "c", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25, **body}
        )

    payg = order().json()["id"]
    yearly = order(sku="KESB-SELECT-YEARLY-20-49").json()["id"]
    later = order(activation_date="2026-05-01").json()["id"]
    stopped = order().json()["id"]
    api.post(f"/subscriptions/{stopped}/stop", json={})
    expired = admin.post(
        f"/partners/{pid}/approval-codes", json={"percent": "10.00", "expires_on": "2026-04-16"}
    ).json()
    used = admin.post(f"/partners/{pid}/approval-codes", json={"percent": "10.00", "expires_on": "2026-12-31"}).json()
    order(approval_code=used["code"])
    api.post(
        "/subscriptions",
        json={"customer_id": "c", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25},
        headers={"Idempotency-Key": "k-1"},
    )
    causes: dict[str, Any] = {
        "MALFORMED_JSON": lambda: api.post(
            "/subscriptions", content=b'{"customer_id":', headers={"Content-Type": "application/json"}
        ),
        "UNAUTHORIZED": lambda: httpx.get(url + "/subscriptions"),
        "NOT_FOUND": lambda: api.get("/nothing-here"),
        "SUBSCRIPTION_NOT_FOUND": lambda: api.get("/subscriptions/sub_0000000000000000"),
        "SKU_NOT_FOUND": lambda: api.get("/products/NOPE-PAYG-1-2"),
        "METHOD_NOT_ALLOWED": lambda: api.delete("/subscriptions"),
        "DECREASE_NOT_ALLOWED": lambda: api.post(f"/subscriptions/{yearly}/quantity", json={"quantity": 24}),
        "SWITCH_NOT_ALLOWED": lambda: api.post(
            f"/subscriptions/{yearly}/switch-plan", json={"sku": "KESB-SELECT-YEARLY-50-99", "quantity": 60}
        ),
        "NOT_YET_ACTIVE": lambda: api.post(f"/subscriptions/{later}/quantity", json={"quantity": 30}),
        "SUBSCRIPTION_ACTIVE": lambda: api.post(f"/subscriptions/{payg}/reactivate", json={}),
        "MIGRATION_NOT_ALLOWED": lambda: api.post("/migrations", json={}),
        "IDEMPOTENCY_KEY_REUSED": lambda: api.post(
            "/subscriptions",
            headers={"Idempotency-Key": "k-1"},
            json={"customer_id": "d", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 26},
        ),
        "SUBSCRIPTION_DELETED": lambda: api.get(f"/subscriptions/{stopped}"),
        "PAYLOAD_TOO_LARGE": lambda: api.post(
            "/subscriptions", content=b" " * 1_000_001, headers={"Content-Type": "application/json"}
        ),
        "UNSUPPORTED_MEDIA_TYPE": lambda: api.post(
            "/subscriptions", content=b"quantity=1", headers={"Content-Type": "text/plain"}
        ),
        "VALIDATION_ERROR": lambda: order(quantity=0, colour="red"),
        "VALIDATION_ERROR_query": lambda: api.get("/products", params={"billing_model": "monthly"}),
        "VALIDATION_ERROR_empty": lambda: api.post(f"/subscriptions/{payg}/stop", json={"force": True}),
        "UNKNOWN_SKU": lambda: order(sku="KESB-SELECT-PAYG-1-2"),
        "OUT_OF_RANGE": lambda: order(quantity=55),
        "TRIAL_NOT_SUPPORTED": lambda: order(trial=True),
        "INVALID_APPROVAL_CODE": lambda: order(approval_code="APR-NOPE0000"),
        "APPROVAL_CODE_EXPIRED": lambda: order(approval_code=expired["code"]),
        "APPROVAL_CODE_USED": lambda: order(approval_code=used["code"]),
        "INVALID_EFFECTIVE_DATE": lambda: api.post(
            f"/subscriptions/{payg}/quantity", json={"quantity": 30, "effective_date": "2026-04-20"}
        ),
        "INVALID_ACTIVATION_DATE": lambda: order(activation_date="2026-04-01"),
        "SWITCH_TO_OTHER_PRODUCT": lambda: api.post(
            f"/subscriptions/{payg}/switch-plan", json={"sku": "KESB-ADV-PAYG-50-99", "quantity": 60}
        ),
        "SAME_PLAN": lambda: api.post(
            f"/subscriptions/{payg}/switch-plan", json={"sku": "KESB-SELECT-PAYG-20-49", "quantity": 30}
        ),
        "INVALID_PERIOD": lambda: api.get("/billing/2026-13"),
        "VALIDATION_ERROR_path": lambda: api.get("/subscriptions/" + "s" * 65),
    }
    admin.post(f"/partners/{pid}/clock/advance", json={"to": "2026-04-17"})  # the first approval code expires
    examples = {
        k.removeprefix("Problem_"): v["value"]
        for k, v in contract("korm-ss.openapi.yaml")["components"]["examples"].items()
        if k.startswith("Problem_")
    }
    assert set(causes) == set(examples)
    drift = []
    for name, cause in causes.items():
        answer = cause()
        assert answer.headers["content-type"].startswith("application/problem+json"), (name, answer.text)
        found, shown = answer.json(), examples[name]
        if {k: found.get(k) for k in PROBLEM_FIELDS} != {k: shown.get(k) for k in PROBLEM_FIELDS} or set(found) != set(
            shown
        ):
            drift.append((name, {k: found.get(k) for k in PROBLEM_FIELDS}, sorted(set(found) ^ set(shown))))
    api.close()
    assert drift == [], "\n".join(map(str, drift))


# ---------------------------------------------------------------- the other problems and the harness examples


def problem_drift(name: str, causes: dict[str, Any], extra: tuple[str, ...] = ()) -> list[Any]:
    """Each cause's answer against the contract's Problem_* example of that name: what ``PROBLEM_FIELDS`` (and
    ``extra``) hold, and the same set of fields. Also checks that every Problem_* example has a cause."""
    examples = {
        k.removeprefix("Problem_"): v["value"]
        for k, v in contract(name)["components"]["examples"].items()
        if k.startswith("Problem_")
    }
    assert set(causes) == set(examples)
    drift = []
    for code, cause in causes.items():
        answer = cause()
        assert answer.headers["content-type"].startswith("application/problem+json"), (code, answer.text)
        found, shown = answer.json(), examples[code]
        fields = PROBLEM_FIELDS + extra
        if {k: found.get(k) for k in fields} != {k: shown.get(k) for k in fields} or set(found) != set(shown):
            drift.append((code, {k: found.get(k) for k in fields}, sorted(set(found) ^ set(shown))))
    return drift


def test_SIM_ERR_1_every_kss_rest_problem_example_is_the_servers_problem(
    server: Any,
    portal: httpx.Client,  # noqa: F811
    reseller: dict[str, Any],
) -> None:  # noqa: F811
    causes: dict[str, Any] = {
        "INVALID_PERIOD": lambda: portal.get("/bills/2026-13"),
        "METHOD_NOT_ALLOWED": lambda: portal.delete("/bills/2026-04"),
        "NOT_FOUND": lambda: portal.get("/bills/2026/04"),
        "SUBSCRIBER_NOT_FOUND": lambda: portal.get("/subscriptions/acme-9"),
        "UNAUTHORIZED": lambda: httpx.get(server.url + "/kss/v1/bills/2026-04"),
        "VALIDATION_ERROR_path": lambda: portal.get("/subscriptions/" + "a" * 201),
        "VALIDATION_ERROR_query": lambda: portal.get("/audit", params={"limit": 0}),
    }
    assert problem_drift("kss-rest.openapi.yaml", causes, ("errors",)) == []


def test_KSS_AUDIT_1_the_audit_page_example_is_the_servers_page(
    portal: httpx.Client,  # noqa: F811
    reseller: dict[str, Any],
) -> None:  # noqa: F811
    page = portal.get("/audit", params={"object_id": "acme-1", "offset": 2, "limit": 1})
    same(example("kss-rest.openapi.yaml", "AuditPageIncrease"), page.json(), volatile=frozenset({"recorded_at"}))


def test_SIM_ERR_1_every_control_plane_problem_example_is_the_servers_problem(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    from tests.wire.test_kss_rest import activate, ok  # the worked example's KSS helpers

    partner = new_partner(programme="reseller", now="2026-03-02T09:00:00Z")
    pid = partner["id"]
    ok(server, pid, activate("cust-17/endpoint-pool", "cust-17", "KESB-SELECT", 20))
    admin.post(
        f"/partners/{pid}/approval-codes", json={"percent": "15.00", "expires_on": "2026-12-31", "code": "APR-1A2B3C4D"}
    )
    admin.post(f"/partners/{pid}/faults", json=example("admin.openapi.yaml", "FaultCreateLostOrder"))
    with korm(server, partner["token"]) as api:
        for _ in range(2):
            try:
                api.post("/subscriptions", json={"customer_id": "c", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25})
            except httpx.TransportError:
                pass  # the fault drops the first answer
    devices = f"/partners/{pid}/kss/subscriptions/cust-17/endpoint-pool/device-activations"
    legacy = f"/partners/{pid}/korm/legacy-subscriptions"
    causes: dict[str, Any] = {
        "APPROVAL_CODE_EXISTS": lambda: admin.post(
            f"/partners/{pid}/approval-codes",
            json={"percent": "15.00", "expires_on": "2026-12-31", "code": "APR-1A2B3C4D"},
        ),
        "CLOCK_BACKWARDS": lambda: admin.put(f"/partners/{pid}/clock", json={"now": "2026-03-01T00:00:00Z"}),
        "CODE_NOT_USABLE": lambda: admin.post(devices, json={"at": "2026-03-02T08:00:00Z"}),
        "CREDENTIALS_IN_USE": lambda: admin.post("/partners", json={"token": partner["token"]}),
        "FAULT_NOT_FOUND": lambda: admin.get(f"/partners/{pid}/faults/flt_000000000000"),
        "MALFORMED_JSON": lambda: admin.post("/partners", content=b"x", headers={"Content-Type": "application/json"}),
        "METHOD_NOT_ALLOWED": lambda: admin.put(f"/partners/{pid}", json={}),
        "NOT_FOUND": lambda: admin.get(f"/partners/{pid}/clocks"),
        "OUT_OF_RANGE": lambda: admin.post(
            legacy, json={**example("admin.openapi.yaml", "LegacySeed25"), "quantity": 55}
        ),
        "PARTNER_IN_USE": lambda: admin.patch(f"/partners/{pid}", json={"billing_period": "30_days"}),
        "PARTNER_NOT_FOUND": lambda: admin.get("/partners/ptn_000000000000"),
        "PAYLOAD_TOO_LARGE": lambda: admin.post(
            "/partners", content=b" " * 1_000_001, headers={"Content-Type": "application/json"}
        ),
        "SUBSCRIBER_NOT_FOUND": lambda: admin.post(
            f"/partners/{pid}/kss/subscriptions/cust-99/cloud/device-activations", json={}
        ),
        "UNAUTHORIZED": lambda: httpx.get(server.url + "/_sim/partners"),
        "UNKNOWN_PRODUCT": lambda: admin.post(
            f"/partners/{pid}/kss/prepaid",
            json={**example("admin.openapi.yaml", "KssPrepaidCreateAcme"), "product_id": "KXYZ"},
        ),
        "UNKNOWN_SKU": lambda: admin.post(
            legacy, json={**example("admin.openapi.yaml", "LegacySeed25"), "sku": "KESB-SELECT-PAYG-1-9"}
        ),
        "UNSUPPORTED_MEDIA_TYPE": lambda: admin.post("/partners", content=b"x", headers={"Content-Type": "text/plain"}),
        "VALIDATION_ERROR": lambda: admin.post(f"/partners/{pid}/clock/advance", json={"days": 40000}),
        "VERIFICATION_FAILED": lambda: admin.post(
            f"/partners/{pid}/journal/verify", json=example("admin.openapi.yaml", "JournalVerifyOneOrder")
        ),
    }
    drift = problem_drift("admin.openapi.yaml", causes)
    assert drift == [], "\n".join(map(str, drift))


def test_KORM_MIG_1_the_migration_and_plan_switch_examples_are_the_servers_answers(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    """Two legacy subscriptions migrated on 1 June 2026 (MigrationJune, with the empty body EmptyObject); a PAYG
    subscription switched to the 50-99 band (PlanSwitch50to99)."""
    k, a = "korm-ss.openapi.yaml", "admin.openapi.yaml"
    partner = new_partner(now="2026-05-20T09:00:00Z")
    for _ in range(2):
        seeded = admin.post(f"/partners/{partner['id']}/korm/legacy-subscriptions", json=example(a, "LegacySeed25"))
        assert seeded.status_code == 201, seeded.text
    admin.put(f"/partners/{partner['id']}/clock", json={"now": "2026-06-01T08:00:00Z"})
    with korm(server, partner["token"]) as api:
        migrated = api.post("/migrations", json=example(k, "EmptyObject"))
        assert migrated.status_code == 200, migrated.text
        same(example(k, "MigrationJune"), migrated.json(), volatile=frozenset({"subscription_ids"}))
        assert len(migrated.json()["subscription_ids"]) == 2
        sub = api.post("/subscriptions", json=example(k, "OrderPayg25")).json()["id"]
        switched = api.post(f"/subscriptions/{sub}/switch-plan", json=example(k, "PlanSwitch50to99"))
        assert switched.status_code == 200, switched.text
        assert (switched.json()["sku"], switched.json()["quantity"]) == ("KESB-SELECT-PAYG-50-99", 60)


def test_SIM_AUTH_1_the_listing_and_audit_examples_are_the_servers_answers(server: Any, admin: httpx.Client) -> None:
    """PartnerListOne (the partner among the others of this server), EmptyObject (a partner of all defaults),
    ApprovalCodeListOne (the code used by an order) and AuditPageOrder (that order, the only entry)."""
    a = "admin.openapi.yaml"
    assert admin.post("/partners", json=example(a, "EmptyObject")).status_code == 201
    created = admin.post("/partners", json={**example(a, "PartnerCreateReseller"), "now": "2026-04-15T08:00:00Z"})
    assert created.status_code == 201, created.text
    pid, token = created.json()["id"], created.json()["token"]
    (listed,) = [item for item in admin.get("/partners").json()["items"] if item["id"] == pid]
    same(example(a, "PartnerListOne"), {"items": [listed]}, volatile=ADMIN_VOLATILE)
    admin.put(f"/partners/{pid}/clock", json={"now": "2026-04-15T09:30:00Z"})
    code = admin.post(f"/partners/{pid}/approval-codes", json=example(a, "ApprovalCodeCreate15")).json()["code"]
    with korm(server, token) as api:
        ordered = api.post(
            "/subscriptions",
            json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25, "approval_code": code},
            headers={"X-Ksim-Actor": "broker-billing-job"},
        )
        assert ordered.status_code == 201, ordered.text
    same(
        example(a, "ApprovalCodeListOne"),
        admin.get(f"/partners/{pid}/approval-codes").json(),
        volatile=ADMIN_VOLATILE | {"used_by"},
    )
    same(
        example(a, "AuditPageOrder"),
        admin.get(f"/partners/{pid}/audit", params={"service": "korm"}).json(),
        volatile=ADMIN_VOLATILE | {"object_id", "recorded_at", "approval_code"},
    )


# The journal's clock and timing, the headers the HTTP client adds, the answer's body (shortened in the example).
JOURNAL_VOLATILE = frozenset({"at", "duration_ms", "fault", "headers", "body", "body_bytes"})


def test_SIM_ERR_1_the_fault_and_journal_examples_are_the_servers_answers(
    server: Any, admin: httpx.Client, new_partner: Any
) -> None:
    """FaultCreateLostOrder gives FaultLostOrder, which the order it drops spends (FaultListOne); the journal then
    holds that order (JournalVerifyOneOrder → JournalVerifyResultOne), none that broke the contract
    (JournalVerifyConforming), and JournalPageOrder is an order with an unknown query parameter."""
    a = "admin.openapi.yaml"
    partner = new_partner(now="2026-04-15T09:00:00Z")
    pid = partner["id"]
    created = admin.post(f"/partners/{pid}/faults", json=example(a, "FaultCreateLostOrder"))
    assert created.status_code == 201, created.text
    same(example(a, "FaultLostOrder"), created.json(), volatile=ADMIN_VOLATILE)
    same(
        example(a, "FaultLostOrder"),
        admin.get(f"/partners/{pid}/faults/{created.json()['id']}").json(),
        volatile=ADMIN_VOLATILE,
    )
    body = b'{"customer_id":"acme","sku":"KESB-SELECT-PAYG-20-49","quantity":25}'
    with korm(server, partner["token"]) as api:
        with pytest.raises(httpx.TransportError):
            api.post("/subscriptions", content=body, headers={"Content-Type": "application/json"})
        same(example(a, "FaultListOne"), admin.get(f"/partners/{pid}/faults").json(), volatile=ADMIN_VOLATILE)
        verified = admin.post(f"/partners/{pid}/journal/verify", json=example(a, "JournalVerifyOneOrder"))
        assert verified.status_code == 200, verified.text
        same(example(a, "JournalVerifyResultOne"), verified.json())
        conforming = admin.post(f"/partners/{pid}/journal/verify", json=example(a, "JournalVerifyConforming"))
        assert conforming.status_code == 200 and conforming.json()["matched"] == 0, conforming.text
        assert admin.delete(f"/partners/{pid}/journal").status_code in (200, 204)
        assert admin.delete(f"/partners/{pid}/faults").status_code in (200, 204)
        ordered = api.post(
            "/subscriptions", params={"dry_run": "1"}, content=body, headers={"Content-Type": "application/json"}
        )
        assert ordered.status_code == 201, ordered.text
    page = admin.get(f"/partners/{pid}/journal").json()
    same(example(a, "JournalPageOrder"), page, volatile=ADMIN_VOLATILE | JOURNAL_VOLATILE)
    shown = example(a, "JournalPageOrder")["items"][0]["request"]
    assert (page["items"][0]["request"]["body"], page["items"][0]["request"]["body_bytes"]) == (
        shown["body"],
        shown["body_bytes"],
    )
    flaky = admin.post(f"/partners/{pid}/faults", json=example(a, "FaultCreateFlakyKss"))
    assert flaky.status_code == 201, flaky.text
