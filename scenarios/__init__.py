"""ksim scenarios: certification suites that drive a broker against the simulators and check what it bills.

```python
from ksimkit.scenarios import HttpAdapter, Simulator, load_suite, run_scenarios, write_reports, ReportMeta

scenarios = load_suite(["scenarios/suites"])
results = run_scenarios(scenarios, HttpAdapter.load("my-broker.yaml"), Simulator("http://127.0.0.1:8080"))
write_reports(results, "out", ReportMeta(broker="my-broker"))
```

Modules: ``model`` (the file format), ``brokers`` (the Broker protocol and the HTTP adapter), ``runner``,
``report``, ``rules`` (the rule catalog), ``collect`` (scenario files as pytest items).
"""

from ksimkit.scenarios.brokers.base import (
    Broker,
    Charge,
    LegacySubscription,
    StepResult,
    TenantSetup,
    UnsupportedBroker,
)
from ksimkit.scenarios.brokers.http import AdapterError, BrokerCallError, HttpAdapter, HttpBroker
from ksimkit.scenarios.model import Scenario, ScenarioFileError, load_scenario, load_suite, parse_scenario
from ksimkit.scenarios.report import ReportMeta, write_reports
from ksimkit.scenarios.runner import ScenarioResult, Simulator, run_scenario, run_scenarios

__all__ = [
    "AdapterError",
    "Broker",
    "BrokerCallError",
    "Charge",
    "HttpAdapter",
    "HttpBroker",
    "LegacySubscription",
    "ReportMeta",
    "Scenario",
    "ScenarioFileError",
    "ScenarioResult",
    "Simulator",
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
