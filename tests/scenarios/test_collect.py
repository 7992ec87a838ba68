"""Scenario files collected by pytest (scenarios/collect.py), run by pytester against the plugin's own simulator
and the tiny HTTP broker."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksimkit.simulators.server import InProcessServer
from tests.scenarios import http_broker_app
from tests.scenarios.conftest import ADMIN_TOKEN
from tests.scenarios.test_certify import KORM, KSS

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    suites = pytester.path / "scenarios" / "suites"
    (suites / "korm").mkdir(parents=True)
    (suites / "kss").mkdir(parents=True)
    (suites / "korm" / "korm-one.yaml").write_text(textwrap.dedent(KORM).lstrip())
    (suites / "kss" / "kss-one.yaml").write_text(textwrap.dedent(KSS).lstrip())
    (pytester.path / "not-a-scenario.yaml").write_text("just: data\n")
    pytester.makeini("[pytest]\n")
    return pytester


@pytest.fixture
def defective_adapter(tmp_path: Path) -> Iterator[Path]:
    with InProcessServer(http_broker_app.create_app(frozenset({"reactivate_done"}))) as server:
        path = tmp_path / "defective.yaml"
        path.write_text(http_broker_app.ADAPTER_YAML.replace("http://tiny.invalid", server.url))
        yield path


@pytest.fixture
def run(server: InProcessServer) -> Any:
    """pytest in this process, against the session's simulator (``--ksim-url``: an in-process one would import
    the simulator's tables a second time)."""

    def go(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
        return pytester.runpytest(
            "-p",
            "ksimkit.scenarios.collect",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--ksim-url",
            server.url,
            "--ksim-admin-token",
            ADMIN_TOKEN,
            *args,
        )

    return go


def test_each_scenario_file_is_a_test_item(run: Any, project: pytest.Pytester, tiny_adapter_file: Path) -> None:
    result = run(project, "--ksim-broker", str(tiny_adapter_file), "-v", "scenarios")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*scenarios/suites/korm/korm-one.yaml::korm-one PASSED*",
            "*scenarios/suites/kss/kss-one.yaml::kss-one PASSED*",
        ]
    )


def test_a_failing_scenario_fails_with_the_runners_explanations(
    run: Any, project: pytest.Pytester, defective_adapter: Path
) -> None:
    result = run(project, "--ksim-broker", str(defective_adapter), "-k", "KORM_STOP_1")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*korm-one (KORM-PAYG-2, KORM-STOP-1)*",
            "*expected refused (SUBSCRIPTION_DELETED), the broker told its customer done*",
        ]
    )


def test_without_a_broker_no_yaml_file_is_collected(run: Any, project: pytest.Pytester) -> None:
    """A project that merely has ksim installed keeps its own YAML files: nothing is taken for a scenario."""
    result = run(project, "--co", "scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("*korm-one*")


def test_the_packaged_suites_by_pyargs(run: Any, project: pytest.Pytester, tiny_adapter_file: Path) -> None:
    result = run(
        project, "--ksim-broker", str(tiny_adapter_file), "--co", "-q", "--pyargs", "ksimkit.scenarios.suites.korm"
    )
    result.stdout.fnmatch_lines(["*korm-payg-reduction-mid-month.yaml::korm-payg-reduction-mid-month*"])
    packaged = len(list((ROOT / "scenarios" / "suites" / "korm").glob("*.yaml")))
    assert packaged >= 50 and sum(".yaml::" in line for line in result.stdout.lines) == packaged


def test_an_invalid_scenario_file_is_a_collection_error_with_file_and_line(
    run: Any, project: pytest.Pytester, tiny_adapter_file: Path
) -> None:
    bad = project.path / "scenarios" / "suites" / "korm" / "korm-bad.yaml"
    bad.write_text(
        "id: korm-bad\ntitle: t\nrules: [KORM-NOPE-1]\nservice: korm\nsetup: {start: 2026-04-15}\n"
        "steps: [{advance: 2026-05-01}]\n"
    )
    result = run(project, "--ksim-broker", str(tiny_adapter_file), "--co")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*invalid scenario file:*", "*korm-bad.yaml:3: unknown rule ID 'KORM-NOPE-1'*"])


def test_a_step_the_broker_lacks_skips_the_scenario(
    run: Any, project: pytest.Pytester, tmp_path: Path, tiny_adapter_file: Path
) -> None:
    korm_only = tmp_path / "korm-only.yaml"
    text = tiny_adapter_file.read_text()
    start = text.index("  activate:")
    korm_only.write_text(text[:start] + text[text.index("  charges:") :])
    result = run(project, "--ksim-broker", str(korm_only), "-rs", "scenarios/suites/kss")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the broker does not support activate*"])


def test_more_scenario_paths_by_option(run: Any, project: pytest.Pytester, tiny_adapter_file: Path) -> None:
    extra = project.path / "mine"
    extra.mkdir()
    (extra / "korm-two.yaml").write_text(textwrap.dedent(KORM).lstrip().replace("id: korm-one", "id: korm-two"))
    result = run(project, "--ksim-broker", str(tiny_adapter_file), "--ksim-scenarios", "mine/*.yaml", "mine")
    result.assert_outcomes(passed=1)
