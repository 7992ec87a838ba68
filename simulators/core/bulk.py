"""The store's bulk writes: rows queued while a clock move runs its due events, written in batches.

A long clock move writes tens of thousands of history and audit rows; one ``INSERT`` each would cost more than the
events themselves. While ``queued(conn)`` is open (``core.due.run_due`` opens it), ``insert`` queues rows and
``flush`` writes them, one ``executemany`` per table, each table's rows in the order they were made. Outside it,
``insert`` writes at once.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_queues: dict[int, list[tuple[sa.Table, dict[str, Any]]]] = {}
_memos: dict[int, dict[Any, dict[int, Any]]] = {}  # the bulk writers' processed values, per run of due events
_FLUSH_AT = 20_000
_inserts: dict[sa.Table, Any] = {}


def _insert_of(table: sa.Table) -> Any:
    if table not in _inserts:
        _inserts[table] = sa.insert(table)
    return _inserts[table]


def insert(conn: Connection, table: sa.Table, row: dict[str, Any]) -> None:
    """Insert one row (every column but an autoincrement id); queued while due events run (see ``run_due``)."""
    queue = _queues.get(id(conn))
    if queue is None:
        conn.execute(_insert_of(table), row)
        return
    queue.append((table, row))
    if len(queue) >= _FLUSH_AT:
        flush(conn)


def flush(conn: Connection) -> None:
    """Write the rows queued by ``insert`` (one executemany per table, in order); a no-op outside due events."""
    queue = _queues.get(id(conn))
    if not queue:
        return
    per_table: dict[sa.Table, list[dict[str, Any]]] = {}
    for table, row in queue:
        per_table.setdefault(table, []).append(row)
    queue.clear()
    memos = _memos.setdefault(id(conn), {})
    for table, rows in per_table.items():
        _BulkWriter.of(table, conn.dialect).write(conn, rows, memos)


class _BulkWriter:
    """How ``flush`` writes many rows of one table, fast: the insert is compiled once by SQLAlchemy for the
    connection's dialect, each column's bind processor (the store's UTC datetimes, JSON, the dialect's dates) runs
    once per distinct value rather than once per row (a long jump writes the same few instants, statuses and
    products thousands of times), and the rows go to the driver's ``executemany`` as they are. What reaches the
    database is exactly what ``conn.execute(sa.insert(table), rows)`` would send."""

    _writers: dict[tuple[sa.Table, str], _BulkWriter] = {}

    def __init__(self, table: sa.Table, dialect: Any) -> None:
        self.table, self.dialect = table, dialect
        self.processors = {
            c.name: proc for c in table.columns if (proc := c.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self._compiled: dict[tuple[str, ...], Any] = {}

    @classmethod
    def of(cls, table: sa.Table, dialect: Any) -> _BulkWriter:
        key = (table, dialect.name)
        if key not in cls._writers:
            cls._writers[key] = cls(table, dialect)
        return cls._writers[key]

    def _statement(self, names: tuple[str, ...]) -> Any:
        if names not in self._compiled:
            self._compiled[names] = sa.insert(self.table).compile(dialect=self.dialect, column_keys=list(names))
        return self._compiled[names]

    def write(self, conn: Connection, rows: list[dict[str, Any]], memos: dict[Any, dict[int, Any]]) -> None:
        """``memos``: processed values by column, kept for a whole run of due events (each holds its value, so no
        id is reused while it lives)."""
        names = tuple(rows[0])
        compiled = self._statement(names)
        binds = [compiled.binds[key].key for key in compiled.positiontup] if compiled.positional else list(names)
        if sorted(binds) != sorted(names):  # not the plain statement this writer expects: let SQLAlchemy do it all
            conn.execute(sa.insert(self.table), rows)
            return
        pick = operator.itemgetter(*binds)
        processed = [
            (i, proc, memos.setdefault((self.table, name), {}))
            for i, name in enumerate(binds)
            if (proc := self.processors.get(name))
        ]
        out: list[Any] = []
        for row in rows:
            values = list(pick(row)) if len(binds) > 1 else [row[binds[0]]]
            for i, proc, memo in processed:
                # By identity: the memo keeps every value it saw alive, so an id is never reused while it lives,
                # and one object (an instant, a state's start time, a shared details dict) is processed once.
                value = values[i]
                found = memo.get(id(value))
                if found is None:
                    found = memo[id(value)] = (value, proc(value))
                values[i] = found[1]
            out.append(tuple(values) if compiled.positional else dict(zip(binds, values, strict=True)))
        conn.exec_driver_sql(compiled.string, out)


@contextmanager
def queued(conn: Connection) -> Iterator[None]:
    """Queue ``insert``s on ``conn`` until the block ends (the caller flushes before it ends)."""
    _queues[id(conn)] = []
    _memos[id(conn)] = {}
    try:
        yield
    finally:
        _queues.pop(id(conn), None)
        _memos.pop(id(conn), None)
