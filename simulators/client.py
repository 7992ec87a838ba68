"""A small typed client of ksim's control plane (``/_sim``), for tests and scripts.

```python
from ksimkit.simulators.client import KsimAdmin

with KsimAdmin("http://127.0.0.1:8080", "ksim-admin") as ksim:
    partner = ksim.create_partner(programme="msp", now="2026-04-15T09:00:00Z")
    with partner.korm() as korm:                      # httpx.Client on <base>/korm/v1 with the bearer token
        korm.post("/subscriptions", json={"customer_id": "acme", "sku": "KESB-SELECT-PAYG-20-49", "quantity": 25})
    partner.advance(to="2026-05-01")                  # everything due on the way has happened on return
    kss = partner.kss_zeep_client()  # zeep client on <base>/kss/soap/upi, AccessInfo sent on every call
```

Every refusal of the control plane raises :class:`KsimError` with the problem+json fields. Transport
failures are httpx's own exceptions. The KORM and KSS clients it builds are plain httpx and zeep clients:
their answers, refusals included, are for the test to judge.
"""

from __future__ import annotations

import datetime as dt
import time
from types import TracebackType
from typing import Any

import httpx

from ksimkit.simulators._client_errors import KsimError, KsimVerificationError
from ksimkit.simulators._client_partner import PartnerHandle
from ksimkit.simulators._client_wire import DEFAULT_TIMEOUT, Clock, default_tls, timestamp

__all__ = ["Clock", "KsimAdmin", "KsimError", "KsimVerificationError", "PartnerHandle"]


class KsimAdmin:
    """The control plane of one ksim server: ``KsimAdmin(base_url, admin_token)``.

    ``base_url`` is the server's root (``http://127.0.0.1:8080``), not ``/_sim``. ``transport`` is passed to
    every httpx client this makes (e.g. ``httpx.WSGITransport(app=create_app(...))`` to skip the socket;
    the zeep client always needs a real server).
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str = "ksim-admin",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self._http = httpx.Client(
            base_url=self.base_url + "/_sim",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
            transport=transport,
            verify=default_tls(),
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One control-plane call (``path`` relative to ``/_sim``); the JSON answer (``None`` for 204), or
        :class:`KsimError`."""
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise KsimError.from_response(response)
        return None if response.status_code == 204 else response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KsimAdmin:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KsimAdmin({self.base_url!r})"

    # -- the server -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}``; no token needed."""
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    def wait_until_ready(self, timeout: float = 10.0, interval: float = 0.05) -> dict[str, Any]:
        """Poll ``/_sim/health`` until it answers 200; ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except (httpx.TransportError, KsimError) as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"ksim at {self.base_url} did not answer /_sim/health within {timeout} s: {exc}"
                    ) from exc
                time.sleep(interval)

    def problem(self, *, wait: float = 0.0, token_hint: str = "") -> str | None:
        """Why this simulator cannot be used (down, not ksim, the admin token refused), as one sentence, or ``None``.
        ``wait``: seconds to wait for a server still starting; ``token_hint`` names where the token comes from."""
        try:
            if wait > 0:
                self.wait_until_ready(timeout=wait)
            else:
                self.health()
        except TimeoutError as exc:
            cause = exc.__cause__ or exc
            return (
                f"the simulator at {self.base_url} cannot be reached ({type(cause).__name__}: {cause or 'no answer'})"
            )
        except httpx.TransportError as exc:
            return f"the simulator at {self.base_url} cannot be reached ({type(exc).__name__}: {exc or 'no answer'})"
        except (KsimError, ValueError) as exc:
            return f"{self.base_url} does not answer as a ksim simulator (GET /_sim/health: {exc})"
        try:
            self.request("GET", "/partners/ptn_000000000000")  # any answer but 401 shows the token works
        except KsimError as exc:
            if exc.status == 401:
                return f"the simulator at {self.base_url} refuses the admin token" + (
                    f" ({token_hint})" if token_hint else ""
                )
        except httpx.TransportError as exc:
            return f"the simulator at {self.base_url} cannot be reached ({type(exc).__name__}: {exc})"
        return None

    # -- partners ---------------------------------------------------------------------------------

    def create_partner(
        self,
        *,
        name: str | None = None,
        programme: str | None = None,
        msp_registered: bool | None = None,
        timezone: str | None = None,
        billing_period: str | None = None,
        now: dt.datetime | str | None = None,
        strict_contract: bool | None = None,
        partner_id: str | None = None,
        token: str | None = None,
        kss_username: str | None = None,
        kss_password: str | None = None,
    ) -> PartnerHandle:
        """A new partner with its own credentials, clock and data. Omitted fields take the server's defaults.

        ``partner_id``, ``token``, ``kss_username``, ``kss_password`` fix what is otherwise random (a pooled partner
        a broker's configuration holds; ``KsimError`` 409 ``CREDENTIALS_IN_USE`` when taken).

        ``programme``: ``xsp``, ``reseller`` (default) or ``msp``; ``timezone``: IANA name; ``billing_period``:
        ``calendar_month`` or ``30_days``; ``now``: where its clock starts (aware datetime or RFC 3339);
        ``strict_contract``: refuse its non-conforming requests (docs/harness.md; default the server's setting).
        """
        body: dict[str, Any] = {
            key: value
            for key, value in (
                ("name", name),
                ("programme", programme),
                ("msp_registered", msp_registered),
                ("timezone", timezone),
                ("billing_period", billing_period),
                ("strict_contract", strict_contract),
            )
            if value is not None
        }
        if now is not None:
            body["now"] = timestamp(now)
        if partner_id is not None:
            body["id"] = partner_id
        if token is not None:
            body["token"] = token
        kss = {k: v for k, v in (("username", kss_username), ("password", kss_password)) if v is not None}
        if kss:
            body["kss"] = kss
        return PartnerHandle.from_json(self, self.request("POST", "/partners", json=body))

    def partners(self) -> list[dict[str, Any]]:
        """Every partner, in creation order (without credentials)."""
        items: list[dict[str, Any]] = self.request("GET", "/partners")["items"]
        return items

    def partner(self, partner_id: str) -> dict[str, Any]:
        """One partner (without credentials); ``KsimError`` 404 ``PARTNER_NOT_FOUND`` if unknown."""
        result: dict[str, Any] = self.request("GET", f"/partners/{partner_id}")
        return result

    def delete_partner(self, partner_id: str) -> None:
        """Delete a partner with all its data, journal and audit; ``KsimError`` 404 ``PARTNER_NOT_FOUND`` if unknown."""
        self.request("DELETE", f"/partners/{partner_id}")
