"""The REST plumbing shared by every JSON front end: runtime, auth, body parsing, idempotency, problem+json."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from sqlalchemy.engine import Connection
from werkzeug.exceptions import HTTPException

from ksimkit.simulators.core import jsontext
from ksimkit.simulators.core.catalog import Profile
from ksimkit.simulators.core.clock import system_now
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.errors import Problem
from ksimkit.simulators.core.openapi import Contract
from ksimkit.simulators.core.partners import Partner, partner_by_token
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.core.store import Store, idempotency

if TYPE_CHECKING:  # the services are wired by create_app; web serves them without importing them
    from ksimkit.simulators.core.service import Services

PROBLEM_JSON = "application/problem+json"


@dataclass
class Runtime:
    """Everything a request needs, built once per process by ``create_app``."""

    settings: Settings
    store: Store
    profile: Profile
    contracts: dict[str, Contract]
    services: Services  # the services served, and what derives from them (fronts, due sources, fault kinds...)


def runtime() -> Runtime:
    return current_app.extensions["ksim"]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, headers=headers, mimetype="application/json"
    )


def problem_response(problem: Problem) -> Response:
    headers = dict(problem.headers)
    if problem.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="ksim"')
    return Response(json.dumps(problem.to_dict()), status=problem.status, headers=headers, mimetype=PROBLEM_JSON)


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}

# ksim's own limits on the request head (SIM-ERR-1; docs/korm.md, "Limits"). gunicorn's are set far higher
# (server.py), so these answer in problem+json instead of gunicorn's HTML page.
MAX_URL_BYTES = 8190  # path and query
MAX_HEADER_BYTES = 8190  # one header: name and value
MAX_HEADER_FIELDS = 100


def close_connection() -> None:
    """Answer this request with ``Connection: close``: its body was refused unread (over the size limit), so
    the connection cannot carry another request."""
    g.ksim_close = True


def _refuse_unusable_head() -> None:
    """Before any front end: a request line or header past the limits, or NUL in the path, query or a header
    (no database stores it), is refused here, the same way on every front end."""
    environ = request.environ
    url = environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", "")
    if len(url.encode("latin-1", "replace")) > MAX_URL_BYTES:
        raise Problem(
            414, "URI_TOO_LONG", f"the path and query are longer than {MAX_URL_BYTES} bytes", rule="SIM-ERR-1"
        )
    if len(request.headers) > MAX_HEADER_FIELDS:
        raise Problem(
            431,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            f"the request has {len(request.headers)} header fields; at most {MAX_HEADER_FIELDS} are taken",
            rule="SIM-ERR-1",
        )
    for name, value in request.headers.items():
        if len(name) + len(value) > MAX_HEADER_BYTES:
            raise Problem(
                431,
                "REQUEST_HEADER_FIELDS_TOO_LARGE",
                f"the header {name} is {len(name) + len(value)} bytes long; at most {MAX_HEADER_BYTES} "
                "bytes per header are taken",
                rule="SIM-ERR-1",
            )
        if "\x00" in value:
            raise _nul(f"/headers/{name}")
    if "\x00" in request.path:
        raise _nul("/path")
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise _nul(f"/query/{name}")


def _nul(where: str) -> Problem:
    """NUL (%00) where no stored text can hold it (PostgreSQL refuses it; SQLite alike, so both answer the same)."""
    where = where.replace("\x00", "\\u0000")
    return Problem(
        422,
        "VALIDATION_ERROR",
        f"{where}: contains NUL (%00), which no text holds",
        rule="SIM-ERR-1",
        errors=[{"path": where, "message": "contains NUL (\\u0000)"}],
    )


def install_error_handlers(app: Flask) -> None:
    """Every error is problem+json, never an HTML page; limits on the request head; ``Connection: close``
    after a body refused unread."""
    app.before_request(_refuse_unusable_head)

    @app.after_request
    def _close_if_asked(response: Response) -> Response:
        # werkzeug's own server closes every connection and says so itself
        werkzeug = request.environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug")
        if (g.get("ksim_close") or response.status_code == 413) and not werkzeug:
            response.headers["Connection"] = "close"
        if 300 <= response.status_code < 400 and response.mimetype == "text/html":  # werkzeug's trailing-slash redirect
            response.set_data(json.dumps({"location": response.headers.get("Location")}))
            response.mimetype = "application/json"
        return response

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "HTTP_ERROR")
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        detail = exc.description or exc.name
        if status == 413:
            detail = (
                f"the request body is larger than {runtime().settings.max_body_bytes} bytes (setting max_body_bytes)"
            )
        return problem_response(Problem(status, code, detail, headers=headers))

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        current_app.logger.exception("unhandled error")
        return problem_response(
            Problem(500, "INTERNAL_ERROR", f"{type(exc).__name__}: the simulator failed; see its log")
        )


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    return Problem(401, "UNAUTHORIZED", detail, rule="SIM-AUTH-1")


def authenticate_partner(conn: Connection) -> Partner:
    token = bearer_token()
    partner = partner_by_token(conn, token) if token else None
    if partner is None:
        raise unauthorized()
    return partner


def is_admin() -> bool:
    """The request carries the admin token."""
    token = bearer_token()
    return token is not None and secrets.compare_digest(token.encode(), runtime().settings.admin_token.encode())


def require_admin() -> None:
    if not is_admin():
        raise unauthorized("the control plane needs the admin token")


def call_context(partner: Partner) -> CallContext:
    actor = request.headers.get("X-Ksim-Actor", "").strip()[:200] or partner.name
    return CallContext(partner=partner, profile=runtime().profile, actor=actor)


def json_body(contract: str, operation_id: str, *, optional: bool = False) -> dict[str, Any]:
    """Parse and validate a JSON body against the contract; refuse with problem+json (SIM-ERR-1)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        body: Any = None
    else:
        mimetype = request.mimetype
        if mimetype and not (mimetype == "application/json" or mimetype.endswith("+json")):
            raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", f"send application/json, not {mimetype}", rule="SIM-ERR-1")
        try:
            body = jsontext.loads(raw)
        except jsontext.JsonLimitError as exc:
            raise Problem(
                422, "VALIDATION_ERROR", str(exc), rule="SIM-ERR-1", errors=[{"path": exc.path, "message": exc.message}]
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(400, "MALFORMED_JSON", f"the body is not valid JSON: {exc}", rule="SIM-ERR-1") from None
    if body is None and not optional:
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "a JSON object body is required",
            rule="SIM-ERR-1",
            errors=[{"path": "/", "message": "a JSON object is required"}],
        )
    errors = runtime().contracts[contract].raw_body_errors(operation_id, raw, body)
    if errors:
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5]),
            rule="SIM-ERR-1",
            errors=errors,
        )
    return body or {}


