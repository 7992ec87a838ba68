"""The fault kinds the harness applies to any service's answer, on the wire (docs/harness.md).

Each ``apply(fault, response, environ)`` returns the answer the client gets and its body as sent (``None``: no
answer at all, or one the journal should show as the service's own). Kinds a single front end answers in its own
shape (the KSS SOAP faults) are declared by that service (``ksimkit.simulators.kss.faults``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from flask import Response

from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.fault_kinds import FaultKind
from ksimkit.simulators.core.faults import Fault
from ksimkit.simulators.core.web import problem_response

Environ = dict[str, Any]


def _socket_of(environ: Environ) -> socket.socket | None:
    return environ.get("werkzeug.socket") or environ.get("gunicorn.socket")


def hang_up(environ: Environ) -> None:
    """Close the connection under the server: the client gets no (more) bytes. Without a socket (an in-process
    WSGI transport) the closest thing is an exception out of the answer's body."""
    sock = _socket_of(environ)
    if sock is None:
        raise ConnectionAbortedError("ksim test harness: the connection is dropped (fault rule)")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _truncated(head: bytes, environ: Environ) -> Iterator[bytes]:
    if head:
        yield head
    hang_up(environ)


def _dropped(environ: Environ) -> Iterator[bytes]:
    hang_up(environ)
    yield from ()


def half(body: bytes) -> bytes:
    """The first half of a body, cut between UTF-8 characters (so a client fails on the syntax, not the encoding)."""
    head = body[: len(body) // 2]
    while head and head[-1] & 0xC0 == 0x80:  # a continuation byte: drop the whole character
        head = head[:-1]
    return head[:-1] if head and head[-1] >= 0xC0 else head


def _status(fault: Fault, response: Response, environ: Environ) -> tuple[Response, bytes | None]:
    spec = fault.spec
    message = spec["message"] or f"injected by the ksim test harness (fault rule {fault.rule_id})"
    answer = problem_response(Problem(spec["status"], spec["code"], message, fault=fault.rule_id))
    if spec.get("retry_after") is not None:
        answer.headers["Retry-After"] = str(spec["retry_after"])
    return answer, None


def _drop(fault: Fault, response: Response, environ: Environ) -> tuple[Response, bytes | None]:
    return Response(_dropped(environ), status=response.status_code), None


def _malformed(fault: Fault, response: Response, environ: Environ) -> tuple[Response, bytes | None]:
    """Half the answer, then bytes no JSON or XML parser takes (a NUL is in neither)."""
    broken = half(response.get_data()) + b"\x00<<ksim: malformed answer>>"
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    return Response(broken, status=response.status_code, content_type=content_type), broken


def _truncate(fault: Fault, response: Response, environ: Environ) -> tuple[Response, bytes | None]:
    """The headers of the whole answer, half its body, then the connection closes."""
    body = response.get_data()
    head = half(body)
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    answer = Response(_truncated(head, environ), status=response.status_code, content_type=content_type)
    answer.headers["Content-Length"] = str(len(body))
    return answer, head


WIRE_FAULT_KINDS = (
    FaultKind(
        "delay",
        "the answer waits delay_ms (to delay_max_ms) before it goes out",
        takes_when=False,
        requires=("delay_ms",),
    ),
    FaultKind(
        "status",
        "another HTTP status, as problem+json",
        {"status": 503, "code": None, "message": None, "retry_after": None},
        apply=_status,
    ),
    FaultKind("malformed", "half the answer, then bytes no JSON or XML parser takes", apply=_malformed),
    FaultKind("truncated", "the whole answer's headers, half its body, then the connection closes", apply=_truncate),
    FaultKind("drop", "the connection closes before any byte of the answer", sends_answer=False, apply=_drop),
)
