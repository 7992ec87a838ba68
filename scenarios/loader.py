"""Scenario files in: YAML validated into the model (``scenarios/model.py``), every error naming ``file:line``.

```python
from ksimkit.scenarios.loader import load_scenario, load_suite

scenario = load_scenario("scenarios/suites/korm/korm-payg-reduction-mid-month.yaml")
scenarios = load_suite(["scenarios/suites/korm"])      # files and directories, *.yaml / *.yml
```

A file that does not validate raises :class:`ScenarioFileError`, whose ``issues`` each carry ``file``,
``line`` and ``message``; ``str(error)`` lists them one a line as ``file:line: message``. The format is
documented key by key in ``docs/scenario-format.md``. Steps are read by a step registry (``scenarios/steps.py``)
and fault steps by the simulator's fault-kind registry; both can be passed in (``steps=``, ``fault_kinds=``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ksimkit.scenarios import rules as rule_catalog
from ksimkit.scenarios.errors import Issue, ScenarioFileError
from ksimkit.scenarios.model import Expectations, Scenario, Step
from ksimkit.scenarios.parse_expect import parse_expect
from ksimkit.scenarios.parse_setup import STAND_IN_SETUP, parse_setup
from ksimkit.scenarios.parse_steps import parse_steps
from ksimkit.scenarios.steps import STEPS, StepKinds
from ksimkit.scenarios.yaml_reader import YamlReader

if TYPE_CHECKING:
    from ksimkit.simulators.core.fault_kinds import FaultKinds

__all__ = ["SUITES_DIR", "discover", "load_scenario", "load_suite", "parse_scenario"]

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SERVICES = ("korm", "kss")
_TOP_KEYS = {"id", "title", "rules", "service", "setup", "steps", "expect", "description"}
_TOP_REQUIRED = ("id", "title", "rules", "service", "setup", "steps")
SUITES_DIR = Path(__file__).with_name("suites")


@functools.cache
def _default_fault_kinds() -> FaultKinds:
    """Every fault kind the simulator knows; imported on first use (the simulator's modules load its web stack)."""
    from ksimkit.simulators.services import default_fault_kinds

    return default_fault_kinds()


def load_scenario(path: str | Path, *, steps: StepKinds = STEPS, fault_kinds: FaultKinds | None = None) -> Scenario:
    """Read and validate one scenario file; :class:`ScenarioFileError` lists every problem with ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFileError([Issue(str(path), 0, f"cannot read the file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioFileError([Issue(str(path), 0, f"not UTF-8 text: {exc}")]) from exc
    return parse_scenario(text, path=path, steps=steps, fault_kinds=fault_kinds)


def parse_scenario(
    text: str,
    *,
    path: str | Path | None = None,
    file: str | None = None,
    steps: StepKinds = STEPS,
    fault_kinds: FaultKinds | None = None,
) -> Scenario:
    """Validate scenario YAML ``text``. ``path`` (if given) is where it came from: its stem must equal ``id``.
    ``steps`` and ``fault_kinds`` (default: every kind the simulator knows) are the registries steps are read by."""
    path = Path(path) if path is not None else None
    name = file or (str(path) if path is not None else "<scenario>")
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 0
            problem = " ".join(part for part in (exc.context, exc.problem) if part)
            raise ScenarioFileError([Issue(name, line, f"not valid YAML: {problem}")]) from None
        except yaml.YAMLError as exc:
            raise ScenarioFileError([Issue(name, 0, f"not valid YAML: {exc}")]) from None
        if root is None:
            raise ScenarioFileError([Issue(name, 0, "the file is empty")])
        reader = YamlReader(name, loader)
        scenario = _parse(reader, root, path, steps, fault_kinds or _default_fault_kinds())
    finally:
        loader.dispose()
    if reader.issues or scenario is None:
        raise ScenarioFileError(reader.issues or [Issue(name, 0, "not a scenario")])
    return scenario


def _parse(
    r: YamlReader, root: yaml.Node, path: Path | None, steps_table: StepKinds, fault_kinds: FaultKinds
) -> Scenario | None:
    top = r.mapping(root, "the scenario", _TOP_KEYS, _TOP_REQUIRED)
    if top is None:
        return None

    scenario_id = r.string(top["id"][1], "id") if "id" in top else None
    if scenario_id is not None:
        if not ID_RE.match(scenario_id):
            r.err(top["id"][1], f"id {scenario_id!r} may hold only letters, digits, '-', '_' and '.'")
        elif path is not None and path.stem != scenario_id:
            r.err(top["id"][1], f"id {scenario_id!r} must equal the file name's stem {path.stem!r}")
    title = r.string(top["title"][1], "title") if "title" in top else None
    description = r.string(top["description"][1], "description") if "description" in top else None

    service = None
    if "service" in top:
        service = r.string(top["service"][1], "service")
        if service is not None and service not in SERVICES:
            r.err(top["service"][1], f"service must be one of {', '.join(SERVICES)}, not {service!r}")
            service = None

    rules: list[str] = []
    if "rules" in top:
        items = r.sequence(top["rules"][1], "rules")
        if items is not None:
            if not items:
                r.err(top["rules"][1], "rules must name at least one rule ID")
            for item in items:
                rule_id = r.string(item, "a rule ID")
                if rule_id is None:
                    continue
                if not rule_catalog.is_known(rule_id):
                    r.err(item, f"unknown rule ID {rule_id!r} (not in the rules catalog, scenarios/rules.yaml)")
                elif rule_id in rules:
                    r.err(item, f"rule {rule_id} is listed twice")
                else:
                    rules.append(rule_id)

    setup = parse_setup(r, top["setup"][1], service) if "setup" in top else None
    defined: dict[str, int] = {seed.ref: seed.line for seed in setup.legacy} if setup else {}
    # Without a valid setup the steps are still checked, against a stand-in clock.
    steps = (
        parse_steps(r, top["steps"][1], service, setup or STAND_IN_SETUP, defined, steps_table, fault_kinds)
        if "steps" in top
        else []
    )
    expect = parse_expect(r, top["expect"][1], defined) if "expect" in top else Expectations()
    if "expect" in top and isinstance(top["expect"][1], yaml.ScalarNode) and r.scalar(top["expect"][1]) is None:
        expect = Expectations()

    _check_check_rules(r, rules, steps, expect)
    if r.issues or None in (scenario_id, title, service, setup):
        return None
    assert scenario_id is not None and title is not None and service is not None and setup is not None
    return Scenario(
        id=scenario_id,
        title=title,
        rules=tuple(rules),
        service=service,
        setup=setup,
        steps=tuple(steps),
        expect=expect,
        description=description,
        path=path,
    )


def _check_check_rules(r: YamlReader, rules: list[str], steps: Sequence[Step], expect: Expectations) -> None:
    """A check's ``rule`` must be one the scenario names (what the broker charges its customers is the broker's
    policy, never a check's ``rule``)."""
    given: list[tuple[int, str]] = [(s.expect.line or s.line, s.expect.rule) for s in steps if s.expect.rule]
    given += [(c.line, c.rule) for c in expect.vendor if c.rule]
    given += [(c.line, c.rule) for c in expect.charges if c.rule]
    given += [(expect.line, rule) for _, rule in expect.reconcile_rules]
    for line, rule in given:
        if rule not in rules:
            r.err(line, f"rule {rule!r} of a check is not one of the scenario's rules ({', '.join(rules)})")


SUITES_DIR = Path(__file__).with_name("suites")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files as given; directories searched for ``*.yaml``/``*.yml``), sorted."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


def load_suite(
    paths: Iterable[str | Path], *, steps: StepKinds = STEPS, fault_kinds: FaultKinds | None = None
) -> list[Scenario]:
    """Every scenario under ``paths``; all files are checked and every problem of every file is raised at once."""
    scenarios: list[Scenario] = []
    issues: list[Issue] = []
    files = discover(paths)
    for path in files:
        try:
            scenarios.append(load_scenario(path, steps=steps, fault_kinds=fault_kinds))
        except ScenarioFileError as exc:
            issues.extend(exc.issues)
    by_id: dict[str, Scenario] = {}
    for scenario in scenarios:
        if scenario.id in by_id:
            issues.append(
                Issue(scenario.source, 1, f"scenario id {scenario.id!r} is also used by {by_id[scenario.id].source}")
            )
        by_id[scenario.id] = scenario
    if issues:
        raise ScenarioFileError(issues)
    return scenarios
