"""The architecture's promises (docs/architecture.md): no import circle, modules of one job and bounded size,
services wired explicitly, and a fault kind added through the registry alone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from flask import Response

from ksimkit.simulators.app import create_app
from ksimkit.simulators.core.fault_kinds import FaultKind
from ksimkit.simulators.core.faults import Fault
from ksimkit.simulators.core.service import Services
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.server import InProcessServer
from ksimkit.simulators.services import default_services
from tests.architecture.imports import cycles, graph, modules

ADMIN = {"Authorization": "Bearer test-admin"}


def test_no_import_circle() -> None:
    """Every module of the namespace is importable on its own, in one order: no two modules need each other,
    however indirectly (function-level imports count; ``if TYPE_CHECKING:`` ones do not)."""
    assert cycles(graph()) == []


def test_the_graph_reader_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_services_plug_in_explicitly(tmp_path: Path) -> None:
    """An app handed only the control plane and KORM serves no KSS route and creates no KSS table: nothing
    a service module does at import wires it in."""
    services = default_services()
    only_korm = Services(tuple(s for s in services.members if s.name != "kss"))
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", admin_token="t"), services=only_korm)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    assert any(r.startswith("/korm/v1") for r in routes) and not any(r.startswith("/kss") for r in routes)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert "korm_subscriptions" in tables or any(t.startswith("korm") for t in tables)
    assert not any(t.startswith("kss") for t in tables)
    assert set(only_korm.fault_kinds) == set(services.fault_kinds) - set(services.fault_kinds.answered_by("kss"))


def _empty_answer(fault: Fault, response: Response, environ: dict) -> tuple[Response, bytes | None]:
    """A new kind for the test: the status of the answer, with an empty body."""
    return Response(b"", status=response.status_code), b""


EMPTY = FaultKind("empty", "the answer's status with no body", apply=_empty_answer)


@pytest.fixture
def extended_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    services = default_services().with_fault_kinds(EMPTY)
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", admin_token="test-admin"), services=services
    )
    with InProcessServer(app) as srv:
        yield srv


def test_a_fault_kind_added_through_the_registry_alone(extended_server: InProcessServer) -> None:
    """A ``FaultKind`` handed to the app is accepted by the control plane's contract and rule check, fires on
    the wire as its ``apply`` says, and is journaled: no other module was edited for it."""
    with httpx.Client(base_url=extended_server.url, headers=ADMIN, timeout=10) as admin:
        partner = admin.post("/_sim/partners", json={"name": "Registry Ltd"}).json()
        pid = partner["id"]
        rule = admin.post(f"/_sim/partners/{pid}/faults", json={"kind": "empty", "service": "korm", "times": 1})
        assert rule.status_code == 201, rule.text
        assert rule.json()["kind"] == "empty" and rule.json()["when"] == "before"
        unknown = admin.post(f"/_sim/partners/{pid}/faults", json={"kind": "sulk", "service": "korm"})
        assert unknown.status_code == 422
        korm = httpx.Client(base_url=extended_server.url + "/korm/v1", timeout=10)
        korm.headers["Authorization"] = f"Bearer {partner['token']}"
        faulted = korm.get("/products")
        assert faulted.status_code == 200 and faulted.content == b""
        assert faulted.headers["X-Ksim-Fault"] == rule.json()["id"]
        assert korm.get("/products").json()  # fired once: the next answer is whole
        journal = admin.get(f"/_sim/partners/{pid}/journal").json()["items"]
        assert any((entry.get("fault") or {}).get("kind") == "empty" for entry in journal)
        korm.close()


def test_the_served_contract_lists_the_apps_fault_kinds(extended_server: InProcessServer) -> None:
    """The contract file lists the default kinds; an app with more checks rules against its own."""
    import yaml

    from ksimkit import contracts

    on_file = yaml.safe_load(contracts.path("admin.openapi.yaml").read_text(encoding="utf-8"))
    assert on_file["components"]["schemas"]["FaultKind"]["enum"] == list(default_services().fault_kinds)


def test_every_module_is_in_the_namespace() -> None:
    assert "ksimkit.simulators.core.service" in modules() and "ksimkit.simulators.services" in modules()


MAX_LINES = 600


def test_no_module_over_600_lines() -> None:
    """Modules of one job stay readable: none in the namespace is over 600 lines."""
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
