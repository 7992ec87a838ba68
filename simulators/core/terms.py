"""A partner's vendor terms as one machine-readable document: everything that decides its bills.

The programme, the KSS billing period, the time zone its dates are read in, the KORM SKUs with their list prices,
the KSS price list for its programme and the MSP volume tiers all come from the vendor profile (``profile_path``)
and the partner's settings. A broker's test configuration reads them here instead of copying ``profile.yaml``
(``GET /_sim/partners/{id}/terms``; the KSS part also at ``GET /kss/v1/prices`` with the partner's own token).
"""

from __future__ import annotations

from typing import Any

from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.partners import Partner

__all__ = ["kss_price_list", "vendor_terms"]

TERMS_VERSION = 1


def kss_price_list(profile: Profile, partner: Partner) -> dict[str, Any]:
    """The KSS products the partner's programme may sell, each with its price per licence per billing period, and
    the MSP volume tiers (KSS-MSP-1; they apply to ``msp`` partners only)."""
    cap = profile.trial_caps.get(partner.programme)
    return {
        "programme": partner.programme,
        "msp_registered": partner.msp_registered,
        "billing_period": partner.billing_period,
        "currency": profile.currency,
        "products": [
            {
                "product_id": p.product_id,
                "name": p.name,
                "price": f"{p.price:.2f}",
                "price_per": "licence per billing period",
            }
            for p in profile.kss_products.values()
            if partner.programme in p.programmes
        ],
        "msp_tiers": [{"from_licences": t.from_licences, "percent": f"{t.percent:f}"} for t in profile.msp_tiers],
        "msp_tiers_apply": partner.programme == "msp",
        "trial_cap": {"months": cap.months, "days": cap.days} if cap else {"months": 0, "days": 0},
    }


def vendor_terms(profile: Profile, partner: Partner) -> dict[str, Any]:
    """The partner's whole vendor terms: its settings, KORM list prices and the KSS price list."""
    return {
        "version": TERMS_VERSION,
        "partner_id": partner.id,
        "programme": partner.programme,
        "msp_registered": partner.msp_registered,
        "billing_period": partner.billing_period,
        "timezone": partner.timezone,
        "now": iso_utc(partner.clock.now),
        "currency": profile.currency,
        "korm": {
            "price_per": {"payg": "licence per month (billed by licence-days)", "yearly": "licence per year"},
            "skus": [sku.to_json() for sku in sorted(profile.skus.values(), key=lambda s: s.sku)],
        },
        "kss": kss_price_list(profile, partner),
    }
