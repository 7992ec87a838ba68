"""Shared fixtures: a real store for rule tests, a real server on a free port for wire tests; both on SQLite and,
when a server is given, PostgreSQL (tests/databases.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksimkit.simulators.app import create_app
from ksimkit.simulators.core import clock_mode
from ksimkit.simulators.core.catalog import load_profile
from ksimkit.simulators.core.clock import move_clock, read_clock
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.partners import create_partner, load_partner
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.core.store import Store
from ksimkit.simulators.server import InProcessServer
from tests.databases import backend_params, database_for, empty_tables, fresh_postgres_database

ADMIN = {"Authorization": "Bearer test-admin"}


@pytest.fixture(scope="session")
def postgres_store() -> Iterator[Store]:
    """One PostgreSQL database per worker for the rule tests; each test starts from empty tables."""
    s = Store(fresh_postgres_database("rules"))
    s.create_schema()
    yield s
    s.dispose()


@pytest.fixture(params=backend_params())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A real, empty store: a SQLite file, and (tests/databases.py) the same test on PostgreSQL."""
    import ksimkit.simulators.korm.events  # noqa: F401  (registers its due events)
    import ksimkit.simulators.korm.rules  # noqa: F401  (registers its reset hook)

    if request.param == "postgresql":
        s = request.getfixturevalue("postgres_store")
        empty_tables(s)
        yield s
        return
    s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    s.create_schema()
    yield s
    s.dispose()


class World:
    """A partner on a real store, driven through the rules directly, with a clock to move."""

    def __init__(self, store: Store, **partner: Any) -> None:
        self.store = store
        self.running = False  # True: the rules see a running clock (SIM-CLOCK-1), still moved only by the test
        partner.setdefault("now", dt.datetime(2026, 4, 15, 9, 0, tzinfo=dt.UTC))
        with store.begin() as conn:
            self.partner_id = create_partner(conn, faker_seed=0, default_timezone="UTC", **partner)["id"]

    def ctx(self, conn: Any, actor: str = "tester") -> CallContext:
        partner = load_partner(conn, self.partner_id)
        ctx = CallContext(partner=partner, clock=partner.clock, profile=load_profile(), actor=actor)
        ctx = clock_mode.caught_up(conn, ctx)  # as every request does: a running clock moves to wall time first
        if self.running and not ctx.clock.running:  # what the rules see of a running clock, at a fixed instant
            clock = dataclasses.replace(ctx.clock, running=True)
            ctx = dataclasses.replace(ctx, clock=clock, partner=dataclasses.replace(ctx.partner, clock=clock))
        return ctx

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.store.begin() as conn:
            return fn(conn, self.ctx(conn), *args, **kwargs)

    def go_to(self, day: str) -> None:
        with self.store.begin() as conn:
            target = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(9, 0), dt.UTC)
            move_clock(conn, self.partner_id, target)

    def today(self) -> dt.date:
        with self.store.begin() as conn:
            return read_clock(conn, self.partner_id).today


@pytest.fixture
def world(store: Store) -> World:
    return World(store)


@pytest.fixture
def make_world(store: Store) -> Any:
    return lambda **kw: World(store, **kw)


@pytest.fixture(scope="session", params=backend_params())
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """The real app on a real socket, with its own database (SQLite file; PostgreSQL), for the whole session."""
    url = database_for(request.param, "server", tmp_path_factory.mktemp("ksim"))
    app = create_app(Settings(database_url=url, admin_token="test-admin"))
    with InProcessServer(app) as srv:
        yield srv


@pytest.fixture
def admin(server: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/_sim", headers=ADMIN, timeout=10) as client:
        yield client


@pytest.fixture
def new_partner(admin: httpx.Client) -> Any:
    def make(**body: Any) -> dict[str, Any]:
        body.setdefault("now", "2026-04-15T09:00:00Z")
        response = admin.post("/partners", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


@pytest.fixture
def partner(new_partner: Any) -> dict[str, Any]:
    return new_partner()


@pytest.fixture
def korm(server: InProcessServer, partner: dict[str, Any]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {partner['token']}"}
    with httpx.Client(base_url=server.url + "/korm/v1", headers=headers, timeout=10) as client:
        yield client
