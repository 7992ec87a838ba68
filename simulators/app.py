"""``create_app(settings)``: one WSGI app serving the services it is handed (by default KORM SS, KSS and the
control plane), each wired from its ``Service`` value (``core.service``): blueprints, harness fronts, tables."""

from __future__ import annotations

from flask import Flask

from ksimkit import contracts
from ksimkit.simulators.core import harness
from ksimkit.simulators.core.catalog import load_profile
from ksimkit.simulators.core.openapi import Contract
from ksimkit.simulators.core.service import Services
from ksimkit.simulators.core.settings import Settings, load_settings
from ksimkit.simulators.core.store import Store
from ksimkit.simulators.core.web import Runtime, install_error_handlers
from ksimkit.simulators.services import default_services

REST_CONTRACTS = ("korm-ss.openapi.yaml", "admin.openapi.yaml", "kss-rest.openapi.yaml")
# Contract enums the app fills from its own vocabularies, so the served contract checks what this app knows.
FAULT_KIND_ENUM = ("admin.openapi.yaml", "FaultKind")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    settings = settings or load_settings()
    services = services or default_services()
    store = Store(settings.database_url)
    store.create_schema(services.tables)
    app = Flask("ksim")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    enums = {FAULT_KIND_ENUM[0]: {FAULT_KIND_ENUM[1]: list(services.fault_kinds)}}
    app.extensions["ksim"] = Runtime(
        settings=settings,
        store=store,
        profile=load_profile(settings.profile_path),
        contracts={name: Contract(contracts.path(name), enums.get(name)) for name in REST_CONTRACTS},
        services=services,
    )
    install_error_handlers(app)
    harness.install(app)  # fault injection, strict contract mode, the request journal (docs/harness.md)
    for blueprint in services.blueprints:
        app.register_blueprint(blueprint)
    return app
