"""The root of the simulators' exceptions, and ``Problem``: a refusal with a stable code, rendered as RFC 9457
problem+json on REST.

Every exception the ``ksimkit.simulators`` package raises on purpose derives from ``SimulatorError``: each
service's domain errors (``korm.errors``, ``kss.errors``), the settings', the client's. Front ends map the domain
errors to their wire (HTTP statuses, SOAP faults, KSS codes); rules never speak HTTP.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://ksim.dev/problems/"


class SimulatorError(Exception):
    """The root of every exception ksim's simulators raise on purpose."""


class Problem(SimulatorError):
    """A refusal with an HTTP status and a stable code; raising it rolls the request's transaction back."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        rule: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.rule = rule
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    @property
    def title(self) -> str:
        return self.code.replace("_", " ").capitalize()

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code.lower().replace("_", "-"),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.rule:
            body["rule"] = self.rule
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def not_found(code: str, detail: str, rule: str | None = None) -> Problem:
    return Problem(404, code, detail, rule=rule)


def conflict(code: str, detail: str, rule: str | None = None, **extra: Any) -> Problem:
    return Problem(409, code, detail, rule=rule, **extra)


def unprocessable(code: str, detail: str, rule: str | None = None, **extra: Any) -> Problem:
    return Problem(422, code, detail, rule=rule, **extra)
