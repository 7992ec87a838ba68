"""A pool of simulator partners with fixed credentials, for brokers that have no tenant API.

A real broker sets its vendor credentials once, through its operations. For such a broker, ``ksim certify --pool
pool.yaml`` runs the scenarios on a fixed set of partners whose credentials the broker's test configuration holds
(the same file, read once): one scenario per pooled partner at a time, the partner reset (its data deleted, its
clock put at the scenario's start, its settings set) before each scenario.

The file::

    partners:
      - id: ptn_00000000a001          # fixed partner id (ptn_ + 12 hex digits)
        token: broker-a-korm-token-0001   # KORM and KSS REST bearer token (16+ characters)
        kss_username: broker-a
        kss_password: broker-a-secret
        tenant: company-1              # optional: the broker's own name for what uses this partner ({tenant})
      - id: ptn_00000000a002
        ...

``provision`` creates each partner on the simulator, or adopts it when a partner with that id already exists (a
shared ``ksim serve`` that has seen the pool before).
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ksimkit.scenarios.errors import PoolError
from ksimkit.simulators.client import KsimAdmin, KsimError, PartnerHandle

__all__ = ["PartnerPool", "PoolMember", "load_pool"]

ID_RE = re.compile(r"^ptn_[0-9a-f]{12}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.~+/=-]{16,200}$")
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_KEYS = {"id", "token", "kss_username", "kss_password", "tenant", "name"}


@dataclass(frozen=True)
class PoolMember:
    id: str
    token: str
    kss_username: str
    kss_password: str
    tenant: str | None = None
    name: str | None = None


def load_pool(path: str | Path) -> list[PoolMember]:
    """Read and validate a pool file; :class:`PoolError` names the entry and the key that is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PoolError(f"{path}: cannot read the pool file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PoolError(f"{path}: not valid YAML: {exc}") from exc
    entries = data.get("partners") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PoolError(f"{path}: partners: a list of at least one partner (id, token, kss_username, kss_password)")
    members: list[PoolMember] = []
    seen: dict[str, set[str]] = {"id": set(), "token": set(), "kss_username": set()}
    for index, entry in enumerate(entries):
        where = f"{path}: partners[{index}]"
        if not isinstance(entry, dict):
            raise PoolError(f"{where}: must be a mapping")
        bad = sorted(set(entry) - _KEYS)
        if bad:
            raise PoolError(f"{where}.{bad[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
        checks = (
            ("id", ID_RE, "ptn_ and 12 lowercase hex digits"),
            ("token", TOKEN_RE, "16 to 200 characters of letters, digits and _.~+/=-"),
            ("kss_username", USER_RE, "letters, digits and _.@-"),
        )
        for key, pattern, what in checks:
            value = entry.get(key)
            if not isinstance(value, str) or not pattern.match(value):
                raise PoolError(f"{where}.{key}: must be {what}, not {value!r}")
            if value in seen[key]:
                raise PoolError(f"{where}.{key}: {value!r} is used twice")
            seen[key].add(value)
        password = entry.get("kss_password")
        if not isinstance(password, str) or not 8 <= len(password) <= 200:
            raise PoolError(f"{where}.kss_password: must be 8 to 200 characters")
        members.append(
            PoolMember(
                id=entry["id"],
                token=entry["token"],
                kss_username=entry["kss_username"],
                kss_password=password,
                tenant=str(entry["tenant"]) if entry.get("tenant") else None,
                name=str(entry["name"]) if entry.get("name") else None,
            )
        )
    return members


class PartnerPool:
    """Pooled partners handed out one scenario at a time (``with pool.borrow() as member``)."""

    def __init__(self, members: list[PoolMember]) -> None:
        if not members:
            raise PoolError("a pool needs at least one partner")
        self.members = list(members)
        self._free: queue.Queue[PoolMember] = queue.Queue()
        for member in self.members:
            self._free.put(member)

    @classmethod
    def load(cls, path: str | Path) -> PartnerPool:
        return cls(load_pool(path))

    def __len__(self) -> int:
        return len(self.members)

    def provision(self, admin: KsimAdmin) -> None:
        """Create every pooled partner on the simulator, or adopt the one that already has its id."""
        for member in self.members:
            try:
                admin.partner(member.id)
            except KsimError as exc:
                if exc.status != 404:
                    raise PoolError(f"pooled partner {member.id}: {exc}") from exc
            else:  # already there (a shared simulator): adopted if its token is still the pool's
                answer = httpx.get(
                    f"{admin.base_url}/korm/v1/products",
                    timeout=10,
                    headers={"Authorization": f"Bearer {member.token}"},
                )
                if answer.status_code == 401:
                    raise PoolError(
                        f"pooled partner {member.id} exists on the simulator with other credentials "
                        "(rotated?): reset them there, or give the pool another id"
                    )
                continue
            try:
                admin.create_partner(
                    name=member.name or member.tenant or member.id,
                    partner_id=member.id,
                    token=member.token,
                    kss_username=member.kss_username,
                    kss_password=member.kss_password,
                )
            except KsimError as exc:
                raise PoolError(f"pooled partner {member.id}: the simulator refused it: {exc}") from exc

    @contextmanager
    def borrow(self) -> Iterator[PoolMember]:
        member = self._free.get()
        try:
            yield member
        finally:
            self._free.put(member)

    @staticmethod
    def handle(admin: KsimAdmin, member: PoolMember) -> PartnerHandle:
        """The member as a partner handle (its credentials are the pool's; the rest is read from the simulator)."""
        info: dict[str, Any] = admin.partner(member.id)
        return PartnerHandle.from_json(
            admin,
            {**info, "token": member.token, "kss": {"username": member.kss_username, "password": member.kss_password}},
        )
