"""Fixtures of the scenario tests: the session's real simulator (tests/conftest.py ``server``) as a runner target,
scenario files written on the fly, and the tiny HTTP broker served on a real socket."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ksimkit.scenarios.loader import load_scenario
from ksimkit.scenarios.model import Scenario
from ksimkit.scenarios.simulator import Simulator
from ksimkit.simulators.server import InProcessServer
from tests.scenarios import http_broker_app

ADMIN_TOKEN = "test-admin"  # the token of tests/conftest.py's `server`


@pytest.fixture
def sim(server: InProcessServer) -> Simulator:
    return Simulator(server.url, ADMIN_TOKEN)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    """``write_scenario(name, yaml_text)`` -> the path of ``<tmp>/<name>.yaml`` (the text is dedented)."""

    def write(name: str, text: str, directory: Path | None = None) -> Path:
        folder = directory or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_scenario(write_scenario: Callable[..., Path]) -> Callable[[str, str], Scenario]:
    return lambda name, text: load_scenario(write_scenario(name, text))


@pytest.fixture
def tiny_broker() -> Iterator[InProcessServer]:
    """The tiny broker REST API (tests/scenarios/http_broker_app.py) on a free port, without defects."""
    with InProcessServer(http_broker_app.create_app()) as server:
        yield server


@pytest.fixture
def tiny_adapter_file(tmp_path: Path, tiny_broker: InProcessServer) -> Path:
    path = tmp_path / "tiny-broker.yaml"
    path.write_text(http_broker_app.ADAPTER_YAML.replace("http://tiny.invalid", tiny_broker.url), encoding="utf-8")
    return path
