"""Settings from one place: defaults, then ``ksim.toml`` (table ``[ksim]``), then ``KSIM_*`` environment variables."""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ksimkit.simulators.core.errors import SimulatorError


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
    # Opt-in access log of ``ksim serve`` (one line per request on stdout).
    access_log: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Where each value not left at its default came from ("environment variable KSIM_PORT", "ksim.toml [ksim]
    # port", "--port"), so an error about it can say so.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def override(self, source: Callable[[str], str], **changes: Any) -> Settings:
        """``replace`` that records where the new values came from (``source(name)``, e.g. the flag)."""
        return dataclasses.replace(self, **changes, sources={**self.sources, **{k: source(k) for k in changes}})


class SettingError(SimulatorError, ValueError):
    """A setting that cannot be used, said in one line: which setting, where it came from, what is expected.
    ``ksim`` prints it and exits with status 2 (docs/settings.md, "When something is wrong")."""

    def __init__(self, name: str | None, source: str, expected: str) -> None:
        self.name = name
        self.source = source
        self.expected = expected
        where = f"{name} ({source})" if name else source
        super().__init__(f"{where}: {expected}")


# What each kind of setting must be, said the same way everywhere.
_EXPECTED = {
    "int": "expected a whole number",
    "bool": "expected true or false (also 1/0, yes/no, on/off)",
    "str": "expected a string",
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# Settings that must not be negative, and those that must be at least 1.
_AT_LEAST = {
    "port": 0,
    "workers": 1,
    "max_body_bytes": 1,
    "kss_start_tolerance_seconds": 0,
    "journal_limit": 0,
    "journal_body_bytes": 0,
    "faker_seed": 0,
    "fault_seed": 0,
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _kinds() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(Settings) if f.name not in ("extra", "sources")}


def coerce_setting(name: str, raw: Any, source: str) -> Any:
    """``raw`` (TOML value or environment text) as the setting's type, or a ``SettingError`` naming ``source``."""
    kind = _kinds()[name]
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise SettingError(name, source, f"{_EXPECTED[kind]}, got {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise SettingError(name, source, f"{_EXPECTED[kind]}, got {raw!r}") from None
        low = _AT_LEAST.get(name)
        if name == "port" and not 0 <= value <= 65535:
            raise SettingError(name, source, f"expected a port number 0..65535, got {value}")
        if low is not None and value < low:
            raise SettingError(name, source, f"expected a whole number of at least {low}, got {value}")
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in _TRUE + _FALSE:
            raise SettingError(name, source, f"{_EXPECTED[kind]}, got {raw!r}")
        return text in _TRUE
    if not isinstance(raw, str):
        raise SettingError(name, source, f"{_EXPECTED[kind]}, got {raw!r}")
    if name == "log_level" and raw.strip().lower() not in LOG_LEVELS:
        raise SettingError(name, source, f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def _read_config(path: Path, explicit: str | None) -> dict[str, Any]:
    """The ``[ksim]`` table of ``path``. A file named explicitly (``--config``, ``KSIM_CONFIG``) must exist; the
    implicit ``./ksim.toml`` may be absent, but when present it must be ksim's (have a ``[ksim]`` table)."""
    label = f"{explicit} {path}" if explicit else str(path)
    if not path.is_file():
        if explicit:
            raise SettingError(None, label, "no such file" if not path.exists() else "not a file")
        return {}
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(None, label, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingError(None, label, f"cannot be read: {exc.strerror}") from None
    table = document.get("ksim")
    if table is None:
        raise SettingError(None, label, "has no [ksim] table; ksim reads its settings from [ksim]")
    if not isinstance(table, dict):
        raise SettingError(None, label, "ksim must be a table ([ksim])")
    return table


def load_settings(config_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < ``ksim.toml`` (or ``KSIM_CONFIG``) < ``KSIM_<NAME>`` variables. Every mistake is a
    ``SettingError`` naming the setting and its source."""
    env = os.environ if env is None else env
    kinds = _kinds()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_path is not None:
        path, explicit = Path(config_path), "--config"
    elif env.get("KSIM_CONFIG"):
        path, explicit = Path(env["KSIM_CONFIG"]), "KSIM_CONFIG"
    else:
        path, explicit = Path("ksim.toml"), None
    table = _read_config(path, explicit)
    for key, raw in table.items():
        if key not in kinds:
            close = difflib.get_close_matches(key, kinds, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SettingError(
                None, f"{path} [ksim] {key}", f"unknown setting; {hint}known: {', '.join(sorted(kinds))}"
            )
        sources[key] = f"{path} [ksim] {key}"
        values[key] = coerce_setting(key, raw, sources[key])
    for name in kinds:
        variable = f"KSIM_{name.upper()}"
        raw = env.get(variable)
        if raw is not None:
            sources[name] = f"environment variable {variable}"
            values[name] = coerce_setting(name, raw, sources[name])
    return Settings(**values, sources=sources)
