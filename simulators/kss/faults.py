"""The fault kinds only the KSS SOAP front end answers, in the KSS shape (docs/harness.md).

The front end (``ksimkit.simulators.kss.soap``) applies them: a SOAP fault instead of the answer, a
TransactionError on the whole container, or an error on the units the rule names.
"""

from __future__ import annotations

from ksimkit.simulators.core.fault_kinds import FaultKind
from ksimkit.simulators.kss.errors import KssCode

SOAP_FAULT = FaultKind(
    "soap_fault", "a SOAP 1.1 fault instead of the answer", {"fault_code": "Server", "message": None}, "kss"
)
TRANSACTION_ERROR = FaultKind(
    "transaction_error",
    "a TransactionError on the whole container",
    {"error_code": int(KssCode.UNKNOWN_ERROR), "message": None},
    "kss",
)
UNIT_ERROR = FaultKind(
    "unit_error",
    "an error answer on the units the rule names (before: they are not applied; after: they were)",
    {"error_code": int(KssCode.UNKNOWN_ERROR), "message": None},
    "kss",
    rolls_back=False,
)
KSS_FAULT_KINDS = (SOAP_FAULT, TRANSACTION_ERROR, UNIT_ERROR)
