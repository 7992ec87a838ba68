"""Running the app on a real socket: in-process (tests, demo) or under gunicorn (``ksim serve``)."""

from __future__ import annotations

import json
import threading
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the request journal is the record; no access log on stderr

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What Python's HTTP server refuses before the app sees it (over 100 headers, a request line over 64 kB,
        a malformed request line) is problem+json too, never its HTML page (SIM-ERR-1)."""
        from ksimkit.simulators.core.errors import Problem

        problem = Problem(
            code, "BAD_REQUEST" if code == 400 else "HTTP_ERROR", explain or message or "refused", rule="SIM-ERR-1"
        )
        if code == 431:
            problem = Problem(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", explain or message or "", rule="SIM-ERR-1")
        elif code == 414:
            problem = Problem(414, "URI_TOO_LONG", explain or message or "", rule="SIM-ERR-1")
        body = json.dumps(problem.to_dict()).encode()
        self.close_connection = True
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass  # the client is gone


class InProcessServer:
    """A real threaded WSGI server on a free loopback port, in a background thread."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ksim-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> InProcessServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# gunicorn's own limit of one header line: far past ksim's (MAX_HEADER_BYTES), so ksim's problem+json answers first.
GUNICORN_FIELD_BYTES = 1 << 20


def banner(settings: Any) -> str:
    """The start banner: where, which database (password hidden), and every endpoint."""
    from ksimkit.simulators.core.store import database_url
    from ksimkit.simulators.endpoints import banner_lines

    base = f"http://{settings.host}:{settings.port}"
    database = database_url(settings.database_url).render_as_string(hide_password=True)
    log = "access log on stdout" if settings.access_log else "no access log (--access-log turns it on)"
    return "\n".join(
        [
            f"ksim listening on {base} (database {database}; {settings.workers} workers; {log})",
            *banner_lines(base),
            f"  {base}/  index of the above; Ctrl-C stops",
        ]
    )


_gunicorn_request = threading.local()  # the request a gunicorn thread serves (its pre_request hook)


def _remember_request(worker: Any, req: Any) -> None:
    _gunicorn_request.req = req


class _CloseWhenAsked:
    """gunicorn drops an app's ``Connection`` header (hop-by-hop) and keeps the connection alive, even after a
    refused body it never read (the next request on it would fail). An answer with ``Connection: close`` (core/web.py)
    marks gunicorn's request to close, so gunicorn sends ``Connection: close`` and closes cleanly."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if any(k.lower() == "connection" and v.strip().lower() == "close" for k, v in headers):
                req = getattr(_gunicorn_request, "req", None)
                if req is not None:
                    req.must_close = True
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def run_gunicorn(settings: Any) -> None:
    """Serve with gunicorn workers sharing state through the database."""
    from gunicorn.app.base import BaseApplication

    from ksimkit.simulators.app import create_app

    app = create_app(settings)  # built once in the master (schema created once); workers fork from it

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("loglevel", settings.log_level)
            # Opt-in access log (setting access_log, ksim serve --access-log): one line per request on stdout.
            self.cfg.set("accesslog", "-" if settings.access_log else None)
            # gunicorn answers over-long request lines and headers with an HTML page of its own; its limits are
            # raised far past ksim's, which the app enforces with problem+json (core/web.py, request limits).
            self.cfg.set("limit_request_line", 0)
            self.cfg.set("limit_request_fields", 32768)
            self.cfg.set("limit_request_field_size", GUNICORN_FIELD_BYTES)
            self.cfg.set("pre_request", _remember_request)
            self.cfg.set("preload_app", True)
            # A forked worker must not share the master's database connections.
            self.cfg.set("post_fork", lambda server, worker: app.extensions["ksim"].store.engine.dispose(close=False))
            self.cfg.set("when_ready", lambda server: print(banner(settings), flush=True))

        def load(self) -> Any:
            return _CloseWhenAsked(app)

    _App().run()
