"""``ksim demo`` against a real server: each step shows what it says it shows."""

from __future__ import annotations

from typing import Any

import pytest

from ksimkit.simulators import demo


def test_SIM_ERR_1_demo_step_2_shows_the_KORM_TRIAL_1_refusal(
    server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial order is refused by the vendor rule (KORM-TRIAL-1), not by the schema (a null approval_code)."""
    from rich.console import Console

    monkeypatch.setattr(demo, "console", Console(width=200, force_terminal=False))
    demo.Walkthrough(server.url, "test-admin").run()  # stops (SystemExit) if an answer is not the expected one
    printed = capsys.readouterr().out
    assert "POST /korm/v1/subscriptions -> 422 TRIAL_NOT_SUPPORTED KORM-TRIAL-1" in printed, printed
    assert "VALIDATION_ERROR" not in printed and "None" not in printed
