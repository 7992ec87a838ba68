"""KSS's error codes and its domain errors: what a refused unit, a refused container or an unusable SOAP call is.

The codes are those of docs/kss-wire.md, "Error codes": the public ones (below 700) and ksim's own (7xx, declared
in contracts/kss-ext.xsd). The item handlers raise ``KssError``; the XML reader raises ``Refusal`` and
``SoapFault``; the SOAP front end (``ksimkit.simulators.kss.soap``) turns each into its answer.
"""

from __future__ import annotations

from enum import IntEnum

from ksimkit.simulators.core.errors import SimulatorError


class KssCode(IntEnum):
    """A code KSS answers, on one unit (an ``…Error`` item) or on the whole container (``TransactionError``).
    Code 601 (order not allowed for this provider) is public but never answered: a product outside the partner's
    programme has its own code, 705."""

    ALREADY_ACTIVATED = 1  # unit: the SubscriberId is already activated
    NOT_YET_ACTIVATED = 2  # unit: the subscription's StartTime is still ahead (NotStarted)
    END_TIME_NOT_LATER = 3  # unit: a Renew EndTime earlier than (or, reactivating, not after) the current one
    HARD_CANCELLED = 4  # unit: the subscription is hard-cancelled; only Activate brings it back
    UNKNOWN_SUBSCRIBER = 5  # unit: no such SubscriberId for this partner
    DUPLICATE_TRANSACTION = 6  # container: a TransactionId seen before (SIM-IDEM-1)
    CODE_POOL_EMPTY = 8  # unit: the provider's activation-code pool is empty
    UNKNOWN_PRODUCT = 9  # unit: a ProductId outside the catalog (KSS-PROD-1)
    UNKNOWN_ERROR = 99  # either: an unknown error (ksim answers it only when a harness fault rule says so)
    TERM_TOO_SHORT = 101  # unit: EndTime - StartTime shorter than 28 days
    START_IN_FUTURE = 103  # unit: StartTime (or PauseTime) beyond now and the start tolerance
    SOFT_CANCELLED = 105  # unit: the subscription is soft-cancelled (or its soft-cancelled term is over)
    RENEW_OPEN_ENDED = 202  # unit: Renew of an open-ended subscription
    RENEW_PAUSED = 204  # unit: Renew of a paused subscription (Resume it instead)
    SOFT_CANCEL_PAUSED = 303  # unit: a paused subscription cannot be soft-cancelled
    TOO_FAR_BACK = 304  # unit: a cancel or pause time more than 14 days in the past
    PAUSE_NOT_OPEN_ENDED = 401  # unit: only open-ended subscriptions can be paused
    ALREADY_PAUSED = 402  # unit: Pause of a paused subscription
    NOT_PAUSED = 501  # unit: Resume of a subscription that is not paused
    BAD_ATTRIBUTE = 602  # unit: a bad or missing attribute (a date before 2008-01-01 or the start, a bad value)
    TRIAL_TOO_LONG = 701  # unit: a trial longer than the programme allows (KSS-TRIAL-1)
    TRIAL_ALREADY_GRANTED = 702  # unit: a trial on a reactivation or a licence change (KSS-TRIAL-2)
    PREPAID_HELD = 703  # unit: the customer still holds active prepaid licences of the product (KSS-PREPAID-1)
    MSP_NOT_REGISTERED = 704  # unit: the partner is not registered for the MSP programme (KSS-MSP-2)
    PRODUCT_NOT_OFFERED = 705  # unit: the product is not offered to the partner's programme (KSS-PROD-1)
    BAD_RESUME_TIME = 706  # unit: ext:ResumeTime not after PauseTime and now (KSS-PAUSE-1)
    NOTHING_TO_CHANGE = 707  # unit: the count or product asked for is already in force (KSS-QTY-1, KSS-CODE-1)
    REPEATED_UNIT = 708  # container: the same UnitId twice in one container (SIM-ERR-1)
    NONCONFORMING = 709  # container: the request breaks the schema or a ksim limit (SIM-ERR-1)
    AUTHENTICATION_FAILED = 710  # container: AccessInfo missing, incomplete or wrong (SIM-AUTH-1)


class KssError(SimulatorError):
    """A refused unit (or, from ``handlers.process``, a refused container) with its wire code."""

    def __init__(self, code: KssCode, message: str, rule: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = f"{message} ({rule})" if rule else message
        self.rule = rule


class Refusal(SimulatorError):
    """The whole container refused before the rules saw it: TransactionError 709 (schema) or 710 (auth)."""

    def __init__(self, code: KssCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# Fault codes of SOAP 1.1 (section 4.4.1), written as soapenv:<code>.
CLIENT, SERVER, VERSION_MISMATCH, MUST_UNDERSTAND = "Client", "Server", "VersionMismatch", "MustUnderstand"


class SoapFault(SimulatorError):
    """A SOAP 1.1 Fault: the request is not something the service can answer with a container. ``code`` is one
    of the SOAP fault codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