def parse_date(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


# Built once: building a statement per call costs more than running it.
_IDEMPOTENCY_GET = sa.select(idempotency).where(
    idempotency.c.partner_id == sa.bindparam("p_partner"), idempotency.c.key == sa.bindparam("p_key")
)
_IDEMPOTENCY_PUT = sa.insert(idempotency)


def idempotent(conn: Connection, partner_id: str, handler: Callable[[], Response]) -> Response:
    """SIM-IDEM-1: a retry with the same Idempotency-Key has its effect once and gets the first answer.

    Runs inside the request's transaction, so the stored answer and the effect commit together.
    Refusals are not stored: a retry after a 4xx is judged afresh.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handler()
    if not 1 <= len(key) <= 255:
        raise Problem(
            422,
            "VALIDATION_ERROR",
            "Idempotency-Key must be 1 to 255 characters",
            rule="SIM-IDEM-1",
            errors=[{"path": "/headers/Idempotency-Key", "message": "length 1..255"}],
        )
    fingerprint = hashlib.sha256(
        b"\n".join([request.method.encode(), request.path.encode(), request.get_data(cache=True)])
    ).hexdigest()
    stored = conn.execute(_IDEMPOTENCY_GET, {"p_partner": partner_id, "p_key": key}).first()
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise Problem(
                409,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with a different request; use a new key per operation",
                rule="SIM-IDEM-1",
            )
        return json_response(stored.body, stored.status, {**stored.headers, "Idempotent-Replayed": "true"})
    response = handler()
    if 200 <= response.status_code < 300:
        headers = {k: v for k, v in response.headers.items() if k in ("Location",)}
        conn.execute(
            _IDEMPOTENCY_PUT,
            {
                "partner_id": partner_id,
                "key": key,
                "fingerprint": fingerprint,
                "status": response.status_code,
                "body": response.get_json(),
                "headers": headers,
                "created_at": system_now(),
            },
        )
    return response
