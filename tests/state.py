"""A digest of a store's whole simulated state, to show that a refused request changed nothing (SIM-ERR-1).

The request journal is left out: it records every request, refused ones included, by design."""
from __future__ import annotations

import hashlib

import sqlalchemy as sa

from simulators.core.store import Store, metadata

NOT_STATE = {"journal"}


def digest(store: Store) -> str:
    h = hashlib.sha256()
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in NOT_STATE:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            for row in conn.execute(sa.select(table).order_by(*order)):
                h.update(repr(tuple(row)).encode())
            h.update(table.name.encode())
    return h.hexdigest()
