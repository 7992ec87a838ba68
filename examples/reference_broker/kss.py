"""The broker's KSS 3.0 client: zeep, built from the WSDL the simulator serves (docs/kss-wire.md, "Client notes").

Every request carries the ``AccessInfo`` header, a ``TransactionId`` unique per request (the vendor refuses a
repeat with error 6, and that repeat changes nothing) and ``UnitId`` 1..n inside its container. Answers are per
unit: :meth:`KssClient.send` returns one :class:`UnitResult` per unit sent, in order.

Retries: a transport error or an HTTP 5xx leaves the outcome unknown. Re-sending the same TransactionId would
only get error 6, so the client re-sends under a NEW TransactionId and marks the results ``retried``: the
caller then reads an answer like "already activated" (1) as "our first attempt got through".
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from ksimkit.examples.reference_broker.errors import KssTransactionRefused, KssUnavailable

KSS = "{http://schemas.kaspersky.com/services/subscription/2.0/}"
EXT = "{http://ksim.dev/kss/3.0/ext}"
EXT_KINDS = ("ChangeLicenseCount", "ChangeProduct")
RETRIES = 3
BACKOFF = 0.05
TIMEOUT = 5.0  # seconds per attempt: a slower answer is a lost one, settled by a retry


@dataclass(frozen=True)
class Unit:
    """One item to send: its kind (``Activate``, ``ChangeLicenseCount``, ...), SubscriberId and attributes."""

    kind: str
    subscriber_id: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UnitResult:
    kind: str  # the answer's element name: Activate, ChangeLicenseCountResult, ActivateError, ...
    subscriber_id: str
    ok: bool
    code: int | None = None
    message: str | None = None
    activation_code: str | None = None
    info: dict[str, Any] | None = None  # GetInfo: the Subscription attributes
    retried: bool = False


_clients: dict[str, tuple[zeep.Client, threading.Lock]] = {}
_clients_lock = threading.Lock()


def _client(wsdl_url: str, actor: str, timeout: float) -> tuple[zeep.Client, threading.Lock]:
    """One zeep client per WSDL URL for the process (parsing the WSDL is the slow part); calls are serialised."""
    with _clients_lock:
        found = _clients.get(wsdl_url)
        if found is None:
            session = requests.Session()
            session.headers["X-Ksim-Actor"] = actor
            client = zeep.Client(
                wsdl_url, transport=Transport(session=session, timeout=timeout, operation_timeout=timeout)
            )
            found = _clients[wsdl_url] = (client, threading.Lock())
        return found


class KssClient:
    def __init__(
        self,
        wsdl_url: str,
        username: str,
        password: str,
        *,
        actor: str = "reference-broker",
        timeout: float = TIMEOUT,
        transaction_prefix: str = "rb",
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.defects = defects
        self.wsdl_url, self.username, self.password = wsdl_url, username, password
        self.actor, self.timeout, self.prefix = actor, timeout, transaction_prefix

    def send(self, units: list[Unit], now: dt.datetime) -> list[UnitResult]:
        client, lock = _client(self.wsdl_url, self.actor, self.timeout)
        delay, failure = BACKOFF, "no attempt"
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                with lock:
                    answer = self._request(client, units, now)
            except (requests.RequestException, zeep.exceptions.TransportError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            except zeep.exceptions.Fault as fault:
                # soapenv:Server is the service's own failure (HTTP 500): transient, retried like a 5xx; a Client
                # fault is a refusal of what we sent
                server = str(fault.code or "").rsplit(":", 1)[-1] == "Server"
                if server and "kss_soap_fault_not_retried" not in self.defects:  # defect("kss_soap_fault_not_retried")
                    failure = f"SOAP Fault {fault.code}: {fault.message}"
                    continue
                raise KssTransactionRefused(str(fault.code or "Fault"), str(fault.message)) from None
            return self._results(answer, units, retried=attempt > 0)
        raise KssUnavailable(f"KSS {', '.join(u.kind for u in units)}: {failure} after {RETRIES} attempts")

    def _request(self, client: zeep.Client, units: list[Unit], now: dt.datetime) -> Any:
        items = []
        for unit_id, unit in enumerate(units, start=1):
            factory = (
                client.get_element(EXT + unit.kind)
                if unit.kind in EXT_KINDS
                else client.get_type(f"{KSS}SubscriptionRequest{unit.kind}Item")
            )
            attrs = {k: v for k, v in unit.attrs.items() if v is not None}
            items.append({unit.kind: factory(UnitId=unit_id, SubscriberId=unit.subscriber_id, **attrs)})
        collection = client.get_type(KSS + "SubscriptionRequestItemCollection")(_value_1=items)
        access = client.get_element(KSS + "AccessInfo")(UserName=self.username, Password=self.password)
        return client.service.SubscriptionRequest(
            Timestamp=now,
            TransactionId=f"{self.prefix}-{uuid.uuid4().hex}",
            SubscriptionRequest=collection,
            _soapheaders=[access],
        )

    @staticmethod
    def _results(answer: Any, units: list[Unit], *, retried: bool) -> list[UnitResult]:
        if answer.TransactionError is not None:
            error = answer.TransactionError
            raise KssTransactionRefused(str(error.ErrorCode), str(error.ErrorMessage))
        by_unit: dict[int, UnitResult] = {}
        for holder, ok in ((answer.SubscriptionResponse, True), (answer.SubscriptionError, False)):
            for entry in [] if holder is None else holder._value_1:
                ((kind, value),) = entry.items()
                for item in value if isinstance(value, list) else [value]:
                    info = None
                    if kind == "GetInfo" and item.Subscription:
                        sub = item.Subscription[0]
                        info = {
                            name: getattr(sub, name, None)
                            for name in (
                                "Status",
                                "StartTime",
                                "EndTime",
                                "LicenseCount",
                                "ProductId",
                                "ActivationCode",
                                "TrialEndTime",
                                "PauseEndTime",
                                "CustomerId",
                                "MaxLicenseCountThisPeriod",
                            )
                        }
                    by_unit[int(item.UnitId)] = UnitResult(
                        kind=kind,
                        subscriber_id=str(item.SubscriberId),
                        ok=ok,
                        code=None if ok else int(item.ErrorCode),
                        message=None if ok else str(item.ErrorMessage),
                        activation_code=getattr(item, "ActivationCode", None) if ok else None,
                        info=info,
                        retried=retried,
                    )
        missing = [i for i in range(1, len(units) + 1) if i not in by_unit]
        if missing:
            raise KssTransactionRefused("99", f"the answer has no result for unit(s) {missing}")
        return [by_unit[i] for i in range(1, len(units) + 1)]
