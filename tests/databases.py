"""The databases the store, rules and wire tests run on: SQLite always, PostgreSQL when a server is given.

``KSIM_TEST_POSTGRES_URL`` names a PostgreSQL server's maintenance database (``scripts/postgres-test-server
start`` prints one; ``.ci/run`` sets it). The tests then create their own databases on it, one per xdist worker
and purpose, dropped first if a previous run left them. Without the variable the PostgreSQL cases are skipped,
unless ``KSIM_REQUIRE_POSTGRES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from ksimkit.simulators.core.store import Store, database_url, metadata

BACKENDS = ("sqlite", "postgresql")


def backend_params() -> list[object]:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]


def postgres_server() -> sa.URL:
    """The server's URL, or skip (fail under KSIM_REQUIRE_POSTGRES)."""
    raw = os.environ.get("KSIM_TEST_POSTGRES_URL", "").strip()
    if not raw:
        message = "no PostgreSQL server: set KSIM_TEST_POSTGRES_URL (scripts/postgres-test-server start prints one)"
        if os.environ.get("KSIM_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return database_url(raw)


def fresh_postgres_database(purpose: str) -> str:
    """An empty database of its own for this worker and purpose; its URL."""
    server = postgres_server()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = re.sub(r"[^a-z0-9_]", "_", f"ksim_test_{worker}_{purpose}".lower())[:63]
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def database_for(backend: str, purpose: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'{purpose}.db'}"
    return fresh_postgres_database(purpose)


def empty_tables(store: Store) -> None:
    """Delete every row (PostgreSQL: one TRUNCATE, far quicker than a new schema per test)."""
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with store.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
