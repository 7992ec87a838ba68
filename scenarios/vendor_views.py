"""What the simulator holds for a scenario's partner, read the way the vendor shows it, per service: the KORM SS
subscriptions and statements, or the KSS subscribers (partner portal ``/kss/v1``) and bills; the request journal;
and the timeline the report draws from them. Every call that fails is a :class:`HarnessError` (not the broker's)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from ksimkit.scenarios.brokers.base import Charge
from ksimkit.scenarios.brokers.http import tls_transport
from ksimkit.scenarios.errors import HarnessError
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.results import Timeline, money
from ksimkit.simulators.client import KsimError, PartnerHandle

__all__ = [
    "KormView",
    "KssView",
    "VIEWS",
    "VendorSubscription",
    "VendorView",
    "journal_mark",
    "match_refs",
    "run_months",
    "sim_call",
    "timeline",
    "vendor_codes_since",
]

UTC = dt.UTC
ZERO = Decimal("0.00")
ACTOR = "ksim-certify"  # who the journal says read the vendor's state
# vendor id -> {units, amount, customer}: the vendor's bill of one period, summed per subscription
Bill = dict[str, dict[str, Any]]


def sim_call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the simulator; its refusal or silence is the harness's error, never the broker's."""
    try:
        return fn(*args, **kwargs)
    except KsimError as exc:
        raise HarnessError(f"the simulator refused to {what}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise HarnessError(f"the simulator did not answer ({what}): {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class VendorSubscription:
    """One subscription as the simulator holds it (KORM subscription, or KSS subscriber)."""

    id: str  # KORM subscription id, or KSS SubscriberId
    customer: str
    status: str
    quantity: int
    sku: str | None  # KORM
    product: str
    activation_code: str | None
    external_ref: str | None
    active: bool
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


class VendorView:
    """What the simulator holds for a partner of one service."""

    def read(self, partner: PartnerHandle, now: dt.datetime) -> list[VendorSubscription]:
        raise NotImplementedError

    def bill(self, partner: PartnerHandle, period: str) -> Bill:
        """vendor id -> {units, amount, customer} summed over the vendor's lines of the period."""
        raise NotImplementedError

    def by_broker_key(self, vendor: Sequence[VendorSubscription], key: str) -> VendorSubscription | None:
        """The subscription the broker keys by ``key`` at the vendor (a ref or the broker's own id)."""
        raise NotImplementedError

    def count_on(self, sub: VendorSubscription, day: dt.date, zone: ZoneInfo) -> int:
        """Licences in force at the end of ``day`` (partner zone), from the vendor's history."""
        raise NotImplementedError

    @staticmethod
    def _bill(client: httpx.Client, path: str, id_key: str, units_key: str, period: str) -> Bill:
        with client:
            response = sim_call(f"read the vendor's bill {period}", client.get, path)
        if response.is_error:
            raise HarnessError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        totals: Bill = {}
        for line in response.json().get("lines", []):
            entry = totals.setdefault(line[id_key], {"units": 0, "amount": ZERO, "customer": line.get("customer_id")})
            entry["units"] += int(line.get(units_key) or 0)
            entry["amount"] += Decimal(str(line.get("amount") or "0"))
        return totals


class KormView(VendorView):
    """KORM SS: the subscriptions (deleted ones too) and the monthly statements."""

    def read(self, partner: PartnerHandle, now: dt.datetime) -> list[VendorSubscription]:
        with partner.korm(actor=ACTOR, transport=tls_transport()) as korm:
            response = sim_call(
                "list KORM subscriptions", korm.get, "/subscriptions", params={"include_deleted": "true"}
            )
            if response.is_error:
                raise HarnessError(f"GET /korm/v1/subscriptions answered {response.status_code}: {response.text[:300]}")
            items = response.json()["items"]
        return [
            VendorSubscription(
                id=item["id"],
                customer=item["customer_id"],
                status=item["status"],
                quantity=int(item["quantity"]),
                sku=item.get("sku"),
                product=item.get("product_id") or "",
                activation_code=item.get("activation_code"),
                external_ref=item.get("external_ref"),
                active=item["status"] in ("pending", "active"),
                raw=item,
            )
            for item in items
        ]

    def bill(self, partner: PartnerHandle, period: str) -> Bill:
        client = partner.korm(actor=ACTOR, transport=tls_transport())
        return self._bill(client, f"/billing/{period}", "subscription_id", "units", period)

    def by_broker_key(self, vendor: Sequence[VendorSubscription], key: str) -> VendorSubscription | None:
        return next((v for v in vendor if v.external_ref == key), None)

    def count_on(self, sub: VendorSubscription, day: dt.date, zone: ZoneInfo) -> int:
        state = None
        for entry in sub.raw.get("history") or []:
            if dt.date.fromisoformat(entry["effective_date"]) <= day:
                state = entry
        if state is None or state.get("change") == "stop":
            return 0
        return int(state.get("quantity") or 0)


class KssView(VendorView):
    """KSS: every subscriber the partner's KSS audit log names, as the partner portal shows it, and the bills."""

    def read(self, partner: PartnerHandle, now: dt.datetime) -> list[VendorSubscription]:
        subscriber_ids: dict[str, None] = {}
        offset = 0
        while True:
            page = sim_call("read the KSS audit log", partner.audit, service="kss", limit=1000, offset=offset)
            for entry in page["items"]:
                if entry.get("object_type") == "subscription" and entry.get("object_id"):
                    subscriber_ids.setdefault(entry["object_id"], None)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        subs = []
        with partner.kss_rest(actor=ACTOR, transport=tls_transport()) as kss:
            for sid in subscriber_ids:
                response = sim_call(f"read KSS subscriber {sid}", kss.get, f"/subscriptions/{quote(sid, safe='')}")
                if response.status_code == 404:
                    continue
                if response.is_error:
                    raise HarnessError(f"GET /kss/v1/subscriptions/{sid} answered {response.status_code}")
                item = response.json()
                end = item.get("end_time")
                status = item["status"]
                active = status in ("NotStarted", "Started", "Paused") or (
                    status == "SoftCancelled" and end is not None and parse_ts(end) > now
                )
                subs.append(
                    VendorSubscription(
                        id=sid,
                        customer=item.get("customer_id") or sid,
                        status=status,
                        quantity=int(item.get("license_count") or 0),
                        sku=None,
                        product=item.get("product_id") or "",
                        activation_code=item.get("activation_code"),
                        external_ref=None,
                        active=active,
                        raw=item,
                    )
                )
        return subs

    def bill(self, partner: PartnerHandle, period: str) -> Bill:
        client = partner.kss_rest(actor=ACTOR, transport=tls_transport())
        return self._bill(client, f"/bills/{period}", "subscriber_id", "charged_count", period)

    def by_broker_key(self, vendor: Sequence[VendorSubscription], key: str) -> VendorSubscription | None:
        return next((v for v in vendor if v.id == key), None)

    def count_on(self, sub: VendorSubscription, day: dt.date, zone: ZoneInfo) -> int:
        end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), zone).astimezone(
            UTC
        ) - dt.timedelta(seconds=1)
        state = None
        for entry in sub.raw.get("history") or []:
            if parse_ts(entry["effective"]) <= end_of_day:
                state = entry
        if state is None:
            return 0
        status = state.get("status")
        end = state.get("end_time")
        if status in ("Started", "SoftCancelled") and (end is None or parse_ts(end) > end_of_day):
            return int(state.get("license_count") or 0)
        return 0


