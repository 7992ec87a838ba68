"""pytest plugin: a ksim server for the session and a fresh partner per test.

Loaded by its entry point (``pytest11``) once ksim is installed; ``-p no:ksim`` turns it off. Fixtures:

- ``ksim_server`` (session): the server's base URL holder (``.url``): the real app in-process on a free
  port with a temporary SQLite file (one per xdist worker), or the simulator named by ``--ksim-url``.
- ``ksim`` (session): a :class:`~ksimkit.simulators.client.KsimAdmin` on it.
- ``ksim_partner`` (function): a new partner per test, so tests under ``pytest -n auto`` never see each
  other's data; fields from ``@pytest.mark.ksim_partner(programme="msp", now="2026-04-15T09:00:00Z", ...)``.
- ``korm_client`` (function): an ``httpx.Client`` on ``/korm/v1`` with the partner's token.
- ``kss_client`` (function): a ``zeep.Client`` on ``/kss/soap/upi`` sending the partner's ``AccessInfo``.

The partner's test harness (docs/harness.md) is on its handle: ``ksim_partner.inject_fault(...)``,
``.journal(...)``, ``.verify(...)``, ``.set_strict()``; ``--ksim-strict`` makes every test's partner strict.

Nothing is started unless a test asks for one of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ksimkit.simulators.client import KsimAdmin, PartnerHandle

if TYPE_CHECKING:
    import httpx
    import zeep

# The certification scenario files, collected as test items (``--ksim-broker``).
pytest_plugins = ["ksimkit.scenarios.collect"]

MARKER = "ksim_partner"
PARTNER_FIELDS = ("name", "programme", "msp_registered", "timezone", "billing_period", "now", "strict_contract")
NAME_MAX = 200


@dataclass(frozen=True)
class RunningServer:
    """A simulator this session did not start (``--ksim-url``)."""

    url: str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ksim", "ksim simulator (Kaspersky subscription services)")
    group.addoption(
        "--ksim-url",
        default=os.environ.get("KSIM_URL") or None,
        metavar="URL",
        help="use the ksim server running at URL (e.g. http://127.0.0.1:8080; default $KSIM_URL) "
        "instead of starting one in-process",
    )
    group.addoption(
        "--ksim-admin-token",
        default=os.environ.get("KSIM_ADMIN_TOKEN") or "ksim-admin",
        metavar="TOKEN",
        help="admin token of the control plane (default $KSIM_ADMIN_TOKEN, else ksim-admin); "
        "the in-process server is started with it",
    )
    group.addoption(
        "--ksim-strict",
        action="store_true",
        default=False,
        help="every test's partner refuses requests that break ksim's contracts (strict contract mode; "
        "a test's @pytest.mark.ksim_partner(strict_contract=False) overrides it)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**fields): fields of the test's ksim partner: {', '.join(PARTNER_FIELDS)} "
        "(e.g. programme='msp', now='2026-04-15T09:00:00Z')",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    url = config.getoption("ksim_url", None)
    return f"ksim: simulator at {url}" if url else None


@pytest.fixture(scope="session")
def ksim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The simulator of this session: an ``InProcessServer`` (started here), or the ``--ksim-url`` one; ``.url``."""
    url = request.config.getoption("ksim_url")
    if url:
        yield RunningServer(url.rstrip("/"))
        return
    from ksimkit.simulators.app import create_app
    from ksimkit.simulators.core.settings import SettingError, load_settings
    from ksimkit.simulators.server import InProcessServer

    database = tmp_path_factory.mktemp("ksim") / "state.db"  # xdist gives each worker its own base temp
    try:
        loaded = load_settings()
    except SettingError as exc:  # one line, as ksim itself says it (docs/settings.md)
        pytest.fail(f"ksim: {exc}", pytrace=False)
    settings = loaded.replace(
        database_url=f"sqlite:///{database}", admin_token=request.config.getoption("ksim_admin_token")
    )
    with InProcessServer(create_app(settings)) as server:
        yield server


REACH_TIMEOUT_S = 5.0


def _check_running_server(admin: KsimAdmin) -> None:
    """A ``--ksim-url`` server that is down, not ksim, or refuses the admin token: one clear line (the tests that
    need it error with it), not a chain of tracebacks."""
    problem = admin.problem(wait=REACH_TIMEOUT_S, token_hint="--ksim-admin-token, $KSIM_ADMIN_TOKEN")
    if problem:
        pytest.fail(
            f"ksim: --ksim-url: {problem}; start one (ksim serve) or drop --ksim-url to run one in-process",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def ksim(request: pytest.FixtureRequest, ksim_server: Any) -> Iterator[KsimAdmin]:
    """The control plane of the session's simulator."""
    with KsimAdmin(ksim_server.url, request.config.getoption("ksim_admin_token")) as admin:
        if isinstance(ksim_server, RunningServer):
            _check_running_server(admin)
        yield admin


def _partner_fields(request: pytest.FixtureRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": request.node.nodeid[-NAME_MAX:]}  # find a test's partner in /_sim/partners
    if request.config.getoption("ksim_strict", False):
        fields["strict_contract"] = True
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # module < class < function
        if marker.args:
            pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}", pytrace=False)
        unknown = sorted(set(marker.kwargs) - set(PARTNER_FIELDS))
        if unknown:
            pytest.fail(
                f"@pytest.mark.{MARKER}: unknown fields {unknown}; known: {list(PARTNER_FIELDS)}", pytrace=False
            )
        fields.update(marker.kwargs)
    return fields


@pytest.fixture
def ksim_partner(request: pytest.FixtureRequest, ksim: KsimAdmin, ksim_server: Any) -> Iterator[PartnerHandle]:
    """A new partner for this test (own credentials, clock and data); see the ``ksim_partner`` marker. On a shared
    simulator (``--ksim-url``) it is deleted when the test ends, so the server does not gain a partner per test."""
    partner = ksim.create_partner(**_partner_fields(request))
    yield partner
    if isinstance(ksim_server, RunningServer):
        from ksimkit.simulators.client import KsimError

        try:
            partner.delete()
        except KsimError as exc:
            if exc.status != 404:  # the test deleted it itself
                raise


@pytest.fixture
def korm_client(ksim_partner: PartnerHandle) -> Iterator[httpx.Client]:
    """``httpx.Client`` on ``<server>/korm/v1`` with the test partner's bearer token."""
    with ksim_partner.korm() as client:
        yield client


@pytest.fixture
def kss_client(ksim_partner: PartnerHandle) -> zeep.Client:
    """``zeep.Client`` on ``<server>/kss/soap/upi``; every call carries the test partner's ``AccessInfo``."""
    return ksim_partner.kss_zeep_client()
