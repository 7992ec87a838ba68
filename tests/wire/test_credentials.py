"""SIM-AUTH-1: rotating a partner's credentials (POST /_sim/partners/{id}/credentials) retires the old ones at
once, like a vendor's expired or revoked credentials, and changes nothing else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ksimkit.simulators.client import KsimAdmin, KsimError
from tests.wire.conftest import ENDPOINT, SOAP_ACTION, envelope

pytestmark = pytest.mark.wire

ACTIVATE = (
    '<Activate UnitId="1" SubscriberId="rot-{n}" StartTime="2026-04-15T09:00:00Z" EndTime="indefinite" '
    'LicenseCount="1" ProductId="KIS"/>'
)


def soap(server: Any, username: str, password: str, n: int) -> str:
    body = envelope(ACTIVATE.format(n=n), txn=f"rot-{n}", username=username, password=password)
    response = httpx.post(
        server.url + ENDPOINT,
        content=body.encode(),
        timeout=30,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'},
    )
    assert response.status_code == 200, response.text
    return response.text


def test_SIM_AUTH_1_rotated_credentials_are_refused_and_the_new_ones_work(server: Any) -> None:
    with KsimAdmin(server.url, "test-admin") as admin:
        old = admin.create_partner(programme="xsp", now="2026-04-15T09:00:00Z")
        order = {"customer_id": "rot-corp", "sku": "KESB-SELECT-PAYG-10-14", "quantity": 10}
        with old.korm() as korm:
            made = korm.post("/subscriptions", json=order)
        assert made.status_code == 201
        before = admin.partner(old.id)

        new = old.rotate_credentials()
        assert new.token != old.token and new.kss_password != old.kss_password
        assert new.kss_username == old.kss_username

        with old.korm() as korm:
            refused = korm.get(f"/subscriptions/{made.json()['id']}")
        assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
        with new.korm() as korm:
            read = korm.get(f"/subscriptions/{made.json()['id']}")
        assert read.status_code == 200 and read.json()["quantity"] == 10
        assert 'ErrorCode="710"' in soap(server, old.kss_username, old.kss_password, 1)
        assert "ActivationCode=" in soap(server, new.kss_username, new.kss_password, 2)
        assert admin.partner(old.id) == before  # nothing else changed
        assert old.audit()["total"] == new.audit()["total"] == 2  # the order and the activation, not the rotation


def test_SIM_AUTH_1_rotating_an_unknown_partner_is_404(server: Any) -> None:
    with httpx.Client(base_url=server.url + "/_sim", headers={"Authorization": "Bearer test-admin"}) as admin:
        response = admin.post("/partners/ptn_000000000000/credentials")
    assert response.status_code == 404 and response.json()["code"] == "PARTNER_NOT_FOUND"
    with pytest.raises(KsimError):
        KsimAdmin(server.url, "test-admin").partner("ptn_000000000000")
