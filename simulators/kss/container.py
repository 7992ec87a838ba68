"""A KSS request container applied: its idempotency, the order of its items, each unit on its own savepoint.

``process`` applies one request container: a seen TransactionId answers 6 and a repeated UnitId 708, both
changing nothing; otherwise the TransactionId is stored and each item is applied by its handler
(``ksimkit.simulators.kss.handlers``) on its own SAVEPOINT, so a refused unit leaves no trace and the others still
apply (partial success). Items are applied in document order, except that one subscriber's items are put in an
order of kinds (``application_order``, docs/kss-wire.md "The order of items"); the answer lists them in document
order. A unit that fails for an unexpected reason is not caught here: the SOAP layer answers it (a fault).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import iso_utc
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.kss.errors import KssCode, KssError
from ksimkit.simulators.kss.handlers import HANDLERS, licence_change
from ksimkit.simulators.kss.model import (
    Activate,
    GetDownloadLinks,
    GetInfo,
    HardCancel,
    Item,
    ItemError,
    Pause,
    Renew,
    RequestContainer,
    ResponseContainer,
    Resume,
    SoftCancel,
    TransactionError,
    kind,
)
from ksimkit.simulators.kss.state import Call, row_of
from ksimkit.simulators.kss.tables import transactions

# The statements of every call, built once (building a statement per call costs about as much as running it).
_SEEN = sa.select(transactions.c.at).where(
    transactions.c.partner_id == sa.bindparam("p_id"), transactions.c.transaction_id == sa.bindparam("t_id")
)
_INSERT_TRANSACTION = sa.insert(transactions)


def process(
    conn: Connection, ctx: CallContext, container: RequestContainer, *, start_tolerance_seconds: int = 600
) -> ResponseContainer:
    answer = ResponseContainer(timestamp=ctx.clock.now, transaction_id=container.transaction_id)
    seen = conn.execute(_SEEN, {"p_id": ctx.partner_id, "t_id": container.transaction_id}).first()
    if seen is not None:  # SIM-IDEM-1: the real service refuses a repeat; it does not replay the first answer
        answer.transaction_error = TransactionError(
            KssCode.DUPLICATE_TRANSACTION,
            f"duplicated order: TransactionId {container.transaction_id!r} was received at {iso_utc(seen.at)}",
        )
        return answer
    units = [item.unit_id for item in container.items]
    if len(set(units)) != len(units):
        twice = sorted({u for u in units if units.count(u) > 1})
        answer.transaction_error = TransactionError(
            KssCode.REPEATED_UNIT, f"UnitId {twice[0]} appears more than once in the container"
        )
        return answer
    conn.execute(
        _INSERT_TRANSACTION,
        {
            "partner_id": ctx.partner_id,
            "transaction_id": container.transaction_id,
            "at": ctx.clock.now,
            "units": len(units),
        },
    )
    call = Call(conn, ctx, dt.timedelta(seconds=start_tolerance_seconds))
    paired = {i.subscriber_id for i in container.items if isinstance(i, HardCancel)} & {
        i.subscriber_id for i in container.items if isinstance(i, Activate)
    }
    known = {sid for sid in paired if row_of(call, sid) is not None}
    for step in application_order(container.items, known):
        if isinstance(step, _Contradiction):
            answer.errors.append(
                ItemError(
                    kind(step.item), step.item.unit_id, step.item.subscriber_id, KssCode.BAD_ATTRIBUTE, step.message
                )
            )
        elif isinstance(step, _LicenceChange):
            pair = licence_change(call, step.cancel, step.activate)
            if pair is not None:
                answer.results.extend(pair)
            else:  # not one: cancel first, then the Activate brings it back
                for item in step.items:
                    _apply(call, item, answer)
        else:
            _apply(call, step, answer)
    position = {item.unit_id: i for i, item in enumerate(container.items)}  # answers in request order
    answer.results.sort(key=lambda r: position[r.unit_id])
    answer.errors.sort(key=lambda e: position[e.unit_id])
    return answer


def _apply(call: Call, item: Item, answer: ResponseContainer) -> None:
    try:
        with call.conn.begin_nested():  # a refused unit rolls back alone
            answer.results.append(HANDLERS[type(item)](call, item))
    except KssError as err:
        answer.errors.append(ItemError(kind(item), item.unit_id, item.subscriber_id, err.code, err.message))


# ---------------------------------------------------------------- the order of one subscriber's items
#
# A client that sets items as lists per kind (suds, most generated clients) sends them grouped by kind in the
# order its WSDL declares the kinds, which ksim cannot choose for it. So the items of one SubscriberId are applied
# in an order of their kinds, whatever their wire order (docs/kss-wire.md, "The order of items"): Activate first
# (nothing else can apply to a subscriber it creates, and it brings a hard-cancelled one back), then the other
# changes in wire order among themselves, then the reads, which see every change. A HardCancel and an Activate of
# a subscription that exists are the public clients' licence change, applied together in the Activate's place.
# Items of different subscribers keep their wire order. Pairs whose result would still depend on their order (one
# undoes the other) are refused with 602.

_PHASE: dict[type, int] = {Activate: 0, GetInfo: 2, GetDownloadLinks: 2}  # any other change: 1
# SoftCancel + HardCancel is not one: either way the subscription ends hard-cancelled (wire order decides the rest).
_CONTRADICTIONS: tuple[tuple[type, type], ...] = ((Pause, Resume), (SoftCancel, Renew))


@dataclass(frozen=True)
class _Contradiction:
    item: Item
    message: str


@dataclass(frozen=True)
class _LicenceChange:
    """A HardCancel and an Activate of one existing SubscriberId in one container, in either wire order."""

    cancel: HardCancel
    activate: Activate

    @property
    def items(self) -> tuple[Item, Item]:
        return self.cancel, self.activate


Step = Item | _Contradiction | _LicenceChange


def application_order(items: tuple[Item, ...], known: Collection[str] = ()) -> list[Step]:
    """The container's items as they are applied: each subscriber's items sorted by ``_PHASE`` into the places its
    items held on the wire, contradictory pairs refused, a HardCancel + Activate pair of a subscriber in ``known``
    (one that exists) as one licence change."""
    by_subscriber: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_subscriber.setdefault(item.subscriber_id, []).append(i)
    slots: list[Step | None] = list(items)
    for places in by_subscriber.values():
        if len(places) < 2:
            continue
        mine = sorted((items[i] for i in places), key=lambda it: _PHASE.get(type(it), 1))  # stable: wire order kept
        kinds = {type(it) for it in mine}
        clash = {k for pair in _CONTRADICTIONS if set(pair) <= kinds for k in pair}
        steps: list[Step] = []
        for it in mine:
            if type(it) in clash:
                names = " and ".join(sorted(k.__name__ for k in clash))
                steps.append(
                    _Contradiction(
                        it,
                        f"{names} of one SubscriberId in one container contradict each other "
                        f"(the result would depend on their order): send them in separate "
                        f"containers",
                    )
                )
            else:
                steps.append(it)
        cancels = [s for s in steps if isinstance(s, HardCancel)]
        activations = [s for s in steps if isinstance(s, Activate)]
        if len(cancels) == 1 and len(activations) == 1 and cancels[0].subscriber_id in known:
            pair = _LicenceChange(cancels[0], activations[0])
            steps = [pair if s is activations[0] else s for s in steps if s is not cancels[0]]
        for place, step in zip(places, steps, strict=False):
            slots[place] = step
        for place in places[len(steps) :]:  # a pair takes one place
            slots[place] = None
    return [s for s in slots if s is not None]
