"""pytest collection of scenario files: each scenario YAML becomes a test item, run against the ksim
plugin's simulator (``ksim_server``) and the broker named by ``--ksim-broker``.

This module is a pytest plugin (hooks and fixtures). ksim's plugin loads it with
``pytest_plugins = ["ksimkit.scenarios.collect"]``; on its own: ``pytest -p ksimkit.scenarios.collect``.

```sh
pytest --pyargs ksimkit.scenarios.suites --ksim-broker my-broker.yaml   # the packaged suites, from an install
pytest --pyargs ksimkit.scenarios.suites.korm --ksim-broker reference   # one suite, the reference broker in-process
pytest scenarios/suites --ksim-broker reference --ksim-broker-defects payg_reduction_whole_month   # in a clone
pytest --pyargs ksimkit.scenarios.suites -n auto --ksim-broker my-broker.yaml   # in parallel (a partner each)
```

Which files: only with ``--ksim-broker`` (or ``$KSIM_BROKER``) are YAML files collected at all, so a project
that merely has ksim installed never sees its own YAML files taken for scenarios. Then: every YAML file of the
packaged suites (``ksimkit/scenarios/suites``), and files matching the ini option ``ksim_scenarios`` (globs
relative to the rootdir, default ``scenarios/suites/**/*.yaml``) or ``--ksim-scenarios GLOB``. A scenario the
broker cannot run is skipped (not applicable); a failed one fails with the runner's explanations; a file that
does not validate is a collection error naming ``file:line``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksimkit.scenarios.errors import ScenarioFileError
from ksimkit.scenarios.loader import SUITES_DIR, load_scenario
from ksimkit.scenarios.model import Scenario

__all__ = ["ScenarioFile", "is_scenario_file"]

DEFAULT_GLOBS = ["scenarios/suites/**/*.yaml", "scenarios/suites/**/*.yml"]
MARKER = "ksim_scenario"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ksim-scenarios", "ksim scenario files (certification suites as tests)")
    group.addoption(
        "--ksim-broker",
        default=os.environ.get("KSIM_BROKER") or None,
        metavar="ADAPTER|reference",
        help="the broker the scenario files drive: an HTTP adapter file (docs/certify-your-broker.md), "
        "or 'reference' for ksim's reference broker in-process (default $KSIM_BROKER)",
    )
    group.addoption("--ksim-broker-url", default=None, metavar="URL", help="override the adapter file's base_url")
    group.addoption(
        "--ksim-broker-defects",
        default="",
        metavar="A,B",
        help="with --ksim-broker reference: seeded defects to switch on",
    )
    group.addoption(
        "--ksim-scenarios",
        action="append",
        default=[],
        metavar="GLOB",
        help="more scenario files to collect (globs relative to the rootdir)",
    )
    parser.addini(
        "ksim_scenarios",
        type="linelist",
        default=list(DEFAULT_GLOBS),
        help="globs (relative to the rootdir) of the scenario files collected as tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a ksim scenario file run as a test")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob: ``**/`` is any number of directories, ``*`` and ``?`` stay inside one name."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    prefix = "" if pattern.startswith("/") else "(?:.*/)?"  # a relative glob may match below the rootdir too
    return re.compile(prefix + "".join(out) + r"\Z")


def is_scenario_file(path: Path, config: pytest.Config) -> bool:
    if path.suffix not in (".yaml", ".yml") or not config.getoption("ksim_broker", None):
        return False
    if path.resolve().is_relative_to(SUITES_DIR.resolve()):
        return True
    globs = list(config.getini("ksim_scenarios") or []) + list(config.getoption("ksim_scenarios", None) or [])
    absolute = path.resolve().as_posix()
    return any(_glob_regex(pattern).match(absolute) for pattern in globs)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = load_scenario(self.path)
        except ScenarioFileError as exc:
            raise self.CollectError(f"invalid scenario file:\n{exc}") from None
        item = pytest.Function.from_parent(self, name=scenario.id, callobj=_scenario_test(scenario))
        item.add_marker(MARKER)
        item.extra_keyword_matches.update({rule.replace("-", "_") for rule in scenario.rules} | {scenario.service})
        item.user_properties.extend(("rule", rule) for rule in scenario.rules)
        yield item


def _scenario_test(scenario: Scenario) -> Any:
    def test_scenario(ksim_server: Any, ksim_scenario_broker: Any, request: pytest.FixtureRequest) -> None:
        from ksimkit.scenarios.results import ERROR, FAILED, NOT_APPLICABLE
        from ksimkit.scenarios.runner import run_scenario
        from ksimkit.scenarios.simulator import Simulator

        sim = Simulator(ksim_server.url, request.config.getoption("ksim_admin_token", None) or "ksim-admin")
        result = run_scenario(scenario, ksim_scenario_broker, sim)
        request.node.user_properties.append(("verdict", result.verdict))
        if result.partner_id:
            request.node.user_properties.append(("partner", result.partner_id))
        if result.verdict == NOT_APPLICABLE:
            pytest.skip(result.reason or "not applicable")
        if result.verdict == FAILED:
            pytest.fail(
                f"{scenario.id} ({', '.join(scenario.rules)}): {scenario.title}\n"
                + "\n".join(f"  - {failure}" for failure in result.failures),
                pytrace=False,
            )
        if result.verdict == ERROR:
            pytest.fail(f"{scenario.id}: could not run: {result.reason}", pytrace=False)

    test_scenario.__doc__ = scenario.title
    test_scenario.__name__ = "test_" + scenario.id.replace("-", "_")
    return test_scenario


@pytest.fixture(scope="session")
def ksim_scenario_broker(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A broker factory for the scenario items: the ``--ksim-broker`` adapter, or the reference broker in-process."""
    from ksimkit.scenarios.brokers.http import HttpAdapter
    from ksimkit.scenarios.errors import AdapterError

    name = request.config.getoption("ksim_broker")
    url = request.config.getoption("ksim_broker_url")
    if not name:
        pytest.skip("no broker to drive: pass --ksim-broker ADAPTER.yaml (or --ksim-broker reference)")
    if name == "reference":
        from ksimkit.scenarios.brokers.reference import reference_broker
        from ksimkit.scenarios.errors import ReferenceBrokerUnavailable

        defects = [d.strip() for d in (request.config.getoption("ksim_broker_defects") or "").split(",") if d.strip()]
        try:
            with reference_broker(defects) as adapter:
                yield HttpAdapter.load(adapter.source, base_url=url) if url else adapter
        except ReferenceBrokerUnavailable as exc:
            pytest.skip(str(exc))
        except ValueError as exc:  # an unknown defect name
            pytest.fail(f"--ksim-broker-defects: {exc}", pytrace=False)
        return
    try:
        yield HttpAdapter.load(name, base_url=url)
    except AdapterError as exc:
        pytest.fail(f"--ksim-broker: {exc}", pytrace=False)
