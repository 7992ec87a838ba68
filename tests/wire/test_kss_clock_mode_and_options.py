"""A running clock per partner (SIM-CLOCK-1), pure 2.0 answers for pure 2.0 requests, and FirstActivationTime only
after a simulated device activation, over the wire (docs/control-plane.md, docs/kss-wire.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from lxml import etree

from tests.wire.conftest import EXT, KSS, KssPartner, q

UTC = dt.UTC


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def activate(unit: int, sid: str, start: str) -> str:
    return f'<Activate UnitId="{unit}" SubscriberId="{sid}" StartTime="{start}" EndTime="indefinite" ProductId="KIS"/>'


def pure(partner: KssPartner, items: str) -> httpx.Response:
    """A request in the 2.0 namespace only: no ext prefix declared anywhere."""
    body = partner.envelope(items).replace(f' xmlns:ext="{EXT}"', "")
    assert EXT not in body
    return partner.post(body)


# ---------------------------------------------------------------- the running clock


def test_SIM_CLOCK_1_a_running_clock_follows_wall_time_and_still_jumps(kss_partner: Any) -> None:
    partner: KssPartner = kss_partner(programme="xsp")
    admin, base = partner.admin, f"/partners/{partner.id}/clock"
    assert admin.get(base).json()["mode"] == "frozen"
    before = dt.datetime.now(UTC)
    running = admin.put(f"{base}/mode", json={"mode": "running", "offset_seconds": 0})
    assert running.status_code == 200 and running.json()["mode"] == "running"
    assert at(running.json()["now"]) >= before  # wall time itself
    first = at(admin.get(base).json()["now"])
    second = at(admin.get(base).json()["now"])
    assert before <= first <= second <= dt.datetime.now(UTC)  # it moves with wall time, never beyond it
    # On a running clock a StartTime ahead (within the tolerance) is NotStarted until that time comes.
    ahead = dt.datetime.now(UTC) + dt.timedelta(minutes=5)
    assert partner.send(activate(1, "later", iso(ahead)))[1].ok
    assert partner.info("later")["Status"] == "NotStarted"
    # A jump runs what falls due on the way, and the clock runs on from there.
    jumped = partner.advance(hours=1)
    assert jumped["mode"] == "running" and at(jumped["now"]) >= ahead
    assert partner.info("later")["Status"] == "Started"
    assert at(admin.get(base).json()["now"]) >= at(jumped["now"])
    # Back is refused, as on a frozen clock; frozen stops it where it is.
    back = admin.put(f"{base}/mode", json={"mode": "running", "offset_seconds": -3600 * 24})
    assert back.status_code == 409 and back.json()["code"] == "CLOCK_BACKWARDS"
    frozen = admin.put(f"{base}/mode", json={"mode": "frozen"}).json()
    assert frozen["mode"] == "frozen" and admin.get(base).json() == frozen


def test_SIM_CLOCK_1_a_reset_running_clock_runs_on_from_the_partners_start(kss_partner: Any) -> None:
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    admin = partner.admin
    admin.put(f"/partners/{partner.id}/clock/mode", json={"mode": "running"})
    partner.advance(days=3)
    reset = admin.post(f"/partners/{partner.id}/reset").json()
    assert reset["mode"] == "running"
    assert at("2026-04-15T09:00:00Z") <= at(reset["now"]) < at("2026-04-16T09:00:00Z")


def test_SIM_ERR_1_a_clock_mode_the_contract_does_not_know_is_refused(kss_partner: Any) -> None:
    partner: KssPartner = kss_partner()
    for body in ({"mode": "fast"}, {}, {"mode": "running", "offset_seconds": "soon"}):
        answer = partner.admin.put(f"/partners/{partner.id}/clock/mode", json=body)
        assert answer.status_code == 422 and answer.json()["code"] == "VALIDATION_ERROR", body
    assert partner.admin.get(f"/partners/{partner.id}/clock").json()["mode"] == "frozen"
    missing = partner.admin.put("/partners/ptn_000000000000/clock/mode", json={"mode": "running"})
    assert missing.status_code == 404


def test_SIM_CLOCK_1_a_frozen_clock_starts_a_start_time_within_the_tolerance_at_once(kss_partner: Any) -> None:
    """The client's own now a few seconds past the frozen clock: started at once, so its next Pause works."""
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    answer = partner.send(
        activate(1, "s-1", "2026-04-15T09:00:03.250000")
        + '<Pause UnitId="2" SubscriberId="s-1" PauseTime="2026-04-15T09:00:04"/>'
    )
    assert answer.order == [("ok", 1), ("ok", 2)]
    info = partner.info("s-1")
    assert (info["Status"], info["StartTime"]) == ("Paused", "2026-04-15T09:00:00Z")


# ---------------------------------------------------------------- pure 2.0 answers


def test_KSS_CODE_1_a_pure_2_0_request_gets_a_pure_2_0_answer_unless_the_partner_opts_in(kss_partner: Any) -> None:
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    assert partner.send(activate(1, "s-1", "2026-04-15T09:00:00Z"))[1].ok
    info = '<GetInfo UnitId="1" SubscriberId="s-1" InfoSection="Subscription"/>'
    plain = pure(partner, info)
    assert plain.status_code == 200 and EXT.encode() not in plain.content
    declared = partner.send(info)[1].sub("Subscription")  # the envelope declares ext: the client reads it
    assert declared.get(q(EXT, "CustomerId")) == "s-1"
    options = partner.admin.put(f"/partners/{partner.id}/kss/options", json={"ext_answers": True})
    assert options.status_code == 200 and options.json() == {"ext_answers": True}
    opted = etree.fromstring(pure(partner, info).content).find(f".//{{{KSS}}}Subscription")
    assert opted is not None and opted.get(q(EXT, "CustomerId")) == "s-1"
    partner.admin.put(f"/partners/{partner.id}/kss/options", json={"ext_answers": False})
    assert EXT.encode() not in pure(partner, info).content
    bad = partner.admin.put(f"/partners/{partner.id}/kss/options", json={"ext_answers": "yes"})
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"


