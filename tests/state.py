"""A digest of a store's whole simulated state, to show that a refused request changed nothing (SIM-ERR-1);
and a counter of a test app's answers.

The request journal is left out: it records every request, refused ones included, by design."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import sqlalchemy as sa

from ksimkit.simulators.core.store import Store, metadata

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


class CallCounter:
    """WSGI middleware counting a test app's answers by status class, for the figures of the fuzz runs."""

    def __init__(self, app: Any) -> None:
        self.app, self.inner, self.counts = app, app.wsgi_app, Counter[str]()
        app.wsgi_app = self

    def __call__(self, environ: Any, start_response: Any) -> Any:
        def counted(status: str, headers: Any, exc_info: Any = None) -> Any:
            self.counts[status[0] + "xx"] += 1
            return start_response(status, headers, exc_info)

        return self.inner(environ, counted)
