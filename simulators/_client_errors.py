"""The client's exceptions: a refusal of the control plane, and a journal expectation that did not hold."""

from __future__ import annotations

from typing import Any

import httpx

from ksimkit.simulators.core.errors import SimulatorError


class KsimError(SimulatorError):
    """A refusal of the control plane: the RFC 9457 problem it answered with.

    ``status``, ``code``, ``title``, ``detail``, ``type`` and (when a rule refused) ``rule`` and
    (``VALIDATION_ERROR``) ``errors`` are the problem's fields; ``problem`` is the whole body. An answer
    that is not problem+json (a proxy's HTML page, say) gives ``code`` ``"HTTP_<status>"``.
    """

    def __init__(self, status: int, problem: dict[str, Any], *, method: str = "", url: str = "") -> None:
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code") or f"HTTP_{status}")
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or "")
        self.type: str = str(problem.get("type") or "about:blank")
        self.rule: str | None = problem.get("rule")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.method = method
        self.url = url
        rule = f" ({self.rule})" if self.rule else ""
        where = f" [{method} {url}]" if method else ""
        super().__init__(f"{status} {self.code}{rule}: {self.detail}{where}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> KsimError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"detail": response.text[:500]}
        kind = KsimVerificationError if body.get("code") == "VERIFICATION_FAILED" else cls
        return kind(response.status_code, body, method=response.request.method, url=str(response.request.url))


class KsimVerificationError(KsimError, AssertionError):
    """:meth:`PartnerHandle.verify` did not hold (409 ``VERIFICATION_FAILED``); an ``AssertionError`` too, so pytest
    reports it as a failed check. ``matched``, ``expected`` and ``seen`` (the partner's latest journal entries,
    one line each) say what the journal held."""

    @property
    def matched(self) -> int:
        return int(self.problem.get("matched", 0))

    @property
    def expected(self) -> dict[str, int]:
        return dict(self.problem.get("expected") or {})

    @property
    def seen(self) -> list[dict[str, Any]]:
        return list(self.problem.get("seen") or [])
