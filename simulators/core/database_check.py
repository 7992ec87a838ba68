"""The database a command is about to use, checked before anything starts: a wrong URL, a missing driver, a
server that cannot be reached or a SQLite file in a directory that does not exist is one ``SettingError``
naming ``database_url`` and where it came from (docs/settings.md, "When something is wrong")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa

from ksimkit.simulators.core.settings import SettingError, Settings
from ksimkit.simulators.core.store import database_url

NAME = "database_url"
EXAMPLES = "sqlite:///path/to/state.db or postgresql://user:password@host:5432/ksim"
CONNECT_TIMEOUT_S = 5


def check_database(url: str, source: str) -> None:
    """Raise a ``SettingError`` unless ``url`` names a database ksim can open now. The default SQLite file's
    directory (``.ksim/``) is created; any other SQLite file's directory must exist."""
    try:
        parsed = database_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise SettingError(NAME, source, f"expected a database URL such as {EXAMPLES}, got {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _check_sqlite(parsed, url, source)
    elif backend == "postgresql":
        _check_postgresql(parsed, source)
    else:
        raise SettingError(NAME, source, f"ksim stores state in SQLite or PostgreSQL ({EXAMPLES}), got {backend}:")


def _check_sqlite(parsed: sa.URL, url: str, source: str) -> None:
    db = parsed.database
    if not db or db == ":memory:":
        raise SettingError(
            NAME,
            source,
            f"an in-memory SQLite database is not shared by the server's threads and workers: name a file ({EXAMPLES})",
        )
    folder = Path(db).parent
    if url == Settings.database_url:
        return  # the default's directory is ksim's own (.ksim/); the store creates it
    if folder.exists() and not folder.is_dir():
        raise SettingError(NAME, source, f"{folder} is not a directory")
    if not folder.exists():
        raise SettingError(
            NAME,
            source,
            f"the directory {folder} does not exist; create it, or name a SQLite file in an existing directory",
        )


def _check_postgresql(parsed: sa.URL, source: str) -> None:
    if importlib.util.find_spec("psycopg") is None:
        raise SettingError(NAME, source, "PostgreSQL needs the psycopg driver: pip install 'ksimkit[postgresql]'")
    engine = sa.create_engine(parsed, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()
        where = parsed.render_as_string(hide_password=True)
        raise SettingError(NAME, source, f"cannot connect to {where}: {reason[0] if reason else exc}") from None
    finally:
        engine.dispose()
