"""The test harness's one interception point: fault injection, strict contract mode and the request journal.

Every front end of a simulated service (KORM REST, KSS SOAP, KSS REST) is a ``Front`` its service lists
(``core.service``), and runs each call through ``serve(identify, work)``:

    identify(conn) -> CallContext        who calls (raises the front end's own refusal when nobody)
    work(conn, ctx, fault) -> Response   the call itself; ``fault`` is the fault that fired, for the kinds only
                                         that front end can answer (a KSS TransactionError, say), else ignored

``serve`` runs both in the request's one transaction, after it has picked the request's fault (if a rule fires)
and refused a non-conforming request when the partner is strict. A fault ``before`` rolls the work back (nothing
changes); ``after`` lets it commit, so only the answer is lost. Flask hooks (``install``) then put the fault on
the wire (a delay, another status, a malformed or truncated body, a dropped connection) and write the journal
entry, with the contract verdict, once the answer is known. Rules modules never see any of this.

The usual call (no fault fired, the work answered) writes its journal entry in its own transaction, as the last
statement before the commit: the answer is known by then, and one transaction costs less than two. Every other
call (a fault, a refusal raised out of the work, a crash) is journaled by the Flask hook in a transaction of its
own, as before. Either way the entry is committed before the client has the answer.

Requests the harness cannot attribute to a partner (no valid token or AccessInfo) are not journaled, and the
control plane (``/_sim``) is not journaled at all.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, Request, Response, g, request
from sqlalchemy.engine import Connection
from werkzeug.exceptions import RequestEntityTooLarge

from ksimkit.simulators.core import clock_mode, faults, journal
from ksimkit.simulators.core.clock import iso_utc, system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import Problem, SimulatorError
from ksimkit.simulators.core.faults import Fault
from ksimkit.simulators.core.openapi import Violation
from ksimkit.simulators.core.partners import partner_by_token
from ksimkit.simulators.core.store import (
    fault_rules,
    lock_partner,
    partner_settings,
    partners,
)
from ksimkit.simulators.core.store import (
    journal as journal_table,
)
from ksimkit.simulators.core.web import bearer_token, problem_response, runtime

log = logging.getLogger("ksim.harness")

__all__ = ["Exchange", "Front", "NonConforming", "exchange", "install", "rest_front", "serve"]

# Request headers kept in a journal entry; the credentials are masked.
_SECRET_HEADERS = ("authorization", "cookie", "proxy-authorization")
_PASSWORD = re.compile(
    rb"(<(?:[A-Za-z_][\w.-]*:)?Password(?:\s[^>]*)?>)(.*?)(</(?:[A-Za-z_][\w.-]*:)?Password\s*>)", re.S
)


@dataclass(frozen=True)
class Front:
    """A front end of a simulated service as the harness sees it."""

    name: str  # korm, kss, kss-rest: the `service` of fault rules and journal entries
    prefix: str  # its requests' path prefix
    operations: Callable[[], Iterable[str]]  # names a fault rule's `operation` may take
    describe: Callable[[Request], str | None]  # the operation of a request (before the front end reads it)
    violations: Callable[[Request, Exchange], list[Violation]]  # the contract verdict
    rest: bool = True  # bearer-token partners; problem+json refusals


def _headers_of(req: Request) -> Mapping[str, str]:
    """Werkzeug's headers: a case-insensitive mapping in all but its declared type."""
    return cast("Mapping[str, str]", req.headers)


def rest_front(name: str, prefix: str, contract: str) -> Front:
    """A REST service whose requests are checked against ``contracts/<contract>`` (path, query, headers, body)."""

    def describe(req: Request) -> str | None:
        op, _ = runtime().contracts[contract].match(req.method, req.path)
        return None if op is None else op.operation_id

    def violations(req: Request, ex: Exchange) -> list[Violation]:
        return (
            runtime()
            .contracts[contract]
            .request_violations(req.method, req.path, list(req.args.items(multi=True)), _headers_of(req), ex.body())
        )

    def operations() -> list[str]:
        return [op.operation_id for op in runtime().contracts[contract].operations]

    return Front(name, prefix, operations, describe, violations)


def operations_by_service() -> dict[str, list[str]]:
    return {front.name: list(front.operations()) for front in runtime().services.fronts}


