"""The exceptions of ``ksimkit.scenarios``, one tree: catch :class:`ScenarioError` for any of them.

Each keeps the built-in base its callers rely on (a bad file is a ``ValueError``, a broker that cannot be reached a
``RuntimeError``). The runner's own three (a step the broker does not support, the broker's failure, the harness's)
never leave a run: they become its verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AdapterError",
    "BrokerCallError",
    "BrokerFailure",
    "HarnessError",
    "Issue",
    "NotApplicable",
    "PoolError",
    "ReferenceBrokerUnavailable",
    "ScenarioError",
    "ScenarioFileError",
]


class ScenarioError(Exception):
    """The root of every exception the scenarios package raises."""


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a scenario file."""

    file: str
    line: int  # 1-based; 0 when unknown
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ScenarioFileError(ScenarioError, ValueError):
    """A scenario file (or a suite) that does not validate; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class PoolError(ScenarioError, ValueError):
    """A pool file that cannot be used, or a partner the simulator would not provision."""


class ReferenceBrokerUnavailable(ScenarioError, RuntimeError):
    """The reference broker (or its adapter file) is not importable from here."""


class AdapterError(ScenarioError, ValueError):
    """An adapter file that cannot be used: names the file, the key and what is wrong."""


class BrokerCallError(ScenarioError, RuntimeError):
    """A call to the broker that failed: transport error, a 5xx, an answer that is not what the file says."""

    def __init__(
        self, message: str, *, method: str = "", url: str = "", status: int | None = None, body: str | None = None
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        where = f" [{method} {url}]" if method else ""
        tail = f": {body[:300]}" if body else ""
        super().__init__(f"{message}{where}{tail}")


# -- the runner's: each ends a run with its verdict --------------------------------------------------------------


class NotApplicable(ScenarioError):
    """The broker does not support what the scenario needs: the scenario is *not applicable*."""


class BrokerFailure(ScenarioError):
    """The broker failed (raised, or answered what the protocol does not allow): the scenario *failed*.

    ``rule``: the rule the failure is attributed to (None: the scenario's billing rule)."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class HarnessError(ScenarioError):
    """The harness could not run the scenario (the simulator refused or did not answer): *error*."""
