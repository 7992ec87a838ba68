"""What a user's project does with the installed wheel: the plugin's fixtures over real sockets."""

import datetime as dt

import httpx
import pytest

import scenarios

KSS = "{http://schemas.kaspersky.com/services/subscription/2.0/}"


def test_the_host_packages_are_untouched():
    assert scenarios.OWNER == "host"


@pytest.mark.ksim_partner(now="2026-04-15T09:00:00Z")
def test_korm_order_and_clock_move(ksim_partner, korm_client):
    answer = korm_client.post(
        "/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25}
    )
    assert answer.status_code == 201, answer.text
    ksim_partner.advance(to="2026-05-01")
    assert korm_client.get("/billing/2026-04").json()["totals"]["amount"] == "37.60"


@pytest.mark.ksim_partner(programme="xsp", now="2026-04-15T09:00:00Z")
def test_kss_activate_over_zeep(kss_client):
    t = lambda name: kss_client.get_type(KSS + name)  # noqa: E731
    items = t("SubscriptionRequestItemCollection")(
        _value_1=[
            {
                "Activate": t("SubscriptionRequestActivateItem")(
                    UnitId=1,
                    SubscriberId="sub-1",
                    StartTime=dt.datetime(2026, 4, 15, 9, tzinfo=dt.UTC),
                    EndTime="indefinite",
                    ProductId="KIS",
                    LicenseCount=3,
                )
            },
        ]
    )
    answer = kss_client.service.SubscriptionRequest(
        Timestamp=dt.datetime.now(dt.UTC), TransactionId="t-1", SubscriptionRequest=items
    )
    assert answer.TransactionError is None
    [(kind, results)] = answer.SubscriptionResponse._value_1[0].items()
    assert kind == "Activate" and len(results[0].ActivationCode) == 23


@pytest.mark.ksim_partner(now="2026-04-15T09:00:00Z")
def test_a_fault_then_the_journal(ksim_partner, korm_client):
    ksim_partner.inject_fault("status", operation="listProducts", status=503, times=1)
    assert korm_client.get("/products").status_code == 503
    assert korm_client.get("/products").status_code == 200
    ksim_partner.verify(2, operation="listProducts")


@pytest.mark.parametrize("to", ["2026-13-01", "2026-02-30", "soon", "2026-04-15T25:00:00Z"])
@pytest.mark.ksim_partner(now="2026-04-15T09:00:00Z")
def test_SIM_ERR_1_a_bad_date_is_refused_without_the_dev_extras(ksim_partner, to):
    """Format checks must not depend on optional packages: a wheel alone refuses an impossible date."""
    with httpx.Client(base_url=ksim_partner.base_url) as admin:
        answer = admin.post(
            f"/_sim/partners/{ksim_partner.id}/clock/advance",
            json={"to": to},
            headers={"Authorization": "Bearer ksim-admin"},
        )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_every_format_the_contracts_use_is_checked():
    from jsonschema import FormatChecker

    assert {"date", "date-time", "email", "uri", "uri-reference"} <= set(FormatChecker().checkers)
