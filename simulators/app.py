"""``create_app(settings)``: one WSGI app serving /korm/v1, /_sim (and the KSS endpoints)."""
from __future__ import annotations

import contracts
from flask import Flask

from simulators.core import harness
from simulators.core.catalog import load_profile
from simulators.core.openapi import Contract
from simulators.core.settings import Settings, load_settings
from simulators.core.store import Store
from simulators.core.web import Runtime, install_error_handlers

REST_CONTRACTS = ("korm-ss.openapi.yaml", "admin.openapi.yaml", "kss-rest.openapi.yaml")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    store = Store(settings.database_url)
    store.create_schema()
    app = Flask("ksim")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ksim"] = Runtime(
        settings=settings,
        store=store,
        profile=load_profile(settings.profile_path),
        contracts={name: Contract(contracts.path(name)) for name in REST_CONTRACTS},
    )
    install_error_handlers(app)
    harness.install(app)  # fault injection, strict contract mode, the request journal (docs/harness.md)
    from simulators.admin.api import bp as admin_bp
    from simulators.admin.harness import bp as admin_harness_bp
    from simulators.korm.api import bp as korm_bp
    from simulators.kss.api import bp as kss_bp
    from simulators.kss.soap import bp as kss_soap_bp

    app.register_blueprint(korm_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_harness_bp)
    app.register_blueprint(kss_bp)
    app.register_blueprint(kss_soap_bp)
    return app
