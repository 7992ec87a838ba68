"""KSS fixtures: a partner on a real store, driven through ksimkit.simulators.kss.container with model values."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from ksimkit.simulators.core import audit
from ksimkit.simulators.core.due import move_clock
from ksimkit.simulators.kss import billing, container, views
from ksimkit.simulators.kss.model import (
    Activate,
    GetInfo,
    Item,
    ItemError,
    ItemResult,
    RequestContainer,
    ResponseContainer,
    SubscriptionInfo,
)
from ksimkit.simulators.kss.tables import subscriptions
from ksimkit.simulators.services import default_services
from tests.conftest import World

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

UTC = dt.UTC
_unit = itertools.count(1)


def T(value: str) -> dt.datetime:
    """'2026-03-01' is midnight UTC; '2026-03-01T09:30' is UTC unless it carries a zone."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def act(
    sid: str, start: str = "2026-03-01", end: str | None = None, product: str = "KIS", count: int = 10, **kw: Any
) -> Activate:
    return Activate(next(_unit), sid, T(start), None if end is None else T(end), product, count, **kw)


class Kss:
    """One KSS partner: send containers, read answers, bills and reports, move its clock."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._txn = itertools.count(1)

    @property
    def partner_id(self) -> str:
        return self.world.partner_id

    def send(
        self, *items: Item, txn: str | None = None, actor: str = "tester", tolerance: int = 600
    ) -> ResponseContainer:
        txn = txn or f"{self.partner_id}-T{next(self._txn)}"
        with self.world.store.begin() as conn:
            ctx = self.world.ctx(conn, actor)
            request = RequestContainer(ctx.clock.now, txn, tuple(items))
            return container.process(conn, ctx, request, start_tolerance_seconds=tolerance)

    def one(self, item: Item, **kw: Any) -> ItemResult | ItemError:
        answer = self.send(item, **kw)
        assert answer.transaction_error is None, answer.transaction_error
        found = answer.results + answer.errors
        assert len(found) == 1 and found[0].unit_id == item.unit_id
        return found[0]

    def ok(self, item: Item, **kw: Any) -> ItemResult:
        found = self.one(item, **kw)
        assert isinstance(found, ItemResult), found
        return found

    def code(self, item: Item, **kw: Any) -> int:
        found = self.one(item, **kw)
        assert isinstance(found, ItemError), found
        assert found.kind == type(item).__name__
        return found.code

    def info(self, sid: str) -> SubscriptionInfo:
        result = self.ok(GetInfo(next(_unit), sid))
        assert result.subscription is not None
        return result.subscription

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.world.call(fn, *args, **kwargs)

    def bill(self, period: str) -> dict[str, Any]:
        return self.call(billing.bill, period)

    def lines(self, period: str) -> list[tuple[str, int, int, str]]:
        """(subscriber, paid days, charged count, amount) per bill line."""
        return [
            (x["subscriber_id"], x["paid_days"], x["charged_count"], x["amount"]) for x in self.bill(period)["lines"]
        ]

    def report(self, period: str) -> dict[str, Any]:
        return self.call(billing.report, period)

    def sub(self, sid: str) -> dict[str, Any]:
        return self.call(views.get_subscription, sid)

    def at(self, moment: str) -> None:
        with self.world.store.begin() as conn:
            move_clock(conn, self.partner_id, T(moment), sources=SERVICES.due_sources)

    def go_to(self, day: str) -> None:
        self.world.go_to(day)  # 09:00 UTC that day

    def audit(self) -> list[dict[str, Any]]:
        with self.world.store.begin() as conn:
            return audit.entries(conn, self.partner_id, service="kss", limit=1000)[0]

    def count_subscriptions(self) -> int:
        with self.world.store.begin() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(subscriptions)
                .where(subscriptions.c.partner_id == self.partner_id)
            ).scalar_one()


@pytest.fixture
def make_kss(make_world: Any) -> Any:
    """A KSS partner; by default xsp, calendar months, clock at 2026-03-01 09:00 UTC."""

    def make(**partner: Any) -> Kss:
        partner.setdefault("programme", "xsp")
        partner.setdefault("now", dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
        return Kss(make_world(**partner))

    return make


@pytest.fixture
def kss(make_kss: Any) -> Kss:
    return make_kss()
