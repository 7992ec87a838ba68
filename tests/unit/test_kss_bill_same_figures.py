"""KSS bills over three years give the golden figures (tests/unit/golden/kss-*.txt), recorded from the code that
the faster bill (simulators/kss/billing.py: sums kept as lines are made, no 30-day anchor for calendar months)
replaced: every line and every figure, to the cent (KSS-BILL-0, KSS-BILL-1, KSS-QTY-2, KSS-QTY-3, KSS-TRIAL-2, KSS-PAUSE-1,
KSS-FREE-1, KSS-PERIOD-1, KSS-MSP-1, KSS-STOP-1).

Data: bench/scale.py's KSS mix through the rules (open-ended, trials, fixed terms, pauses for a term, soft
cancels, licence count changes) for an xsp partner on calendar months, a reseller on 30-day periods and an MSP
partner, then a year of clock.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest

from ksimkit.simulators.core.due import move_clock
from ksimkit.simulators.kss import billing
from ksimkit.simulators.services import default_services
from tests.unit import golden

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
try:
    import scale
finally:
    sys.path.remove(str(ROOT / "bench"))

MONTHS = [f"{y}-{m:02d}" for y in (2025, 2026, 2027) for m in range(1, 13)]


SUBSCRIPTIONS = 60


@pytest.mark.parametrize(
    ("programme", "period"), [("xsp", "calendar_month"), ("reseller", "30_days"), ("msp", "calendar_month")]
)
def test_same_bills_as_the_golden_figures(store: Any, programme: str, period: str) -> None:
    partner_id = scale.build_kss(store, SUBSCRIPTIONS, programme=programme, billing_period=period, container=40)
    with store.begin() as conn:
        move_clock(conn, partner_id, dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC), sources=SERVICES.due_sources)
    horizon = dt.datetime(2028, 3, 1, tzinfo=dt.UTC)
    with store.begin() as conn:
        ctx = scale.context(conn, partner_id)
        book = billing.load_book(conn, ctx.partner, horizon)
        for given in (None, book):  # a bill on its own, and many bills from one book (what a clock move does)
            bills = [(month, billing.bill(conn, ctx, month, book=given)) for month in MONTHS]
            assert sum(len(doc["lines"]) for _, doc in bills) > SUBSCRIPTIONS * 10
            golden.check(f"kss-{programme}-{period}.txt", golden.render(bills, {partner_id: "PARTNER"}))
