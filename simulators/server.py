"""Running the app on a real socket: in-process (tests, demo) or under gunicorn (``ksim serve``)."""
from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the request journal is the record; no access log on stderr


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

    def start(self) -> "InProcessServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "InProcessServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


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
            self.cfg.set("accesslog", None)
            self.cfg.set("preload_app", True)
            # A forked worker must not share the master's database connections.
            self.cfg.set("post_fork", lambda server, worker: app.extensions["ksim"].store.engine.dispose(close=False))
            self.cfg.set("when_ready", lambda server: print(
                f"ksim listening on http://{settings.host}:{settings.port} "
                f"(KORM /korm/v1, control plane /_sim; database {settings.database_url}; {settings.workers} workers)",
                flush=True,
            ))

        def load(self) -> Flask:
            return app

    _App().run()
