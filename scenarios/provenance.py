"""What produced a certificate: the ksim version, the digest of the scenario files run, the adapter and the
broker's own build; and scenario paths as a reader can find them (never an absolute site-packages path)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["broker_build", "broker_name", "display_path", "ksim_version", "suite_digest"]

_PACKAGE_ROOT = Path(__file__).resolve().parent  # ksimkit.scenarios


def ksim_version() -> str:
    from ksimkit import __version__

    return __version__


def display_path(path: Path | None, fallback: str) -> str:
    """A scenario file as the report shows it: relative to the working directory when below it, else to the
    installed ``ksimkit.scenarios`` package (``ksimkit/scenarios/suites/korm/x.yaml``), else its last three parts."""
    if path is None:
        return fallback
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        pass
    try:
        return "ksimkit/scenarios/" + resolved.relative_to(_PACKAGE_ROOT).as_posix()
    except ValueError:
        return "/".join(resolved.parts[-3:])


def suite_digest(scenarios: Iterable[Any]) -> str:
    """sha256 over the scenarios run (each one's id and file bytes, in id order): two certificates with the same
    digest ran the same scenario texts."""
    digest = hashlib.sha256()
    for scenario in sorted(scenarios, key=lambda s: s.id):
        digest.update(scenario.id.encode() + b"\0")
        path = getattr(scenario, "path", None)
        digest.update(path.read_bytes() if path is not None and Path(path).is_file() else repr(scenario).encode())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def broker_build(broker: Any) -> str | None:
    """The broker's own build (version, commit), when it reports one (an optional ``build()`` method; the HTTP
    adapter's ``build`` method). A broker that cannot say is not at fault: ``None``."""
    method = getattr(broker, "build", None)
    if not callable(method):
        return None
    try:
        value = method()
    except Exception:  # noqa: BLE001 - provenance only; never a verdict
        return None
    return str(value)[:200] if value else None


def broker_name(broker: Any) -> str:
    """The broker as the report names it: its adapter file's name, else its class."""
    adapter = getattr(broker, "adapter", None)
    if adapter is not None and getattr(adapter, "name", None):
        return str(adapter.name)
    return type(broker).__name__
