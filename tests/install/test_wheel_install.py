"""The built wheel in a fresh virtualenv of a separate project, as a user installs it (no dev extras).

The host project (``host_project/``) has its own top-level ``scenarios``, ``simulators``, ``contracts`` and
``examples`` packages and a conftest that imports them: the plugin must leave them alone. Run alone with
``pytest -m install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ksimkit

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
HOST = Path(__file__).resolve().parent / "host_project"


def _run(cmd: list[str | Path], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSIM_", "PYTEST_", "VIRTUAL_ENV"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, ROOT], cwd=out))
    [built] = out.glob("ksimkit-*.whl")
    return built


@pytest.fixture(scope="module")
def python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel, its declared dependencies and pytest: nothing else."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env)
    interpreter = env / "bin" / "python"
    pytest_version = pytest.__version__
    _ok(
        _run(
            [
                interpreter,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--disable-pip-version-check",
                wheel,
                f"pytest=={pytest_version}",
            ],
            cwd=env,
            timeout=300,
        )
    )
    yield interpreter


@pytest.fixture
def host(tmp_path: Path) -> Path:
    project = tmp_path / "host"
    shutil.copytree(HOST, project)
    return project


def _source_packages() -> set[str]:
    """Every package of the repository's mapped folders, as the wheel must name it."""
    found = {"ksimkit"}
    for folder in ("simulators", "scenarios", "contracts", "examples"):
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add("ksimkit/" + init.parent.relative_to(ROOT).as_posix())
    return found


def test_the_wheel_installs_one_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        packages = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
        assert packages == _source_packages(), "pyproject.toml's package list differs from the source tree"
        top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
        assert top == {"ksimkit"}
        assert "ksimkit/py.typed" in names
        assert any(n.startswith("ksimkit/scenarios/suites/korm/") and n.endswith(".yaml") for n in names)
        assert "ksimkit/contracts/kss-upi.wsdl" in names
        metadata = archive.read(f"ksimkit-{ksimkit.__version__}.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Name: ksimkit" in metadata


def test_the_host_projects_tests_run_with_the_plugin(python: Path, host: Path) -> None:
    out = _ok(_run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=host))
    assert "9 passed" in out, out


def test_the_version_from_the_command_and_the_module(python: Path, host: Path) -> None:
    expected = f"ksim {ksimkit.__version__}"
    assert _ok(_run([python.parent / "ksim", "--version"], cwd=host)).strip() == expected
    assert _ok(_run([python, "-m", "ksimkit", "--version"], cwd=host)).strip() == expected


def test_certify_the_reference_broker_from_the_install(python: Path, host: Path) -> None:
    out = host / "out"
    _ok(_run([python.parent / "ksim", "certify", "--reference-broker", "-k", "two-customers", "--out", out], cwd=host))
    summary = (out / "summary.json").read_text(encoding="utf-8")
    assert '"passed": 2' in summary
    assert not (host / "scenarios" / "suites" / "report.html").exists()


def test_the_packaged_suites_by_pyargs(python: Path, host: Path) -> None:
    out = _ok(
        _run(
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--pyargs",
                "ksimkit.scenarios.suites",
                "--ksim-broker",
                "reference",
                "-k",
                "customers and apart",
            ],
            cwd=host,
        )
    )
    assert "2 passed" in out, out


def test_setting_database_url_postgresql_without_the_driver_names_the_extra(python: Path, host: Path) -> None:
    """A plain install has no psycopg: a PostgreSQL URL is one line naming the extra to install, exit status 2."""
    result = _run([python.parent / "ksim", "serve", "--database-url", "postgresql://ksim@127.0.0.1:1/ksim"], cwd=host)
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        "ksim: database_url (--database-url): PostgreSQL needs the psycopg driver: pip install 'ksimkit[postgresql]'"
    ), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
