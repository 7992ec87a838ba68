"""A host project with top-level packages named like the repository folders of ksim."""

import contracts
import examples
import scenarios
import scenarios.collect
import simulators


def pytest_sessionstart(session):
    for module in (contracts, examples, scenarios, scenarios.collect, simulators):
        assert getattr(module, "OWNER", None) == "host", f"{module.__name__} is not the host's: {module.__file__}"