# ---------------------------------------------------------------- FirstActivationTime


def test_KSS_CODE_1_first_activation_time_only_after_a_device_activation(kss_partner: Any) -> None:
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    assert partner.send(activate(1, "s-1", "2026-04-15T09:00:00Z"))[1].ok
    usage = '<GetInfo UnitId="1" SubscriberId="s-1" InfoSection="SubscriptionUsage"/>'

    def first_activation() -> str | None:
        return partner.send(usage)[1].sub("SubscriptionUsage").get("FirstActivationTime")

    assert first_activation() is None
    assert partner.device("s-1", at="2026-04-15T10:00:00Z").status_code == 422  # after the partner's now
    partner.advance(hours=2)
    made = partner.device("s-1", at="2026-04-15T12:30:00+02:00")
    assert made.status_code == 201 and made.json() == {
        "subscriber_id": "s-1",
        "first_activation_time": "2026-04-15T10:30:00Z",
    }
    assert first_activation() == "2026-04-15T10:30:00Z"
    assert partner.device("s-1").json()["first_activation_time"] == "2026-04-15T10:30:00Z"  # the first one stays
    missing = partner.device("nobody")
    assert missing.status_code == 404 and missing.json()["code"] == "SUBSCRIBER_NOT_FOUND"
    partner.send('<HardCancel UnitId="1" SubscriberId="s-1"/>')
    assert partner.device("s-1").status_code == 409


# ---------------------------------------------------------------- tolerated forms, and what the harness says of them


def test_SIM_ERR_1_spaced_times_and_empty_optional_attributes_are_read_but_journaled_as_not_the_contracts(
    kss_partner: Any,
) -> None:
    """Read as their schema forms (a spaced dateTime, with a zone or without; an empty optional attribute as
    absent); the journal's verdict still says the request is not the contract's, and strict mode refuses it."""
    partner: KssPartner = kss_partner(now="2026-04-15T09:00:00Z")
    answer = partner.send(
        '<Activate UnitId="1" SubscriberId="s-1" StartTime="2026-04-15 09:00:00" '
        'EndTime="2026-06-01 12:00:35.107539" ProductId="KIS" LicenseCount="" ActivationType=""/>'
        '<Activate UnitId="2" SubscriberId="s-2" StartTime="2026-04-15 08:00:00+00:00" EndTime="indefinite" '
        'ProductId="KIS"/>',
        timestamp="2026-04-15 09:00:00",
    )
    assert answer.order == [("ok", 1), ("ok", 2)], answer.order
    info = partner.info("s-1")
    assert (info["StartTime"], info["EndTime"], info["LicenseCount"]) == (
        "2026-04-15T09:00:00Z",
        "2026-06-01T12:00:35.107539Z",
        "1",
    )
    assert partner.info("s-2")["StartTime"] == "2026-04-15T08:00:00Z"
    renewed = partner.send(
        '<Renew UnitId="3" SubscriberId="s-1" EndTime="2027-06-01 12:00:35.107539"/>'
        '<HardCancel UnitId="4" SubscriberId="s-2" EndTime=""/>'
    )
    assert renewed.order == [("ok", 3), ("ok", 4)]
    assert partner.info("s-1")["EndTime"] == "2027-06-01T12:00:35.107539Z"
    journal = partner.admin.get(f"/partners/{partner.id}/journal", params={"service": "kss"}).json()["items"]
    tolerated = [e for e in journal if "Renew" in e["items"] or e["items"] == ["Activate", "Activate"]]
    assert len(tolerated) == 2 and all(not e["verdict"]["conforms"] for e in tolerated)
    partner.admin.patch(f"/partners/{partner.id}", json={"strict_contract": True})
    strict = partner.send('<Renew UnitId="5" SubscriberId="s-1" EndTime="2028-06-01 12:00:00"/>')
    assert strict.transaction_error is not None and strict.transaction_error[0] == 709
    assert partner.info("s-1")["EndTime"] == "2027-06-01T12:00:35.107539Z"  # nothing changed


def test_SIM_CLOCK_1_the_python_client_runs_a_clock_and_activates_a_device(server: Any) -> None:
    from ksimkit.simulators.client import KsimAdmin
    from tests.wire.test_kss_rest import activate as rest_activate
    from tests.wire.test_kss_rest import ok

    with KsimAdmin(server.url, "test-admin") as admin:
        handle = admin.create_partner(programme="xsp", now="2026-04-15T09:00:00Z")
        assert handle.clock().mode == "frozen"
        running = handle.set_clock_mode("running")
        assert running.mode == "running" and running.now >= dt.datetime(2026, 4, 15, 9, tzinfo=UTC)
        frozen = handle.set_clock_mode("frozen")
        assert frozen.mode == "frozen" and handle.clock() == frozen
        ok(server, handle.id, rest_activate("cust-1/pool", "cust-1", "KIS", 3, start=iso(frozen.now)[:19]))
        device = handle.activate_kss_device("cust-1/pool")
        assert device == {"subscriber_id": "cust-1/pool", "first_activation_time": iso(frozen.now)}
        assert handle.set_kss_options(ext_answers=True) == {"ext_answers": True}
