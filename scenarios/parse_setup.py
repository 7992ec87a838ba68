"""Parsing a scenario file's ``setup``: the partner's settings and what is seeded at the vendor before the broker
starts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ksimkit.scenarios.model import ApprovalCodeSeed, LegacySeed, PrepaidSeed, Setup, to_instant
from ksimkit.scenarios.yaml_reader import YamlReader

__all__ = ["STAND_IN_SETUP", "parse_setup"]

PROGRAMMES = ("xsp", "reseller", "msp")
BILLING_PERIODS = ("calendar_month", "30_days")
_SETUP_KEYS = {
    "start",
    "programme",
    "msp_registered",
    "billing_period",
    "timezone",
    "prices",
    "approval_codes",
    "legacy",
    "prepaid",
}
# A stand-in when the setup does not validate: the steps are still checked, against its clock.
STAND_IN_SETUP = Setup(start=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))


def parse_setup(r: YamlReader, node: yaml.Node, service: str | None) -> Setup | None:
    m = r.mapping(node, "setup", _SETUP_KEYS, ("start",))
    if m is None:
        return None
    values: dict[str, Any] = {"line": r.line(node)}
    ok = True

    timezone = "UTC"
    if "timezone" in m:
        tz = r.string(m["timezone"][1], "setup.timezone")
        try:
            if tz is None:
                raise ZoneInfoNotFoundError
            ZoneInfo(tz)
            timezone = tz
        except (ZoneInfoNotFoundError, ValueError):
            if tz is not None:
                r.err(m["timezone"][1], f"setup.timezone {tz!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)")
            ok = False
    values["timezone"] = timezone

    if "start" in m:
        start = r.moment(m["start"][1], "setup.start")
        if start is None:
            ok = False
        else:
            values["start"] = to_instant(start, timezone)
    else:
        ok = False

    if "programme" in m:
        programme = r.string(m["programme"][1], "setup.programme")
        if programme not in PROGRAMMES:
            if programme is not None:
                r.err(m["programme"][1], f"setup.programme must be one of {', '.join(PROGRAMMES)}, not {programme!r}")
            ok = False
        else:
            values["programme"] = programme
    if "msp_registered" in m:
        registered = r.boolean(m["msp_registered"][1], "setup.msp_registered")
        ok &= registered is not None
        values["msp_registered"] = registered
    if "billing_period" in m:
        period = r.string(m["billing_period"][1], "setup.billing_period")
        if period not in BILLING_PERIODS:
            if period is not None:
                r.err(
                    m["billing_period"][1],
                    f"setup.billing_period must be one of {', '.join(BILLING_PERIODS)}, not {period!r}",
                )
            ok = False
        else:
            values["billing_period"] = period

    if "prices" in m:
        prices_node = m["prices"][1]
        pm = r.mapping(prices_node, "setup.prices")
        prices: dict[str, Decimal] = {}
        if pm is None:
            ok = False
        else:
            for key, (_, value_node) in pm.items():
                price = r.money(value_node, f"setup.prices.{key}", places=6)
                if price is None or price < 0:
                    if price is not None:
                        r.err(value_node, f"setup.prices.{key} must not be negative")
                    ok = False
                else:
                    prices[key] = price
        values["prices"] = prices

    if "approval_codes" in m:
        node_ac = m["approval_codes"][1]
        if service == "kss":
            r.err(node_ac, "setup.approval_codes are KORM test data; this scenario's service is kss")
        seeds_ac = []
        for item in r.sequence(node_ac, "setup.approval_codes") or []:
            im = r.mapping(item, "an approval code", {"code", "percent", "expires_on"}, ("percent", "expires_on"))
            if im is None:
                ok = False
                continue
            code = r.string(im["code"][1], "approval code: code") if "code" in im else None
            percent = (
                r.money(im["percent"][1], "approval code: percent", places=2, positive=True)
                if "percent" in im
                else None
            )
            if percent is not None and percent > 100:
                r.err(im["percent"][1], "approval code: percent must be at most 100")
                percent = None
            expires = r.date(im["expires_on"][1], "approval code: expires_on") if "expires_on" in im else None
            if percent is None or expires is None or ("code" in im and code is None):
                ok = False
                continue
            seeds_ac.append(ApprovalCodeSeed(percent=percent, expires_on=expires, code=code, line=r.line(item)))
        values["approval_codes"] = tuple(seeds_ac)

    if "legacy" in m:
        node_l = m["legacy"][1]
        if service == "kss":
            r.err(node_l, "setup.legacy holds KORM legacy subscriptions; this scenario's service is kss")
        seeds_l: list[LegacySeed] = []
        keys = {"ref", "customer", "sku", "quantity", "activation_date"}
        for item in r.sequence(node_l, "setup.legacy") or []:
            im = r.mapping(item, "a legacy subscription", keys, sorted(keys))
            if im is None or not keys <= set(im):
                ok = False
                continue
            ref = r.string(im["ref"][1], "legacy: ref")
            customer = r.string(im["customer"][1], "legacy: customer")
            sku = r.string(im["sku"][1], "legacy: sku")
            quantity = r.integer(im["quantity"][1], "legacy: quantity", minimum=1)
            activation = r.date(im["activation_date"][1], "legacy: activation_date")
            if ref is None or customer is None or sku is None or quantity is None or activation is None:
                ok = False
                continue
            if any(seed.ref == ref for seed in seeds_l):
                r.err(im["ref"][1], f"ref {ref!r} is already defined by another legacy subscription")
                ok = False
                continue
            seeds_l.append(
                LegacySeed(
                    ref=ref,
                    customer=customer,
                    sku=sku,
                    quantity=quantity,
                    activation_date=activation,
                    line=r.line(item),
                )
            )
        values["legacy"] = tuple(seeds_l)

    if "prepaid" in m:
        node_p = m["prepaid"][1]
        if service == "korm":
            r.err(node_p, "setup.prepaid holds KSS prepaid licences; this scenario's service is korm")
        seeds_p: list[PrepaidSeed] = []
        keys = {"customer", "product", "licence_count", "expires_on"}
        for item in r.sequence(node_p, "setup.prepaid") or []:
            im = r.mapping(item, "a prepaid licence", keys, sorted(keys))
            if im is None or not keys <= set(im):
                ok = False
                continue
            customer = r.string(im["customer"][1], "prepaid: customer")
            product = r.string(im["product"][1], "prepaid: product")
            count = r.integer(im["licence_count"][1], "prepaid: licence_count", minimum=1)
            expires = r.date(im["expires_on"][1], "prepaid: expires_on")
            if customer is None or product is None or count is None or expires is None:
                ok = False
                continue
            seeds_p.append(
                PrepaidSeed(
                    customer=customer, product=product, licence_count=count, expires_on=expires, line=r.line(item)
                )
            )
        values["prepaid"] = tuple(seeds_p)

    if not ok or "start" not in values:
        return None
    return Setup(**values)
