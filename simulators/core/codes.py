"""Activation codes: 20 characters shown as XXXXX-XXXXX-XXXXX-XXXXX, unique across the store, never issued twice."""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ksimkit.simulators.core.clock import system_now
from ksimkit.simulators.core.store import activation_codes

# No 0/O or 1/I: codes are read aloud and typed by end users.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_PATTERN = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){3}$")


_ISSUED = sa.select(activation_codes.c.code).where(activation_codes.c.code == sa.bindparam("code"))
_INSERT = sa.insert(activation_codes)


def _candidate() -> str:
    # 32 letters: the low 5 bits of a random byte pick one uniformly (256 = 8 x 32), one system call per code.
    raw = "".join(ALPHABET[b & 31] for b in secrets.token_bytes(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def issue_code(conn: Connection, partner_id: str, service: str) -> str:
    """Reserve a code no one has had before; the registry's primary key is the guarantee."""
    for _ in range(20):
        code = _candidate()
        exists = conn.execute(_ISSUED, {"code": code}).first()
        if exists is None:
            conn.execute(
                _INSERT, {"code": code, "partner_id": partner_id, "service": service, "issued_at": system_now()}
            )
            return code
    raise RuntimeError("could not draw a fresh activation code")  # 32**20 codes: unreachable in practice
