"""``create_app(settings)``: one WSGI app serving /korm/v1, /_sim (and the KSS endpoints)."""

from __future__ import annotations

from flask import Flask

from ksimkit import contracts
from ksimkit.simulators.core import harness
from ksimkit.simulators.core.catalog import load_profile
from ksimkit.simulators.core.openapi import Contract
from ksimkit.simulators.core.settings import Settings, load_settings
from ksimkit.simulators.core.store import Store
from ksimkit.simulators.core.web import Runtime, install_error_handlers

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
    from ksimkit.simulators.admin.api import bp as admin_bp
    from ksimkit.simulators.admin.harness import bp as admin_harness_bp
    from ksimkit.simulators.korm.api import bp as korm_bp
    from ksimkit.simulators.kss.api import bp as kss_bp
    from ksimkit.simulators.kss.soap import bp as kss_soap_bp

    app.register_blueprint(korm_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_harness_bp)
    app.register_blueprint(kss_bp)
    app.register_blueprint(kss_soap_bp)
    from ksimkit.simulators.endpoints import bp as index_bp

    app.register_blueprint(index_bp)  # GET /: what is served here
    return app
