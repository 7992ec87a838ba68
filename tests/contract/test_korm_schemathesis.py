"""Schemathesis 4 against the KORM SS and control-plane contracts, in-process (WSGI), every check on.

The examples, coverage and fuzzing phases run as parametrized tests; the stateful phase runs the contract's
links (order -> get/change/switch/stop) as a state machine. Business refusals of schema-valid requests
(a SKU the catalog lacks, a quantity outside the band, a stopped subscription) are the vendor's answers,
so positive-data acceptance also expects 409/410/422.
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
from ksimkit.simulators.core.partners import create_partner, reset_partner
from ksimkit.simulators.core.settings import Settings
from ksimkit.simulators.core.web import Runtime
from ksimkit.simulators.services import default_services
from tests.reliability.figures import record
from tests.state import CallCounter, digest

SERVICES = default_services()  # what a clock move runs and a reset clears, as an app would

pytestmark = pytest.mark.contract

# CI: 20 examples per operation, the same every run; `make reliability` (KSIM_RELIABILITY=long): more, random.
LONG = os.environ.get("KSIM_RELIABILITY") == "long"
EXAMPLES = int(os.environ.get("KSIM_SCHEMATHESIS_EXAMPLES", "200" if LONG else "20"))

_DB = Path(tempfile.mkdtemp(prefix="ksim-st-")) / "state.db"
APP = create_app(Settings(database_url=f"sqlite:///{_DB}", admin_token="st-admin"))
_RUNTIME: Runtime = APP.extensions["ksim"]
CALLS = CallCounter(APP)
with _RUNTIME.store.begin() as _conn:
    PARTNER = create_partner(
        _conn, faker_seed=0, default_timezone="UTC", now=dt.datetime(2026, 4, 15, 9, tzinfo=dt.UTC)
    )

CONFIG = {
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "410", "422"]},
    },
    "generation": {"max-examples": EXAMPLES, "mode": "all", "deterministic": not LONG},
    "suppress-health-check": ["too_slow", "filter_too_much"],
}

korm = schemathesis.openapi.from_wsgi(
    "/korm/v1/openapi.yaml",
    APP,
    config=SchemathesisConfig.from_dict(
        {**CONFIG, "auth": {"openapi": {"partnerBearer": {"bearer": PARTNER["token"]}}}}
    ),
)
admin = schemathesis.openapi.from_wsgi(
    "/_sim/openapi.yaml",
    APP,
    config=SchemathesisConfig.from_dict({**CONFIG, "auth": {"openapi": {"adminBearer": {"bearer": "st-admin"}}}}),
)


def call_and_validate_unchanged_on_refusal(case: schemathesis.Case) -> None:
    """Every check, and (SIM-ERR-1) a refused request leaves the whole simulated state as it was."""
    before = digest(_RUNTIME.store)
    response = case.call_and_validate()
    if response.status_code >= 400:
        assert digest(_RUNTIME.store) == before, (
            f"{case.method} {case.formatted_path} -> {response.status_code} changed the state"
        )


@korm.parametrize()
def test_korm_contract_and_server_agree(case: schemathesis.Case) -> None:
    call_and_validate_unchanged_on_refusal(case)


@admin.parametrize()
def test_admin_contract_and_server_agree(case: schemathesis.Case) -> None:
    call_and_validate_unchanged_on_refusal(case)


class KormStateMachine(korm.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each run starts from an empty partner at a fixed clock, so runs replay the same way.
        with _RUNTIME.store.begin() as conn:
            reset_partner(conn, PARTNER["id"], SERVICES.resets)


TestKormStateful = KormStateMachine.TestCase


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Any:
    yield
    record(
        "schemathesis_korm_admin",
        examples_per_operation=EXAMPLES,
        requests=sum(CALLS.counts.values()),
        by_status=dict(CALLS.counts),
    )
