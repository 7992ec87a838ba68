"""KORM statements over five years give the golden figures (tests/unit/golden/korm-*.txt), recorded from the
straightforward statement code that the fast one (simulators/korm/billing.py: one pass per subscription, only the
rows and columns that can make a line) replaced: every line, every figure, to the cent (KORM-PAYG-2, KORM-PAYG-3,
KORM-YEAR-3, KORM-YEAR-4, KORM-LEG-1, KORM-LEG-2, KORM-MIG-1, KORM-APPR-1, KORM-STOP-1). An intended change of
a rule is recorded anew (tests/unit/golden.py) and reviewed as a diff of figures.

Data: bench/scale.py's plan (PAYG, Yearly and legacy subscriptions over 13 months with quantity changes, plan
switches, Yearly increases, stops, approval discounts, bulk-written as the rules write them; tests/bench checks
that) and, through the rules, what the plan lacks: a Yearly subscription activated on 29 February, a migration of
legacy subscriptions, several changes on one day, a stop on the activation day.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ksimkit.simulators.korm import billing, rules
from ksimkit.simulators.korm.rules import Order
from ksimkit.simulators.korm.tables import history
from tests.unit import golden

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
try:
    import scale
finally:
    sys.path.remove(str(ROOT / "bench"))

MONTHS = [f"{y}-{m:02d}" for y in (2024, 2025, 2026, 2027, 2028) for m in range(1, 13)]


PLAN_SIZE = 80


def _labels(conn: Any, partner_id: str) -> dict[str, str]:
    """Subscription ids are random: name each by the order its first history row was written."""
    first = sa.func.min(history.c.id).label("first")
    rows = conn.execute(
        sa.select(history.c.subscription_id, first)
        .where(history.c.partner_id == partner_id)
        .group_by(history.c.subscription_id)
        .order_by(first)
    )
    return {row.subscription_id: f"S{n:04d}" for n, row in enumerate(rows)} | {partner_id: "PARTNER"}


def _statements(world: Any, book: Any = None) -> str:
    with world.store.begin() as conn:
        ctx = world.ctx(conn)
        documents = [(period, billing.statement(conn, ctx, period, book=book)) for period in MONTHS]
        return golden.render(documents, _labels(conn, world.partner_id))


def _extra(world: Any) -> None:
    """Through the rules: 29 February, a migration, changes on one day, a stop on the activation day."""
    world.go_to("2024-02-29")
    leap = world.call(rules.order, Order("leap", "KESC-YEARLY-20-49", 22))["id"]
    world.call(
        rules.seed_legacy,
        customer_id="old",
        sku_id="KESC-PAYG-20-49",
        quantity=30,
        activation_date=dt.date(2023, 11, 20),
    )
    world.call(rules.create_approval_code, percent=Decimal("12.5"), expires_on=dt.date(2024, 12, 31), code="APR-X")
    payg = world.call(rules.order, Order("many", "KESB-ADV-PAYG-20-49", 25, approval_code="APR-X"))["id"]
    world.go_to("2024-03-01")
    world.call(rules.migrate_legacy)
    world.go_to("2024-03-10")
    world.call(rules.change_quantity, payg, 30)
    world.call(rules.change_quantity, payg, 21)
    world.call(rules.switch_plan, payg, "KESB-ADV-PAYG-50-99", 60)
    world.call(rules.change_quantity, leap, 30)
    world.call(rules.change_quantity, leap, 33)
    gone = world.call(rules.order, Order("gone", "KSOS-PAYG-10-14", 12))["id"]
    world.call(rules.stop, gone)
    world.go_to("2025-02-28")
    world.call(rules.change_quantity, leap, 40)


@pytest.fixture
def korm_world(make_world: Any) -> Any:
    world = make_world(now=dt.datetime(2024, 1, 10, 9, 0, tzinfo=dt.UTC))
    _extra(world)
    return world


def test_same_statements_as_the_golden_figures_for_every_month(korm_world: Any, store: Any) -> None:
    golden.check("korm-rules.txt", _statements(korm_world))
    plan = scale.korm_plan(PLAN_SIZE, scale.load_profile())
    bulk = scale.build_korm_bulk(store, plan)

    class Bulk:  # the bench partner, read the same way
        def __init__(self) -> None:
            self.store, self.partner_id = store, bulk

        def ctx(self, conn: Any) -> Any:
            return scale.context(conn, self.partner_id)

    golden.check("korm-plan.txt", _statements(Bulk()))


def test_same_statements_from_one_book_for_many_months(korm_world: Any) -> None:
    """What a clock move does when it closes many months: one book, read for each (simulators/korm/events.py)."""
    with korm_world.store.begin() as conn:
        book = billing.load_book(conn, korm_world.partner_id, dt.date(2029, 1, 1))
    golden.check("korm-rules.txt", _statements(korm_world, book))
