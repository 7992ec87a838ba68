"""Settings from one place: defaults, then ``ksim.toml`` (table ``[ksim]``), then ``KSIM_*`` environment variables."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Settings:
    # Where state lives: a SQLAlchemy URL. SQLite file by default; PostgreSQL by URL.
    database_url: str = "sqlite:///.ksim/state.db"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    # Token of the /_sim control plane. The default is for local runs only.
    admin_token: str = "ksim-admin"
    # Vendor profile: catalog, prices, trial caps, MSP tiers. Empty = the packaged default.
    profile_path: str = ""
    # Seed for generated partner names and contacts, so runs repeat.
    faker_seed: int = 0
    default_timezone: str = "UTC"
    # Largest request body accepted, in bytes.
    max_body_bytes: int = 1_000_000
    # KSS: how far ahead of the partner clock a StartTime may be before error 103.
    kss_start_tolerance_seconds: int = 600
    log_level: str = "warning"
    # Test harness (docs/harness.md): journal entries kept per partner (oldest dropped; 0 turns the journal off),
    # bytes of each request and response body kept in an entry, refusing non-conforming requests, fault seed.
    journal_limit: int = 1000
    journal_body_bytes: int = 4096
    strict_contract: bool = False
    fault_seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "int":
        return int(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"setting {name}: expected true or false, got {raw!r}")
        return text in ("true", "1", "yes", "on")
    return str(raw) if not isinstance(raw, str) else raw


def load_settings(config_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < ``ksim.toml`` (or ``KSIM_CONFIG``) < ``KSIM_<NAME>`` variables."""
    env = os.environ if env is None else env
    known = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    path = Path(config_path or env.get("KSIM_CONFIG", "ksim.toml"))
    if path.is_file():
        with path.open("rb") as fh:
            table = tomllib.load(fh).get("ksim", {})
        unknown = set(table) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        values.update({k: _coerce(k, v) for k, v in table.items()})
    for name in known:
        raw = env.get(f"KSIM_{name.upper()}")
        if raw is not None:
            values[name] = _coerce(name, raw)
    return Settings(**values)
