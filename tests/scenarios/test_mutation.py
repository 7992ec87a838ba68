"""The mutation run (scripts/mutate.py, `make mutation` -> docs/mutation.md) in seconds: its mutants are one edit
each and never inside a seeded defect's branch, a mutant the suites must notice is killed by a scenario that runs
its line, and one they cannot notice survives."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_mutate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ksim_mutate", ROOT / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ksim_mutate"] = module
    spec.loader.exec_module(module)
    return module


mutate = load_mutate()


def find(mutants: list, module: str, code: str, what: str):  # type: ignore[no-untyped-def, type-arg]
    (found,) = [m for m in mutants if m.module == module and m.code.startswith(code) and m.what == what]
    return found


def test_mutants_are_single_edits_outside_the_seeded_defects() -> None:
    every = mutate.mutants()
    assert len(every) > 100 and len({m.id for m in every}) == len(every)
    for module in mutate.MODULES:
        tree = ast.parse(mutate.source_path(module).read_text(encoding="utf-8"))
        defect_lines = {
            n.lineno
            for node in ast.walk(tree)
            if mutate._defect_branch(node)
            for n in ast.walk(node)
            if hasattr(n, "lineno")
        }
        assert not [m for m in every if m.module == module and m.line in defect_lines]
    sample = find(every, "billing", "licence_days = sum((hi - lo).days * qty", "`*` -> `/`")
    original = mutate.source_path("billing").read_text(encoding="utf-8")
    changed = [
        a
        for a, b in zip(
            ast.unparse(ast.parse(original)).splitlines(), mutate.mutated_source(sample).splitlines(), strict=False
        )
        if a != b
    ]
    assert len(changed) == 1 and "(hi - lo).days / qty" in mutate.mutated_source(sample)


def test_a_licence_days_mutant_is_killed_and_a_retry_count_mutant_survives() -> None:
    every = mutate.mutants(("billing", "korm"))
    days = find(every, "billing", "licence_days = sum((hi - lo).days * qty", "`*` -> `/`")
    retries = find(every, "korm", "RETRIES = 3", "`3` -> `4`")
    scenario = ["korm-payg-reduction-mid-month"]
    hits = {f"billing:{days.line}": scenario, f"korm:{retries.line}": scenario}
    killed = mutate.evaluate(days, hits, timeout=240, jobs=1)
    assert killed.status == "killed" and killed.killed_by == scenario
    survived = mutate.evaluate(retries, hits, timeout=240, jobs=1)
    assert survived.status == "survived" and survived.killed_by == []
    assert mutate.evaluate(days, {}, timeout=240, jobs=1).status == "not_covered"
