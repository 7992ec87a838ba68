"""ksim scenarios: certification suites that drive a broker against the simulators and check what it bills.

```python
from ksimkit.scenarios import HttpAdapter, ReportMeta, Simulator, load_suite, run_scenarios, write_reports

scenarios = load_suite(["scenarios/suites"])
results = run_scenarios(scenarios, HttpAdapter.load("my-broker.yaml"), Simulator("http://127.0.0.1:8080"))
write_reports(results, "out", ReportMeta(broker="my-broker"))
```

Modules: ``steps`` (the step table), ``model`` (what a scenario holds) and ``loader`` (the files in, with
``yaml_reader``, ``parse_setup``, ``parse_steps``, ``parse_expect``), ``brokers`` (the Broker protocols and the HTTP
adapter), ``runner`` (with ``simulator``, ``partner_setup``, ``vendor_views`` and ``checks``), ``results``,
``report`` (with ``report_chart``), ``certify`` (``ksim certify``), ``errors`` (one exception tree), ``rules`` (the
rule catalog), ``collect`` (scenario files as pytest items).
"""

from ksimkit.scenarios.brokers.base import (
    Broker,
    Charge,
    KormBroker,
    KssBroker,
    LegacySubscription,
    StepResult,
    TenantSetup,
    UnsupportedBroker,
)
from ksimkit.scenarios.brokers.http import HttpAdapter, HttpBroker
from ksimkit.scenarios.errors import AdapterError, BrokerCallError, ScenarioError, ScenarioFileError
from ksimkit.scenarios.loader import load_scenario, load_suite, parse_scenario
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.report import ReportMeta, write_reports
from ksimkit.scenarios.results import ScenarioResult
from ksimkit.scenarios.runner import run_scenario, run_scenarios
from ksimkit.scenarios.simulator import Simulator
from ksimkit.scenarios.steps import STEPS, StepKind, StepKinds

__all__ = [
    "STEPS",
    "AdapterError",
    "Broker",
    "BrokerCallError",
    "Charge",
    "HttpAdapter",
    "HttpBroker",
    "KormBroker",
    "KssBroker",
    "LegacySubscription",
    "ReportMeta",
    "Scenario",
    "ScenarioError",
    "ScenarioFileError",
    "ScenarioResult",
    "Simulator",
    "StepKind",
    "StepKinds",
    "StepResult",
    "TenantSetup",
    "UnsupportedBroker",
    "load_scenario",
    "load_suite",
    "parse_scenario",
    "run_scenario",
    "run_scenarios",
    "write_reports",
]
