"""The vendor profile: product catalog, prices and inferred vendor terms, loaded from a YAML data file."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ksimkit.simulators.core.yamlfile import load_yaml

DEFAULT_PROFILE = Path(__file__).resolve().parent / "data" / "profile.yaml"


@dataclass(frozen=True)
class Sku:
    """A KORM SS plan: one product, one billing model, one licence band."""

    sku: str
    product_id: str
    product_name: str
    billing_model: str  # "payg" | "yearly"
    licence_min: int
    licence_max: int
    price: Decimal  # per licence per month (payg) or per year (yearly)
    currency: str

    @property
    def price_period(self) -> str:
        return "month" if self.billing_model == "payg" else "year"

    def covers(self, quantity: int) -> bool:
        return self.licence_min <= quantity <= self.licence_max

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "product_id": self.product_id,
            "product_name": self.product_name,
            "billing_model": self.billing_model,
            "licence_min": self.licence_min,
            "licence_max": self.licence_max,
            "price": f"{self.price:.2f}",
            "price_period": self.price_period,
            "currency": self.currency,
        }


@dataclass(frozen=True)
class KssProduct:
    product_id: str
    name: str
    programmes: tuple[str, ...]
    price: Decimal  # per licence per billing period


@dataclass(frozen=True)
class TrialCap:
    months: int = 0
    days: int = 0


@dataclass(frozen=True)
class MspTier:
    from_licences: int
    percent: Decimal


@dataclass(frozen=True)
class Profile:
    currency: str
    skus: dict[str, Sku]
    kss_products: dict[str, KssProduct]
    trial_caps: dict[str, TrialCap]
    msp_tiers: tuple[MspTier, ...]

    def sku(self, sku_id: str) -> Sku | None:
        return self.skus.get(sku_id)

    def band_skus(self, product_id: str, billing_model: str) -> list[Sku]:
        return sorted(
            (s for s in self.skus.values() if s.product_id == product_id and s.billing_model == billing_model),
            key=lambda s: s.licence_min,
        )

    def msp_discount(self, active_licences: int) -> Decimal:
        percent = Decimal("0")
        for tier in self.msp_tiers:
            if active_licences >= tier.from_licences:
                percent = tier.percent
        return percent


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def sku_id(product_id: str, billing_model: str, low: int, high: int) -> str:
    return f"{product_id}-{billing_model.upper()}-{low}-{high}"


def parse_profile(data: dict[str, Any]) -> Profile:
    currency = str(data.get("currency", "EUR"))
    korm = data["korm"]
    bands = [(int(lo), int(hi)) for lo, hi in korm["bands"]]
    skus: dict[str, Sku] = {}
    for product_id, spec in korm["products"].items():
        for model in ("payg", "yearly"):
            prices = spec[model]
            if len(prices) != len(bands):
                raise ValueError(f"profile: {product_id}.{model} has {len(prices)} prices for {len(bands)} bands")
            for (low, high), price in zip(bands, prices, strict=True):
                sid = sku_id(product_id, model, low, high)
                skus[sid] = Sku(sid, product_id, spec["name"], model, low, high, _dec(price), currency)
    kss = data["kss"]
    products = {
        pid: KssProduct(pid, spec["name"], tuple(spec["programmes"]), _dec(spec["price"]))
        for pid, spec in kss["products"].items()
    }
    caps = {prog: TrialCap(int(c.get("months", 0)), int(c.get("days", 0))) for prog, c in kss["trial_caps"].items()}
    tiers = tuple(
        sorted((MspTier(int(t["from"]), _dec(t["percent"])) for t in kss["msp_tiers"]), key=lambda t: t.from_licences)
    )
    return Profile(currency, skus, products, caps, tiers)


@functools.lru_cache(maxsize=8)
def load_profile(path: str = "") -> Profile:
    with open(path or DEFAULT_PROFILE, encoding="utf-8") as fh:
        return parse_profile(load_yaml(fh))
