"""A partner's test-harness calls (docs/harness.md): fault rules, the request journal and its verification."""

from __future__ import annotations

from typing import Any


class PartnerHarness:
    """The harness calls of :class:`PartnerHandle`, which supplies ``_call`` (a control-plane call under the
    partner's path)."""

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def inject_fault(
        self,
        kind: str,
        *,
        service: str | None = None,
        operation: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        when: str | None = None,
        delay_ms: int | None = None,
        delay_max_ms: int | None = None,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        fault_code: str | None = None,
        error_code: int | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule; the rule as stored (``id``, ``fired``, ``remaining``, ...).

        ``kind``: ``delay``, ``status``, ``soap_fault``, ``transaction_error``, ``unit_error``, ``malformed``,
        ``truncated`` or ``drop``. ``service`` (``korm``, ``kss``, ``kss-rest``) and ``operation`` (an operationId
        such as ``createSubscription``, or a KSS item kind such as ``Activate``) choose the requests; ``times``
        and ``probability`` (with ``seed``) how often it fires; ``when="after"`` commits the request before the
        bad answer (a lost answer), ``"before"`` (default) changes nothing. The other fields shape the answer.
        """
        given = {
            "kind": kind,
            "service": service,
            "operation": operation,
            "times": times,
            "probability": probability,
            "seed": seed,
            "when": when,
            "delay_ms": delay_ms,
            "delay_max_ms": delay_max_ms,
            "status": status,
            "code": code,
            "message": message,
            "retry_after": retry_after,
            "fault_code": fault_code,
            "error_code": error_code,
        }
        created: dict[str, Any] = self._call("POST", "/faults", json={k: v for k, v in given.items() if v is not None})
        return created

    def faults(self) -> list[dict[str, Any]]:
        """The partner's fault rules in creation order, spent ones included, with ``matched`` and ``fired``."""
        items: list[dict[str, Any]] = self._call("GET", "/faults")["items"]
        return items

    def fault(self, fault_id: str) -> dict[str, Any]:
        """One fault rule; ``KsimError`` 404 ``FAULT_NOT_FOUND`` if the partner has none with this id."""
        rule: dict[str, Any] = self._call("GET", f"/faults/{fault_id}")
        return rule

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def journal(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        conforms: bool | None = None,
        faulted: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """One page of the partner's request journal, oldest first: ``{"items": [...], "total": n}``.

        Each entry has the request and answer (bodies up to the server's ``journal_body_bytes``), ``status``,
        ``duration_ms``, ``operation`` / ``items`` (KSS item kinds), ``fault`` and ``verdict``
        (``{"conforms": bool, "violations": [{"in", "path", "message"}, ...]}``).
        """
        filters = _journal_filters(service, operation, method, path, status, conforms, faulted)
        filters.update({k: v for k, v in {"limit": limit, "offset": offset}.items() if v is not None})
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()}
        page: dict[str, Any] = self._call("GET", "/journal", params=params)
        return page

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def verify(
        self,
        count: int | None = None,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
        service: str | None = None,
        operation: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        conforms: bool | None = None,
        faulted: bool | None = None,
    ) -> int:
        """Check the journal: exactly ``count`` matching entries, or ``at_least``/``at_most`` (default: at least
        one). The number that matched; :class:`KsimVerificationError` (an ``AssertionError``) listing what the
        journal holds when the expectation fails.

        ``partner.verify(0, conforms=False)``: no request broke the contract.
        """
        body = _journal_filters(service, operation, method, path, status, conforms, faulted)
        body.update(
            {k: v for k, v in {"count": count, "at_least": at_least, "at_most": at_most}.items() if v is not None}
        )
        result: dict[str, Any] = self._call("POST", "/journal/verify", json=body)
        return int(result["matched"])


def _journal_filters(
    service: str | None,
    operation: str | None,
    method: str | None,
    path: str | None,
    status: int | None,
    conforms: bool | None,
    faulted: bool | None,
) -> dict[str, Any]:
    """The journal's filters that are set: one definition for listing and for verifying."""
    filters = {
        "service": service,
        "operation": operation,
        "method": method and method.upper(),
        "path": path,
        "status": status,
        "conforms": conforms,
        "faulted": faulted,
    }
    return {k: v for k, v in filters.items() if v is not None}
