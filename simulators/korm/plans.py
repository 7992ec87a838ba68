"""KORM SS's plan vocabulary: the billing models, the SKU and its licence band, the Yearly plan's years.

Read by the rules, billing and the due events alike; it depends on nothing else of KORM but its errors.
"""

from __future__ import annotations

import datetime as dt

from ksimkit.simulators.core.catalog import Profile, Sku
from ksimkit.simulators.korm.errors import InvalidRequest

PAYG, YEARLY, LEGACY = "payg", "yearly", "legacy"
CATALOG_MODELS = (PAYG, YEARLY)  # the models a SKU of the catalog has; legacy is a state, never sold


def sku_of(profile: Profile, sku_id: str) -> Sku:
    """The catalog's SKU, or ``UNKNOWN_SKU``."""
    sku = profile.sku(sku_id)
    if sku is None:
        raise InvalidRequest("UNKNOWN_SKU", f"no SKU {sku_id!r} in the catalog (GET /products lists them)")
    return sku


def check_band(sku: Sku, quantity: int) -> None:
    """KORM-RANGE-1: a count stays inside its SKU's licence band; another band is another SKU (a plan switch)."""
    if not sku.covers(quantity):
        raise InvalidRequest(
            "OUT_OF_RANGE",
            f"{quantity} licences is outside the band {sku.licence_min}-{sku.licence_max} of {sku.sku}; "
            "moving to another band needs a plan switch",
            rule="KORM-RANGE-1",
            licence_min=sku.licence_min,
            licence_max=sku.licence_max,
        )


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` ``years`` later; 29 February falls back to the 28th."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def next_anniversary(activation: dt.date, today: dt.date) -> dt.date:
    """First anniversary of ``activation`` after ``today`` (29 February falls back to the 28th)."""
    years = 1
    while (ann := add_years(activation, years)) <= today:
        years += 1
    return ann


def legacy_free_until(activation: dt.date) -> dt.date:
    """KORM-LEG-1: a legacy subscription is free until the first day of the month after its activation."""
    return dt.date(activation.year + (activation.month == 12), activation.month % 12 + 1, 1)
