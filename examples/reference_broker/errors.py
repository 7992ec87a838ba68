"""The reference broker's exceptions: one tree under ``ReferenceBrokerError``.

- ``BrokerError``: the broker's own refusal of a request (an unknown tenant or subscription, a bad request), with the
  HTTP status it answers.
- ``VendorRefused``: the vendor said no, with its stable ``code`` and ``message``, relayed to the customer:
  ``KormRefused`` (a problem+json answer, never retried), ``KssTransactionRefused`` (the whole SOAP container).
- ``VendorUnavailable``: every attempt failed, so the outcome at the vendor is unknown: ``KormUnavailable``,
  ``KssUnavailable``.
"""

from __future__ import annotations


class ReferenceBrokerError(Exception):
    """The root of every exception the reference broker raises on purpose."""


class BrokerError(ReferenceBrokerError):
    """The broker's own refusal of a request (not the vendor's)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class VendorRefused(ReferenceBrokerError):
    """The vendor refused: relay its ``code`` and ``message`` to the customer."""

    def __init__(self, code: str, message: str, text: str | None = None) -> None:
        super().__init__(text or f"{code}: {message}")
        self.code, self.message = code, message


class KormRefused(VendorRefused):
    """KORM SS refused the request (a 4xx problem+json): its status, code, detail (``message``) and rule."""

    def __init__(self, status: int, code: str, detail: str, rule: str | None = None) -> None:
        super().__init__(code, detail, f"{status} {code}: {detail}")
        self.status, self.rule = status, rule


class KssTransactionRefused(VendorRefused):
    """KSS refused the whole container (``TransactionError``, or a SOAP Fault)."""


class VendorUnavailable(ReferenceBrokerError):
    """Every attempt failed on the transport or with a 5xx (or an unreadable answer): the outcome is unknown."""


class KormUnavailable(VendorUnavailable):
    """KORM SS could not be reached."""


class KssUnavailable(VendorUnavailable):
    """KSS could not be reached."""