class NonConforming(SimulatorError):
    """A strict partner's request breaks the contract: REST answers 422 VALIDATION_ERROR, SOAP TransactionError 709."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v['path']}: {v['message']}" for v in violations[:5]))
        self.violations = violations


_UNREAD = object()


@dataclass
class Exchange:
    """What the harness knows of the request at hand (``flask.g``)."""

    service: Front
    started: float
    at: Any  # system time, aware UTC
    operation: str | None
    items: tuple[str, ...] = ()
    partner_id: str | None = None
    partner_now: Any = None
    fault: Fault | None = None
    raw_body: Any = _UNREAD
    journaled: bool = False  # the entry was committed with the work (``serve``)
    _violations: list[Violation] | None = field(default=None, repr=False)

    def body(self) -> bytes | None:
        """The request body (``None``: larger than ``max_body_bytes``); SOAP hands over what it read itself."""
        if self.raw_body is _UNREAD:
            try:
                self.raw_body = request.get_data(cache=True)
            except RequestEntityTooLarge:
                self.raw_body = None
        return self.raw_body

    def violations(self) -> list[Violation]:
        if self._violations is None:
            try:
                self._violations = self.service.violations(request, self)
            except Exception:  # a verdict must never break the call it judges
                log.exception("contract verdict failed")
                self._violations = [
                    {"in": "harness", "path": "/", "message": "the verdict could not be computed; see the log"}
                ]
        return self._violations


def exchange() -> Exchange | None:
    return g.get("ksim_exchange")


def note_body(raw: bytes | None) -> None:
    """The front end read the body from the stream itself (SOAP): the journal and the verdict use this."""
    ex = exchange()
    if ex is not None:
        ex.raw_body = raw


def note_items(items: tuple[str, ...]) -> None:
    """The KSS item kinds of the request, for fault rules and the journal (known once the envelope is read)."""
    ex = exchange()
    if ex is not None:
        ex.items = items


# ============================================================================================ serving


# The partner's harness switches in one statement, built once: its own strict setting (None: the setting's
# default) and whether it has any fault rule at all (the rules are read only then).
_SWITCHES = sa.select(
    sa.select(partner_settings.c.strict_contract)
    .where(partner_settings.c.partner_id == sa.bindparam("p_partner"))
    .scalar_subquery(),
    sa.exists().where(fault_rules.c.partner_id == sa.bindparam("p_partner")),
)


def _switches(conn: Connection, partner_id: str) -> tuple[bool, bool]:
    """(strict contract mode, the partner has fault rules), read in the request's transaction."""
    own, has_rules = conn.execute(_SWITCHES, {"p_partner": partner_id}).one()
    return (runtime().settings.strict_contract if own is None else bool(own)), bool(has_rules)


def serve(
    identify: Callable[[Connection], CallContext], work: Callable[[Connection, CallContext, Fault | None], Response]
) -> Response:
    """One call of a simulated service, in one transaction: who calls, the fault, strict mode, the work."""
    ex = exchange()
    raised: BaseException | None = None
    journaled = False
    with runtime().store.begin() as conn:
        ctx = clock_mode.caught_up(conn, identify(conn), runtime().services.due_sources)  # a running clock first
        if ex is None:  # not a registered service's request (a unit test calling a view, say)
            return work(conn, ctx, None)
        ex.partner_id, ex.partner_now = ctx.partner_id, ctx.clock.now
        strict, has_rules = _switches(conn, ctx.partner_id)
        fault, touched = (
            faults.choose(conn, ctx.partner_id, ex.service.name, ex.operation, ex.items, runtime().services.fault_kinds)
            if has_rules
            else (None, False)
        )
        ex.fault = fault
        if not touched:  # the usual path: a refusal rolls everything back
            if strict and ex.violations():
                raise NonConforming(ex.violations())
            response = work(conn, ctx, None)
            journaled = _record_in(conn, ex, response)  # the last statement before the commit
        else:
            # A rule matched: its counters commit whatever the work does, so the work runs in a savepoint.
            try:
                with conn.begin_nested() as savepoint:
                    if strict and ex.violations():
                        raise NonConforming(ex.violations())
                    response = work(conn, ctx, fault)
                    if fault is not None and fault.rolls_back:
                        savepoint.rollback()
            except Exception as exc:  # re-raised once the counters are committed: the front end answers it as usual
                raised = exc
    if raised is not None:
        raise raised
    ex.journaled = journaled  # only once committed: a failed commit is journaled by the hook, as its 500
    return response


# ============================================================================================ the wire


def _clip(raw: bytes | None, limit: int, masked: bool = False) -> dict[str, Any] | None:
    if raw is None:
        return None
    if masked:
        raw = _PASSWORD.sub(rb"\1***\3", raw)
    return {
        "body": raw[:limit].decode("utf-8", errors="replace"),
        "body_bytes": len(raw),
        "body_truncated": len(raw) > limit,
    }


def _headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        shown = value.split(" ", 1)[0] + " ***" if key in _SECRET_HEADERS else value
        kept[key] = f"{kept[key]}, {shown}" if key in kept else shown
    return kept


def _finish(response: Response) -> Response:
    ex = exchange()
    if ex is None:
        return response
    fault = ex.fault
    answer_status = response.status_code
    sent: bytes | None = b""
    if fault is not None:
        if fault.delay_s:
            time.sleep(fault.delay_s)  # outside every transaction: other requests go on meanwhile
        if fault.declared.answered_by is None and fault.declared.apply is not None:
            response, sent = fault.declared.apply(fault, response, request.environ)
        response.headers["X-Ksim-Fault"] = fault.rule_id  # which rule answered (nobody reads it on a drop)
    try:
        _record(ex, response, sent, answer_status)
    except Exception:  # the journal must never break the answer
        log.exception("could not write the journal entry")
    return response


