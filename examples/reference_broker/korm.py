"""The broker's KORM SS client over httpx.

What a correct client does (docs/korm.md): a bearer token on every call; an ``Idempotency-Key`` on every POST,
made once per operation and sent again, unchanged, on every retry; retries on transport errors (timeouts
included) and 5xx answers, where the first attempt may or may not have taken effect; a problem+json refusal
becomes a :class:`KormRefused` carrying the vendor's stable ``code``, never retried.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import httpx

from ksimkit.examples.reference_broker.errors import KormRefused, KormUnavailable

RETRIES = 3  # attempts per operation
TIMEOUT = 5.0  # seconds per attempt: a vendor slower than this is a lost answer, settled by a retry
BACKOFF = 0.05  # seconds, doubled after each failed attempt


# httpx's default TLS context, made once (building one loads the CA bundle: ~10 ms per client otherwise).
default_tls = functools.lru_cache(maxsize=1)(httpx.create_ssl_context)


class KormClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        actor: str = "reference-broker",
        timeout: float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.defects = defects
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            verify=default_tls(),
            headers={"Authorization": f"Bearer {token}", "X-Ksim-Actor": actor, "Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> KormClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        delay, failure = BACKOFF, "no attempt"
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                response = self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:  # connect error, timeout, reset: the outcome is unknown, retry
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                failure = f"HTTP {response.status_code}"
                continue
            if response.is_error:
                raise _refusal(response)
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError as exc:  # a garbled answer: the outcome is unknown, as with a lost one
                if "korm_malformed_answer_crashes" in self.defects:  # defect("korm_malformed_answer_crashes")
                    raise
                failure = f"unreadable answer: {exc}"
                continue
        raise KormUnavailable(f"{method} {path}: {failure} after {RETRIES} attempts")

    def post(self, path: str, body: dict[str, Any] | None = None, *, idempotency_key: str | None = "new") -> Any:
        """POST with a fresh Idempotency-Key (the default), a given one, or none (``idempotency_key=None``)."""
        key = uuid.uuid4().hex if idempotency_key == "new" else idempotency_key
        return self._call("POST", path, json=body, idempotency_key=key)

    # ------------------------------------------------------------------ calls

    def products(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", "/products")["items"]
        return items

    def subscriptions(self, include_deleted: bool = True) -> list[dict[str, Any]]:
        params = {"include_deleted": "true" if include_deleted else "false"}
        items: list[dict[str, Any]] = self._call("GET", "/subscriptions", params=params)["items"]
        return items

    def statement(self, period: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/billing/{period}")
        return result


def _refusal(response: httpx.Response) -> KormRefused:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": response.text[:300]}
    return KormRefused(
        response.status_code,
        str(problem.get("code") or f"HTTP_{response.status_code}"),
        str(problem.get("detail") or problem.get("title") or ""),
        problem.get("rule"),
    )
