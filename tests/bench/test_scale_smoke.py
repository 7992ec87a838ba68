"""A seconds-long smoke of bench/scale.py at tiny sizes (no timing asserted), and the check that its bulk KORM
setup writes what the rules write: the same statements as the same plan built through ksimkit.simulators.korm.rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
try:
    import scale
finally:
    sys.path.remove(str(ROOT / "bench"))


def test_scale_runs_at_tiny_sizes(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "scale.json"
    code = scale.main(
        [
            "--quick",
            "--korm-subs",
            "200",
            "--kss-subs",
            "50",
            "--korm-jump-subs",
            "60",
            "--months",
            "3",
            "--skip",
            "certify",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| KORM month statement, 200 subscriptions |" in printed
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) == {"korm_statement", "kss_jump", "korm_jump"}
    assert figures["korm_statement"]["lines"] > 0 and figures["korm_statement"]["median"] > 0
    assert figures["kss_jump"]["audit_entries_written"] > 50  # renewals and bills happened
    assert figures["korm_jump"]["audit_entries_written"] >= 3  # statements closed, anniversaries


def _lines(store: Any, partner_id: str, period: str) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    found = scale.korm_statement(store, partner_id, period)
    lines = sorted(tuple(v for k, v in line.items() if k != "subscription_id") for line in found["lines"])
    return lines, found["totals"]


def test_bulk_setup_matches_the_rules(tmp_path: Path) -> None:
    plan = scale.korm_plan(120, scale.load_profile())
    by_rules = scale.new_store(tmp_path / "rules.db")
    by_bulk = scale.new_store(tmp_path / "bulk.db")
    try:
        rules_partner = scale.build_korm_rules(by_rules, plan)
        bulk_partner = scale.build_korm_bulk(by_bulk, plan)
        for period in ("2025-03", "2025-09", "2026-01", "2026-02", "2026-03"):
            assert _lines(by_rules, rules_partner, period) == _lines(by_bulk, bulk_partner, period), period
    finally:
        by_rules.dispose()
        by_bulk.dispose()
