"""The endpoints ``ksim serve`` offers, declared once: the start banner lists them and ``GET /`` links them."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, request
from markupsafe import escape

import ksimkit
from ksimkit.simulators.core.web import json_response

# The docs are not served; an index names them as they lie in the source distribution and the repository.
DOCS_BASE = "docs/"


@dataclass(frozen=True)
class Endpoint:
    path: str
    what: str
    contract: str  # where the running server hands out its contract
    doc: str  # docs/<doc>


ENDPOINTS = (
    Endpoint("/korm/v1", "KORM SS REST", "/korm/v1/openapi.yaml", "korm.md"),
    Endpoint("/kss/soap/upi", "KSS SOAP 1.1", "/kss/soap/upi?wsdl", "kss-wire.md"),
    Endpoint("/kss/v1", "KSS partner REST: bills, reports, audit", "/kss/v1/openapi.yaml", "kss-rest.md"),
    Endpoint("/_sim", "control plane (admin token)", "/_sim/openapi.yaml", "control-plane.md"),
)


def banner_lines(base_url: str) -> list[str]:
    """One line per endpoint, for the start banner."""
    width = max(len(base_url + e.path) for e in ENDPOINTS)
    return [f"  {base_url + e.path:<{width}}  {e.what} (contract {e.contract}; {DOCS_BASE}{e.doc})" for e in ENDPOINTS]


bp = Blueprint("index", __name__)


@bp.get("/")
def index() -> Response:
    """What is served here: JSON, or a small HTML page when a browser asks for one."""
    entries = [{"path": e.path, "what": e.what, "contract": e.contract, "doc": DOCS_BASE + e.doc} for e in ENDPOINTS]
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        rows = "".join(
            f'<li><code>{escape(e["path"])}</code>: {escape(e["what"])}; contract <a href="{escape(e["contract"])}">'
            f"{escape(e['contract'])}</a>; documentation {escape(e['doc'])}</li>"
            for e in entries
        )
        page = (
            f"<!doctype html><meta charset=utf-8><title>ksim {escape(ksimkit.__version__)}</title>"
            f"<h1>ksim {escape(ksimkit.__version__)}</h1><ul>{rows}</ul>"
            '<p>Health: <a href="/_sim/health">/_sim/health</a></p>'
        )
        return Response(page, mimetype="text/html")
    return json_response(
        {"service": "ksim", "version": ksimkit.__version__, "endpoints": entries, "health": "/_sim/health"}
    )
