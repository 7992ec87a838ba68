"""What every call of the client shares: the simulator's paths, the control plane as a partner's calls see it, the
TLS context, how arguments are written, and the clock a partner's calls answer with."""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

KSS_NS = "http://schemas.kaspersky.com/services/subscription/2.0/"
KSS_SERVICE = "KasperskySubscriptionService"
KSS_PORT = "KasperskySubscriptionServicePort"
KSS_PATH = "/kss/soap/upi"
KORM_PATH = "/korm/v1"
KSS_REST_PATH = "/kss/v1"
DEFAULT_TIMEOUT = 10.0


class ControlPlane(Protocol):
    """What a partner's handle calls through (``KsimAdmin``): the server, its client settings, its calls."""

    base_url: str
    timeout: float
    transport: httpx.BaseTransport | None

    def request(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def delete_partner(self, partner_id: str) -> None: ...


@dataclass(frozen=True)
class Clock:
    """A partner's clock: ``now`` (aware, UTC), ``today`` (the date in the partner's zone), ``timezone``."""

    now: dt.datetime
    today: dt.date
    timezone: str
    mode: str = "frozen"  # frozen | running (follows wall time from an offset)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Clock:
        return cls(
            now=dt.datetime.fromisoformat(body["now"].replace("Z", "+00:00")),
            today=dt.date.fromisoformat(body["today"]),
            timezone=body["timezone"],
            mode=body.get("mode", "frozen"),
        )


def timestamp(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; pass an aware datetime (or an RFC 3339 string)")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def date_text(value: dt.date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's default TLS context (verification on), made once: each new one loads the CA bundle (tens of ms), and
    the plugin opens a client per test."""
    return httpx.create_ssl_context()
