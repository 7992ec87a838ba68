"""KORM SS's domain errors: why the rules refuse, each with its stable code, a detail and the rule ID.

One small tree under ``KormError`` (a ``SimulatorError``), one class per kind of refusal. The rules raise them
and speak no HTTP; the REST front end (``korm/api.py``) answers each kind with its status as problem+json.
``extra`` holds the fields the answer carries besides the usual ones (``stopped_on``, ``licence_min``, ...).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ksimkit.simulators.core.errors import SimulatorError


class KormError(SimulatorError):
    """A refusal of KORM SS's rules; raising it rolls the change back."""

    def __init__(self, code: str, detail: str, *, rule: str | None = None, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.rule = rule
        self.extra = extra


class SubscriptionNotFound(KormError):
    """No such subscription for this partner: another partner's id is indistinguishable from an unknown one."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__("SUBSCRIPTION_NOT_FOUND", f"no subscription {subscription_id!r}", rule="SIM-AUTH-1")


class SubscriptionDeleted(KormError):
    """The subscription was stopped: the vendor deleted it for good (KORM-STOP-1)."""

    def __init__(self, subscription_id: str, stopped_on: dt.date) -> None:
        super().__init__(
            "SUBSCRIPTION_DELETED",
            f"subscription {subscription_id} was stopped on {stopped_on.isoformat()} and deleted by the vendor; "
            "it can never be reactivated: order a new subscription",
            rule="KORM-STOP-1",
            stopped_on=stopped_on.isoformat(),
        )


class StateConflict(KormError):
    """Refused in the present state (of the subscription, the partner's data or its today); it may pass later."""


class InvalidRequest(KormError):
    """The request breaks a rule whatever the state: an unknown SKU, a count outside the band, a trial, ..."""