def _record(ex: Exchange, response: Response, sent: bytes | None, answer_status: int) -> None:
    """The journal entry of a call the hook finishes (faulted, refused, crashed), in a transaction of its own."""
    if ex.journaled:
        return
    settings = runtime().settings
    if settings.journal_limit <= 0:
        return
    partner_id = ex.partner_id
    if partner_id is None and ex.service.rest:  # e.g. an unknown route or method, with a valid token
        token = bearer_token()
        if token:
            with runtime().store.begin() as conn:
                partner = partner_by_token(conn, token)
            partner_id = None if partner is None else partner.id
    if partner_id is None:
        return
    values = _row(ex, partner_id, response, sent, answer_status)
    with runtime().store.begin() as conn:
        # In the partner's turn, like every transaction of a partner (store.py): its prune and a call's cannot
        # take the same journal rows in opposite orders on PostgreSQL.
        conn.execute(lock_partner(sa.select(partners.c.id).where(partners.c.id == partner_id)))
        journal.insert(conn, values, settings.journal_limit)


def _record_in(conn: Connection, ex: Exchange, response: Response) -> bool:
    """The journal entry of a call answered without a fault, written in the call's own transaction (``conn``).
    False: not written (the journal is off, or building the entry failed: the hook then tries on its own)."""
    settings = runtime().settings
    if settings.journal_limit <= 0 or ex.partner_id is None:
        return False
    try:
        values = _row(ex, ex.partner_id, response, b"", response.status_code)
    except Exception:  # the journal must never break the answer
        log.exception("could not build the journal entry")
        return False
    if conn.dialect.name == "sqlite":  # a failed statement leaves a SQLite transaction usable...
        try:
            journal.insert(conn, values, settings.journal_limit)
        except Exception:
            dbapi = conn.connection.dbapi_connection
            if dbapi is None or not dbapi.in_transaction:  # ...unless SQLite rolled it all back (disk
                raise  # full, I/O error): then the work is lost too, and the call must fail, not answer success
            log.exception("could not write the journal entry")
        return True
    try:  # elsewhere (PostgreSQL) a failed statement aborts the transaction: fence it
        with conn.begin_nested():
            journal.insert(conn, values, settings.journal_limit)
    except Exception:
        log.exception("could not write the journal entry")
    return True


def _row(ex: Exchange, partner_id: str, response: Response, sent: bytes | None, answer_status: int) -> dict[str, Any]:
    settings = runtime().settings
    fault = ex.fault
    dropped = fault is not None and not fault.declared.sends_answer
    if dropped:
        answer = None
    else:
        body = sent if sent else (b"" if response.is_streamed else response.get_data())
        answer = {"headers": _headers(response.headers.items()), **(_clip(body, settings.journal_body_bytes) or {})}
    fault_json = None
    if fault is not None:
        fault_json = {**fault.to_json(), "answer_status": answer_status}
    details = {
        "partner_now": None if ex.partner_now is None else iso_utc(ex.partner_now),
        "query": request.query_string.decode("latin-1"),
        "duration_ms": round((time.perf_counter() - ex.started) * 1000, 3),
        "request": {
            "headers": _headers(request.headers.items()),
            **(
                _clip(ex.body(), settings.journal_body_bytes, masked=not ex.service.rest)
                or {"body": "", "body_bytes": None, "body_truncated": True}
            ),
        },
        "response": answer,
    }
    return journal.row_values(
        partner_id=partner_id,
        at=ex.at,
        service=ex.service.name,
        method=request.method,
        path=request.path,
        operation=ex.operation,
        items=ex.items,
        status=None if dropped else response.status_code,
        violations=ex.violations(),
        fault=fault_json,
        details=details,
    )


def _begin() -> None:
    path = request.path
    for front in runtime().services.fronts:
        if path == front.prefix.rstrip("/") or path.startswith(front.prefix.rstrip("/") + "/"):
            g.ksim_exchange = Exchange(front, time.perf_counter(), system_now(), front.describe(request))
            return


def _non_conforming(exc: NonConforming) -> Response:
    return problem_response(
        Problem(
            422,
            "VALIDATION_ERROR",
            f"strict contract mode: the request does not conform to the contract: {exc}",
            rule="SIM-ERR-1",
            errors=exc.violations,
        )
    )


def install(app: Flask) -> None:
    """Hook the harness into the app: an exchange per request of a registered service, the wire fault and the
    journal entry once the answer is known, and strict mode's REST refusal."""
    app.before_request(_begin)
    app.after_request(_finish)
    app.register_error_handler(NonConforming, _non_conforming)


def reset(conn: Connection, partner_id: str) -> None:
    """A reset partner starts with no fault rules and an empty journal (its strict switch stays, as a setting)."""
    conn.execute(sa.delete(fault_rules).where(fault_rules.c.partner_id == partner_id))
    conn.execute(sa.delete(journal_table).where(journal_table.c.partner_id == partner_id))