VIEWS: Mapping[str, VendorView] = {"korm": KormView(), "kss": KssView()}


# -- the request journal --------------------------------------------------------------------------------------------

_KSS_ERROR_CODE = re.compile(r'ErrorCode="(\d+)"')
_KORM_PROBLEM_CODE = re.compile(r'"code"\s*:\s*"([A-Z][A-Z0-9_]*)"')


def journal_mark(partner: PartnerHandle) -> int | None:
    """The id of the partner's latest journal entry (0: none yet), or None when the journal cannot be read."""
    try:
        total = partner.journal(limit=1)["total"]
        if not total:
            return 0
        page = partner.journal(limit=1, offset=total - 1)["items"]
        return int(page[-1]["id"]) if page else 0
    except (KsimError, httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


def vendor_codes_since(partner: PartnerHandle, mark: int) -> list[str]:
    """The error codes the vendor answered the broker after journal entry ``mark``: KORM problem codes, KSS
    ErrorCode attributes (TransactionError and unit errors)."""
    codes: list[str] = []
    offset = 0
    while True:
        page = sim_call("read the request journal", partner.journal, limit=500, offset=offset)
        items = page["items"]
        for entry in items:
            if int(entry["id"]) <= mark or not entry.get("response"):
                continue
            body = str(entry["response"].get("body") or "")
            codes += _KSS_ERROR_CODE.findall(body)
            codes += _KORM_PROBLEM_CODE.findall(body) if (entry.get("status") or 0) >= 400 else []
        offset += len(items)
        if not items or offset >= page["total"]:
            return codes


# -- refs, months, the timeline -------------------------------------------------------------------------------------

MAX_TIMELINE_MONTHS = 48


def match_refs(
    view: VendorView,
    vendor: Sequence[VendorSubscription],
    refs: Sequence[str],
    final_codes: Mapping[str, str | None],
    legacy_vendor: Mapping[str, str],
    broker_keys: Callable[[str], Sequence[str | None]],
) -> dict[str, VendorSubscription]:
    """ref -> the vendor subscription it is: by the broker's activation code (``final_codes``), else by the seeded
    legacy subscription (``legacy_vendor``: ref -> vendor id), or the broker's key at the vendor (``broker_keys``:
    the ref as the broker names it, its own id for it) as the KORM external_ref or a KSS SubscriberId."""
    by_code = {v.activation_code: v for v in vendor if v.activation_code}
    by_id = {v.id: v for v in vendor}
    out: dict[str, VendorSubscription] = {}
    for ref in refs:
        code = final_codes.get(ref)
        found = by_code.get(code) if code else None
        if found is None and not code:
            if ref in legacy_vendor:
                found = by_id.get(legacy_vendor[ref])
            else:
                for key in filter(None, broker_keys(ref)):
                    found = view.by_broker_key(vendor, key)
                    if found is not None:
                        break
        if found is not None:
            out[ref] = found
    return out


def run_months(span: tuple[dt.date, dt.date], periods: Sequence[str]) -> list[str]:
    """Every month of the run (``span``: its first and last day, partner zone; at most MAX_TIMELINE_MONTHS) and
    every period the scenario reads."""
    first, last_day = span
    last = max([f"{last_day.year:04d}-{last_day.month:02d}", *periods])
    out: list[str] = []
    year, month = first.year, first.month
    while f"{year:04d}-{month:02d}" <= last and len(out) < MAX_TIMELINE_MONTHS:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(set(out) | set(periods))


def timeline(
    scenario: Scenario,
    view: VendorView,
    zone: ZoneInfo,
    span: tuple[dt.date, dt.date],
    vendor: Sequence[VendorSubscription],
    matches: Mapping[str, VendorSubscription],
    broker_charges: Mapping[str, Sequence[Charge]],
    vendor_bills: Mapping[str, Bill],
    months: Sequence[str],
) -> Timeline:
    """What the report draws: licences per day as the vendor holds them (``span``: first and last day, partner
    zone) and money per month (expected, the broker's, the vendor's)."""
    first, last = span
    last = max(last, first)
    labels = {v.id: ref for ref, v in matches.items()}
    series: dict[str, list[tuple[str, int]]] = {}
    for sub in vendor:
        label = labels.get(sub.id) or f"vendor {sub.id} (no ref)"
        points: list[tuple[str, int]] = []
        day = first
        previous = None
        while day <= last:
            count = view.count_on(sub, day, zone)
            if count != previous:
                points.append((day.isoformat(), count))
                previous = count
            day += dt.timedelta(days=1)
        series[label] = points
    expected_by_period: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for charge in scenario.expect.charges:
        if charge.amount is not None:
            expected_by_period[charge.period] += charge.amount
    periods = []
    for period in months:
        charges = broker_charges.get(period, [])
        periods.append(
            {
                "period": period,
                "expected": money(expected_by_period[period]) if period in scenario.expect.charge_periods else None,
                "broker": money(sum((Decimal(c.amount) for c in charges), ZERO)),
                "broker_cost": money(sum((Decimal(c.vendor_cost) for c in charges if c.vendor_cost is not None), ZERO)),
                "vendor": money(sum((b["amount"] for b in vendor_bills.get(period, {}).values()), ZERO)),
            }
        )
    return Timeline(start=first.isoformat(), end=last.isoformat(), series=series, periods=periods)


def parse_ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
