"""What a customer-facing step answers: ``done``, or ``refused`` with the vendor's code (the broker tells its
customer the truth), and the activation code as the broker knows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    outcome: str  # done | refused
    code: str | None = None
    message: str | None = None
    activation_code: str | None = None
    status: int = 200  # the broker's HTTP status for it

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "code": self.code,
            "message": self.message,
            "activation_code": self.activation_code,
        }


def done(activation_code: str | None = None, message: str | None = None) -> Step:
    return Step("done", None, message, activation_code)


def refused(code: str, message: str, activation_code: str | None = None, status: int = 200) -> Step:
    return Step("refused", code, message, activation_code, status)
