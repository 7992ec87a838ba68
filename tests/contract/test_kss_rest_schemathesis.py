"""Schemathesis 4 against the KSS partner-portal contract (contracts/kss-rest.openapi.yaml), in-process, every check on.

As for KORM (test_korm_schemathesis.py): the examples, coverage and fuzzing phases run as parametrized tests,
and the stateful phase follows the contract's links (bill or report -> subscription -> its audit entries).
The API only reads, so the partner is given KSS subscriptions through the rules first (two customers, a
licence change, a cancel), so that bills, reports, audit pages and subscriptions have content to check.
An unknown SubscriberId (404) or a well-formed but refused value (422) is the API's answer, so
positive-data acceptance also expects those.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from ksimkit.simulators.app import create_app
from ksimkit.simulators.core.context import CallContext
from ksimkit.simulators.core.due import move_clock
from ksimkit.simulators.core.partners import create_partner, load_partner, reset_partner
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.core.web import Runtime
from ksimkit.simulators.kss import container
from ksimkit.simulators.kss.model import Activate, ChangeLicenseCount, RequestContainer, SoftCancel
from ksimkit.simulators.services import default_services
from tests.reliability.figures import record
from tests.state import CallCounter

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

pytestmark = pytest.mark.contract

# CI: 20 examples per operation, the same every run; `make reliability` (KSIM_RELIABILITY=long): more, random.
LONG = os.environ.get("KSIM_RELIABILITY") == "long"
EXAMPLES = int(os.environ.get("KSIM_SCHEMATHESIS_EXAMPLES", "200" if LONG else "20"))

UTC = dt.UTC
START = dt.datetime(2026, 3, 2, 9, tzinfo=UTC)

_DB = Path(tempfile.mkdtemp(prefix="ksim-st-kss-")) / "state.db"
APP = create_app(Settings(database_url=f"sqlite:///{_DB}", admin_token="st-admin"))
_RUNTIME: Runtime = APP.extensions["ksim"]
CALLS = CallCounter(APP)
with _RUNTIME.store.begin() as _conn:
    PARTNER = create_partner(_conn, faker_seed=0, default_timezone="UTC", programme="reseller", now=START)


def _send(when: dt.datetime, *items: object) -> None:
    with _RUNTIME.store.begin() as conn:
        move_clock(conn, PARTNER["id"], when, sources=SERVICES.due_sources)
        partner = load_partner(conn, PARTNER["id"])
        ctx = CallContext(partner=partner, profile=_RUNTIME.profile, actor="schemathesis")
        answer = container.process(conn, ctx, RequestContainer(when, f"st-{when.isoformat()}", tuple(items)))  # type: ignore[arg-type]
    assert answer.transaction_error is None and not answer.errors, answer


def seed() -> None:
    """From an empty partner: acme-1 (10, then 15 KESB-SELECT), globex-1 (20 KSMS, cancelled end of April)."""
    with _RUNTIME.store.begin() as conn:
        reset_partner(conn, PARTNER["id"], SERVICES.resets)
    _send(
        START,
        Activate(1, "acme-1", START, None, "KESB-SELECT", 10, customer_id="acme"),
        Activate(2, "globex-1", START, None, "KSMS", 20, customer_id="globex"),
    )
    april = dt.datetime(2026, 4, 10, 9, tzinfo=UTC)
    _send(april, ChangeLicenseCount(1, "acme-1", 15), SoftCancel(2, "globex-1", dt.datetime(2026, 5, 1, tzinfo=UTC)))
    with _RUNTIME.store.begin() as conn:
        move_clock(conn, PARTNER["id"], dt.datetime(2026, 5, 2, 8, tzinfo=UTC), sources=SERVICES.due_sources)


seed()

CONFIG = {
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]},
    },
    "generation": {"max-examples": EXAMPLES, "mode": "all", "deterministic": not LONG},
    "suppress-health-check": ["too_slow", "filter_too_much"],
    "auth": {"openapi": {"partnerBearer": {"bearer": PARTNER["token"]}}},
}

kss = schemathesis.openapi.from_wsgi("/kss/v1/openapi.yaml", APP, config=SchemathesisConfig.from_dict(CONFIG))


@kss.parametrize()
def test_kss_rest_contract_and_server_agree(case: schemathesis.Case) -> None:
    case.call_and_validate()


class KssRestStateMachine(kss.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each run starts from the same seeded partner at the same clock, so runs replay the same way.
        seed()


TestKssRestStateful = KssRestStateMachine.TestCase


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Any:
    yield
    record(
        "schemathesis_kss_rest",
        examples_per_operation=EXAMPLES,
        requests=sum(CALLS.counts.values()),
        by_status=dict(CALLS.counts),
    )
