#!/usr/bin/env python3
"""Mutation testing of the reference broker against the certification suites: how much of its billing and
vendor-calling code the scenarios actually pin down (`make mutation` writes docs/mutation.md).

A small AST mutator (no third-party tool: each mutant is one syntax-tree edit, loaded in a fresh subprocess by an
import hook, so nothing is written into the source tree):

- comparisons: ``<`` ↔ ``<=``, ``>`` ↔ ``>=``, ``==`` ↔ ``!=``, ``in`` ↔ ``not in``, ``is`` ↔ ``is not``;
- arithmetic: ``+`` ↔ ``-``, ``*`` ↔ ``/``, ``//`` → ``/``, ``%`` → ``*``; ``+=`` ↔ ``-=``;
- ``and`` ↔ ``or``; ``not x`` → ``x``; integer constants ``n`` → ``n + 1``;
- never inside a seeded defect's branch (an ``if`` whose test names a defect) nor in docstrings.

For each mutant only the scenarios that execute its line run (a line-coverage map of the clean suite, made once
and kept in ``out/mutation/coverage.json``). A mutant is **killed** when one of them fails or cannot run, **survives**
when all pass, is **not covered** when no scenario executes its line (counted as surviving). The kill ratio is
killed / (mutants - equivalent ones); every survivor is listed, with the argument when it is equivalent.

    python scripts/mutate.py                       # every mutant of the default modules (slow: see --limit)
    python scripts/mutate.py --limit 60 --seed 1   # a seeded sample of 60
    python scripts/mutate.py --list                # the mutants, not run
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ksimkit.examples.reference_broker"
MODULES = ("billing", "korm", "kss")  # the broker's billing and its vendor-calling code
OUT = ROOT / "out" / "mutation"

# Survivors argued equivalent: (module, the line's code as it starts, the edit) -> the argument. An equivalent
# mutant behaves like the original for every input the broker can get, or differs only in what no vendor rule
# and no customer can observe (how often or how late a transient failure is retried).
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "billing",
        "if not paid or product is None:",
        "`or` -> `and`",
    ): "equivalent: `product` is set exactly when a paid day was added in the same loop pass, so `not paid` "
    "and `product is None` are always equal",
    (
        "billing",
        "if change.quantity > 0 and end > day:",
        "`>` -> `>=`",
    ): "equivalent (both `>` of this line): a segment with end == day has no day in it (`_clip` drops every "
    "empty span, no `start <= x < end` holds for it); a segment of 0 licences adds 0 licence-days, 0 to a "
    "maximum of counts, and only zero lines, which no invoice total or reconciliation tells from no line",
    (
        "billing",
        "next_ann = add_years(act, years + 1)",
        "`+` -> `-`",
    ): "equivalent for the figures: as the `1` -> `2` mutant of this line (the fee line's informational `to`)",
    (
        "billing",
        "if previous is not None and change.quantity > previous and start <= day < end:",
        "`>` -> `>=`",
    ): "equivalent: a change to the same count adds 0 licences, so at most a zero increase line, which no "
    "invoice total or reconciliation tells from none",
    (
        "billing",
        "if sub.activation_date >= end:",
        "`>=` -> `>`",
    ): "equivalent: a subscription activated on the period's end has no segment inside the period, so the "
    "period's lines are empty or zero either way",
    (
        "billing",
        "next_ann = add_years(act, years + 1)",
        "`1` -> `2`",
    ): "equivalent for the figures: it moves only the yearly fee line's informational `to` and `days`; units and "
    "amount are the whole fee",
    (
        "billing",
        "top, last_day, product, last_count = 0, None, None, 0",
        "`0` -> `1`",
    ): "equivalent: `top` is the maximum of counts the vendor only accepts >= 1, and `last_count` is read only by "
    "a seeded defect's branch",
    (
        "billing",
        '{"msp_discount_percent"',
        "`==` -> `!=`",
    ): "equivalent for the figures: only the line's informational `msp_discount_percent` detail",
    (
        "kss",
        "missing = [i for i in range(1, len(units) + 1) if i not in by_unit]@36",
        "`1` -> `2`",
    ): "equivalent for every answer the vendor can give: a KSS answer holds a result for every unit of the "
    "container (docs/kss-wire.md), so the guard against a missing one never fires",
    (
        "kss",
        "missing = [i for i in range(1, len(units) + 1) if i not in by_unit]",
        "`+` -> `-`",
    ): "equivalent for every answer the vendor can give: as the `1` -> `2` mutant of this line",
    (
        "korm",
        'str(problem.get("detail") or problem.get("title") or "")',
        "`or` -> `and`",
    ): "equivalent for the rules: the refusal's free text shown to the customer; the broker relays the vendor's "
    "code, which is what the rules and the scenarios compare",
    (
        "billing",
        "_TINY = dt.timedelta(microseconds=1)",
        "`1` -> `2`",
    ): "equivalent for every instant the broker gets: clocks and steps are whole seconds, so the last moment "
    "before a boundary falls on the same day one or two microseconds before it",
    (
        "billing",
        "if change.quantity > 0 and end > day:",
        "`and` -> `or`",
    ): "equivalent: the extra segments have 0 licences or no days (see the `>` mutants of this line)",
    (
        "billing",
        "if change.quantity > 0 and end > day:",
        "`0` -> `1`",
    ): "equivalent for every count the vendor accepts: a running KORM subscription has at least its band's "
    "minimum (10 or more, KORM-RANGE-1), so no segment has exactly 1 licence",
    (
        "billing",
        "min(s[0] for s in spans), max(s[1] for s in spans)",
        "`0` -> `1`",
    ): "equivalent for the figures: the PAYG line's informational `from`/`to`/`days`",
    (
        "billing",
        "min(s[0] for s, _ in legacy), max(s[1] for s, _ in legacy)",
        "`0` -> `1`",
    ): "equivalent for the figures: the legacy line's informational `from`/`to`/`days`",
    (
        "billing",
        "paid.update(lo + dt.timedelta(days=k) for k in range((hi - lo).days + 1))@78",
        "`1` -> `2`",
    ): "equivalent for the figures: one day more in the set of paid days changes only the line's informational "
    "`days`; the count and product come from the day spans themselves",
    (
        "billing",
        "horizon = local_midnight(end + dt.timedelta(days=PERIOD_DAYS if billing_period == THIRTY_DAYS "
        "else 0), zone)@103",
        "`0` -> `1`",
    ): "equivalent: for calendar months `charge` clips every day span to the month (`end - 1 day`), so a day more "
    "of horizon never reaches a bill",
    (
        "kss",
        'server = str(fault.code or "").rsplit(":", 1)[-1] == "Server"@59',
        "`1` -> `2`",
    ): "equivalent: a fault code has at most one `:` (`soapenv:Server`), so splitting once or twice from the right "
    "gives the same last part",
    (
        "billing",
        "paid.update(lo + dt.timedelta(days=k) for k in range((hi - lo).days + 1))@20",
        "`+` -> `-`",
    ): "equivalent: counting the span's days backwards from `lo` gives a set of the same size and emptiness, and "
    "only its size (the line's informational `days`) and emptiness are read",
    (
        "billing",
        "while (anniversary := add_years(act, years)) < end:",
        "`<` -> `<=`",
    ): "equivalent: the segments are cut at the horizon `end`, so an anniversary on `end` finds no segment in "
    "force (`s.start <= anniversary < s.end` fails) and adds no fee line",
    (
        "korm",
        "RETRIES = 3",
        "`3` -> `4`",
    ): "equivalent for the rules: one more attempt only matters when the vendor fails three times in a row; "
    "no vendor rule fixes the number of retries",
    ("korm", "delay *= 2", "`2` -> `3`"): "equivalent for the rules: a longer back-off between retries",
    (
        "korm",
        "default_tls = functools.lru_cache(maxsize=1)",
        "`1` -> `2`",
    ): "equivalent: a cache of a function without arguments holds one entry whatever its size",
    (
        "korm",
        'problem = {"detail": response.text[:300]}',
        "`300` -> `301`",
    ): "equivalent for the rules: one more character of an unparseable refusal's text in the message",
    ("kss", "RETRIES = 3", "`3` -> `4`"): "equivalent for the rules: as korm.RETRIES",
    ("kss", "delay *= 2", "`2` -> `3`"): "equivalent for the rules: a longer back-off between retries",
}


# Survivors the suites cannot reach by construction (counted as survivors, not excluded): the fate to print.
OUT_OF_REACH: dict[tuple[str, str], str] = {
    (
        "billing",
        "known = [s for s in snaps if s.effective <= moment]",
    ): "out of the suites' reach: `status_at` is the broker's own status display (its `/subscriptions` JSON); "
    "no Broker method reads a status, so no scenario can tell",
    (
        "billing",
        "if status == PAUSED and snap.pause_until is not None and moment >= snap.pause_until:",
    ): "out of the suites' reach: `status_at` (the broker's own status display) at the exact instant a pause ends",
    (
        "billing",
        "if status == STARTED and snap.end is not None and moment >= snap.end:",
    ): "out of the suites' reach: `status_at` (the broker's own status display) at the exact instant of the end",
    (
        "billing",
        "if status == NOT_STARTED and moment >= snap.start:",
    ): "out of the suites' reach: `status_at` (the broker's own status display) at the exact start",
}


def out_of_reach(mutant: Mutant) -> str | None:
    return next(
        (
            why
            for (module, code), why in OUT_OF_REACH.items()
            if mutant.module == module and mutant.code.startswith(code)
        ),
        None,
    )


def equivalence(mutant: Mutant) -> str | None:
    """The argument of an equivalent mutant; a key's code may end in ``@<column>`` to name one of a line's mutants."""
    column = int(mutant.id.split(":")[2])
    for (module, code, what), why in EQUIVALENT.items():
        code, _, at = code.partition("@")
        if (
            mutant.module == module
            and mutant.code.startswith(code)
            and mutant.what == what
            and (not at or int(at) == column)
        ):
            return why
    return None


_SWAP_CMP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SWAP_BIN = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult,
}
_SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    id: str  # module:line:col:n
    module: str
    line: int
    what: str  # "`<` -> `<=`"
    code: str  # the original line, stripped


def _defect_branch(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "defect" in ast.unparse(node.test)


def _points(tree: ast.Module) -> list[tuple[ast.AST, int, str]]:
    """(node, variant, description) for every mutation point, in source order."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if _defect_branch(node):
            skip.update(id(n) for n in ast.walk(node))
        if (
            isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(getattr(node.body[0], "value", None), ast.Constant)
        ):
            skip.update(id(n) for n in ast.walk(node.body[0]))
        for annotation in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if isinstance(annotation, ast.AST):  # type hints are not behaviour
                skip.update(id(n) for n in ast.walk(annotation))
    out: list[tuple[ast.AST, int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAP_CMP:
                    out.append((node, i, f"`{_SYMBOL[type(op)]}` -> `{_SYMBOL[_SWAP_CMP[type(op)]]}`"))
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BIN and not _is_str(node):
            out.append((node, 0, f"`{_SYMBOL[type(node.op)]}` -> `{_SYMBOL[_SWAP_BIN[type(node.op)]]}`"))
        elif isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub):
            out.append((node, 0, f"`{_SYMBOL[type(node.op)]}=` -> `{_SYMBOL[_SWAP_BIN[type(node.op)]]}=`"))
        elif isinstance(node, ast.BoolOp):
            out.append((node, 0, f"`{_SYMBOL[type(node.op)]}` -> `{'or' if isinstance(node.op, ast.And) else 'and'}`"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((node, 0, "`not x` -> `x`"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            out.append((node, 0, f"`{node.value}` -> `{node.value + 1}`"))
    out.sort(key=lambda p: (p[0].lineno, p[0].col_offset, p[1]))  # type: ignore[attr-defined]
    return out


def _is_str(node: ast.BinOp) -> bool:
    return any(
        isinstance(side, (ast.JoinedStr,)) or (isinstance(side, ast.Constant) and isinstance(side.value, str))
        for side in (node.left, node.right)
    )


def source_path(module: str) -> Path:
    return ROOT / "examples" / "reference_broker" / f"{module}.py"


def mutants(modules: tuple[str, ...] = MODULES) -> list[Mutant]:
    out = []
    for module in modules:
        text = source_path(module).read_text(encoding="utf-8")
        lines = text.splitlines()
        for n, (node, _variant, what) in enumerate(_points(ast.parse(text))):
            line = node.lineno  # type: ignore[attr-defined]
            out.append(
                Mutant(
                    f"{module}:{line}:{node.col_offset}:{n}",
                    module,
                    line,
                    what,  # type: ignore[attr-defined]
                    lines[line - 1].strip(),
                )
            )
    return out


def mutated_source(mutant: Mutant) -> str:
    """The module's source with the mutant's one edit (comments are lost: ast.unparse)."""
    tree = ast.parse(source_path(mutant.module).read_text(encoding="utf-8"))
    n = int(mutant.id.rsplit(":", 1)[1])
    node, variant, _ = _points(tree)[n]
    if isinstance(node, ast.Compare):
        node.ops[variant] = _SWAP_CMP[type(node.ops[variant])]()
    elif isinstance(node, ast.BinOp):
        node.op = _SWAP_BIN[type(node.op)]()
    elif isinstance(node, ast.AugAssign):
        node.op = _SWAP_BIN[type(node.op)]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        parent = _parent(tree, node)
        _replace(parent, node, node.operand)
    elif isinstance(node, ast.Constant):
        node.value = node.value + 1
    return ast.unparse(ast.fix_missing_locations(tree))


def _parent(tree: ast.AST, child: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        for _, value in ast.iter_fields(node):
            if value is child or (isinstance(value, list) and any(v is child for v in value)):
                return node
    raise LookupError("no parent")


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                if v is old:
                    value[i] = new
                    return


# -- the worker: one subprocess per mutant (or the coverage run) -------------------------------------------------


def _install(module: str, source: str) -> None:
    """An import hook that loads ``PACKAGE.module`` from ``source`` instead of its file."""
    import importlib.abc
    import importlib.util

    fullname = f"{PACKAGE}.{module}"
    origin = str(source_path(module))

    class Loader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            return importlib.util.spec_from_loader(name, self, origin=origin) if name == fullname else None

        def create_module(self, spec):  # type: ignore[no-untyped-def]
            return None

        def exec_module(self, mod):  # type: ignore[no-untyped-def]
            mod.__file__ = origin
            exec(compile(source, origin, "exec"), mod.__dict__)

    sys.meta_path.insert(0, Loader())


def _run(ids: list[str], jobs: int, trace: bool = False) -> dict[str, object]:
    import tempfile
    import threading

    from ksimkit.scenarios.brokers.reference import reference_broker
    from ksimkit.scenarios.loader import load_suite
    from ksimkit.scenarios.runner import run_scenarios
    from ksimkit.scenarios.simulator import Simulator
    from ksimkit.simulators.app import create_app
    from ksimkit.simulators.core.settings import Settings
    from ksimkit.simulators.server import InProcessServer

    suite = [s for s in load_suite([ROOT / "scenarios" / "suites"]) if not ids or s.id in ids]
    files = {str(source_path(m)): m for m in MODULES}
    hits: dict[str, set[str]] = {}
    current = {"id": ""}

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        module = files.get(frame.f_code.co_filename)
        if module is None:
            return None

        def lines(frame, event, arg):  # type: ignore[no-untyped-def]
            if event == "line":
                hits.setdefault(f"{module}:{frame.f_lineno}", set()).add(current["id"])
            return lines

        hits.setdefault(f"{module}:{frame.f_code.co_firstlineno}", set()).add(current["id"])
        return lines

    if trace:  # from before the broker's import: module-level lines are hit at import, under the id ""
        threading.settrace(tracer)
        sys.settrace(tracer)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(database_url=f"sqlite:///{tmp}/sim.db", admin_token="mutation"))
        with InProcessServer(app) as server, reference_broker() as adapter:
            sim = Simulator(server.url, "mutation")
            if trace:
                verdicts = {}
                for scenario in suite:
                    current["id"] = scenario.id
                    (result,) = run_scenarios([scenario], adapter, sim, jobs=1)
                    verdicts[scenario.id] = result.verdict
                sys.settrace(None)
                threading.settrace(None)  # type: ignore[arg-type]
            else:  # fail fast: one failing scenario kills the mutant; the slow (delay) scenarios last
                verdicts = {}
                suite.sort(key=lambda s: ("delay" in s.id, s.id))
                for i in range(0, len(suite), max(jobs, 1) * 2):
                    results = run_scenarios(suite[i : i + max(jobs, 1) * 2], adapter, sim, jobs=jobs)
                    verdicts.update({r.scenario_id: r.verdict for r in results})
                    if any(r.verdict != "passed" for r in results):
                        break
    return {"verdicts": verdicts, "hits": {k: sorted(v) for k, v in hits.items()}}


def worker(args: argparse.Namespace) -> None:
    if args.mutant:
        (mutant,) = [m for m in mutants() if m.id == args.mutant]
        _install(mutant.module, mutated_source(mutant))
    ids = [s for s in (args.scenarios or "").split(",") if s]
    print(json.dumps(_run(ids, args.jobs, trace=args.trace)))


# -- the driver -----------------------------------------------------------------------------------------------


def _subprocess(extra: list[str], timeout: float) -> dict[str, object] | None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return {"crash": done.stderr[-1500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def coverage_map(refresh: bool = False) -> dict[str, list[str]]:
    """module:line -> the scenarios that execute it (the clean broker; every scenario must pass)."""
    path = OUT / "coverage.json"
    digest = "".join(f"{source_path(m).stat().st_mtime_ns}" for m in MODULES) + str(
        sorted(p.name for p in (ROOT / "scenarios" / "suites").rglob("*.yaml"))
    )
    if path.is_file() and not refresh:
        cached = json.loads(path.read_text())
        if cached.get("digest") == digest:
            return cached["hits"]
    result = _subprocess(["--trace"], timeout=3600)
    if result is None or "crash" in result:
        raise SystemExit(f"the coverage run failed: {result}")
    bad = {k: v for k, v in result["verdicts"].items() if v != "passed"}  # type: ignore[union-attr]
    if bad:
        raise SystemExit(f"the clean reference broker must pass every scenario first: {bad}")
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"digest": digest, "hits": result["hits"]}))
    return result["hits"]  # type: ignore[return-value]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | not_covered | timeout
    scenarios: int
    killed_by: list[str]
    seconds: float


def scenarios_for(mutant: Mutant, hits: dict[str, list[str]]) -> list[str]:
    """The scenarios that execute the mutant's line; for a line run at import (a module constant), every scenario
    that executes any line of its module."""
    found = hits.get(f"{mutant.module}:{mutant.line}", [])
    if "" in found:
        found = sorted({s for key, ids in hits.items() if key.startswith(f"{mutant.module}:") for s in ids} - {""})
    return [s for s in found if s]


def evaluate(mutant: Mutant, hits: dict[str, list[str]], timeout: float, jobs: int) -> Outcome:
    scenarios = scenarios_for(mutant, hits)
    if not scenarios:
        return Outcome(mutant, "not_covered", 0, [], 0.0)
    began = time.monotonic()
    result = _subprocess(["--mutant", mutant.id, "--scenarios", ",".join(scenarios), "--jobs", str(jobs)], timeout)
    seconds = round(time.monotonic() - began, 1)
    if result is None:
        return Outcome(mutant, "timeout", len(scenarios), [], seconds)  # a hang is a detected change: killed
    if "crash" in result:
        return Outcome(mutant, "killed", len(scenarios), ["(the broker does not start)"], seconds)
    failed = sorted(k for k, v in result["verdicts"].items() if v != "passed")  # type: ignore[union-attr]
    return Outcome(mutant, "killed" if failed else "survived", len(scenarios), failed, seconds)


def report(
    outcomes: list[Outcome], total: int, args: argparse.Namespace, wall: float, *, when: str, rerun: str | None = None
) -> str:
    killed = [o for o in outcomes if o.status in ("killed", "timeout")]
    survivors = [o for o in outcomes if o.status in ("survived", "not_covered")]
    equivalent = [o for o in survivors if equivalence(o.mutant)]
    counted = len(outcomes) - len(equivalent)
    ratio = 100.0 * len(killed) / counted if counted else 100.0
    lines = [
        "# Mutation testing of the reference broker",
        "",
        "How much of the reference broker's billing (`billing.py`) and vendor-calling code (`korm.py`, `kss.py`) the",
        "certification suites pin down: each mutant is one small edit of that code (a comparison, an operator, a",
        "constant, a boolean), loaded in a fresh process; only the scenarios that execute the edited line run",
        "against it. Written by `make mutation` (`scripts/mutate.py`); the method is in that script's docstring.",
        "",
        f"- run: {when}, `python scripts/mutate.py {' '.join(args.argv)}`".rstrip() + f", {wall / 60:.1f} min wall",
        f"- mutants in the modules: {total}; run: {len(outcomes)}"
        + (f" (a seeded sample: `--limit {args.limit} --seed {args.seed}`)" if len(outcomes) < total else ""),
        f"- killed: {len(killed)}; survived: {len([o for o in survivors if o.status == 'survived'])}; "
        f"not covered by any scenario: {len([o for o in survivors if o.status == 'not_covered'])}; "
        f"argued equivalent: {len(equivalent)}",
        f"- **kill ratio: {ratio:.1f} %** of the non-equivalent mutants run ({len(killed)} / {counted}); target 90 %",
        *([f"- {rerun}"] if rerun else []),
        "",
        "## Survivors and their fate",
        "",
    ]
    if not survivors:
        lines.append("None: every mutant run was killed.")
    else:
        lines += ["| mutant | edit | line | scenarios on the line | fate |", "|---|---|---|---|---|"]
        for o in survivors:
            fate = (
                equivalence(o.mutant)
                or out_of_reach(o.mutant)
                or (
                    "not covered: no scenario executes this line"
                    if o.status == "not_covered"
                    else "open: no scenario tells it from the original yet"
                )
            )
            code = o.mutant.code.replace("|", "\\|")
            lines.append(f"| `{o.mutant.id}` | {o.mutant.what} | `{code}` | {o.scenarios} | {fate} |")
    lines += [
        "",
        "## Killed",
        "",
        "| mutant | edit | scenarios on the line | the scenario that failed first |",
        "|---|---|---|---|",
    ]
    for o in killed:
        lines.append(
            f"| `{o.mutant.id}` | {o.mutant.what} | {o.scenarios} | "
            f"{'time-out' if o.status == 'timeout' else o.killed_by[0]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES), help="reference broker modules to mutate")
    parser.add_argument("--limit", type=int, default=0, help="run a seeded sample of this many mutants (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="mutants evaluated at once")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios run at once inside a mutant's process")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant (past it: killed)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "mutation.md"))
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--only", default="", help="comma-separated mutant ids to run")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the document again from the last run's out/mutation/outcomes.json (after "
        "arguing survivors in EQUIVALENT), without running anything",
    )
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="run the last run's survivors again (after adding scenarios) and update its results",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mutant", default="", help=argparse.SUPPRESS)
    parser.add_argument("--scenarios", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    if args.worker:
        worker(args)
        return 0
    modules = tuple(m for m in args.modules.split(",") if m)
    every = mutants(modules)
    if args.list:
        for m in every:
            print(f"{m.id}\t{m.what}\t{m.code}")
        print(f"{len(every)} mutants", file=sys.stderr)
        return 0
    if args.report_only or args.rerun_survivors:
        saved = json.loads((OUT / "outcomes.json").read_text())
        if isinstance(saved, list):  # written before the run's own facts were kept: read them from the document
            import re

            found = re.search(
                r"- run: (.*?), `python scripts/mutate.py ?(.*?)`, ([\d.]+) min wall",
                Path(args.out).read_text(encoding="utf-8"),
            )
            assert found, "no run line in the document"
            saved = {
                "outcomes": saved,
                "when": found.group(1),
                "argv": found.group(2).split(),
                "wall": float(found.group(3)) * 60,
            }
        known = {m.id: m for m in every}
        outcomes = [
            Outcome(
                known.get(o["mutant"]["id"]) or Mutant(**o["mutant"]),
                o["status"],
                o["scenarios"],
                o["killed_by"],
                o["seconds"],
            )
            for o in saved["outcomes"]
        ]
        rerun_note = saved.get("rerun")
        if args.rerun_survivors:
            began = time.monotonic()
            hits = coverage_map()
            again = [
                o.mutant for o in outcomes if o.status in ("survived", "not_covered") and not equivalence(o.mutant)
            ]
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.workers, 1)) as pool:
                fresh = {o.mutant.id: o for o in pool.map(lambda m: evaluate(m, hits, args.timeout, args.jobs), again)}
            for o in fresh.values():
                print(
                    f"{o.status:11} {o.mutant.id:24} {o.mutant.what:18} {o.scenarios:3} scenario(s) "
                    f"{','.join(o.killed_by[:1])}",
                    flush=True,
                )
            outcomes = [fresh.get(o.mutant.id, o) for o in outcomes]
            rerun_note = (
                f"{len(again)} survivors run again on "
                f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} after the boundary "
                f"scenarios were added (`python scripts/mutate.py --rerun-survivors`, "
                f"{(time.monotonic() - began) / 60:.1f} min): "
                f"{sum(1 for o in fresh.values() if o.status in ('killed', 'timeout'))} killed"
            )
            saved.update(rerun=rerun_note, outcomes=[{**asdict(o), "mutant": asdict(o.mutant)} for o in outcomes])
            (OUT / "outcomes.json").write_text(json.dumps(saved, indent=1))
        args.argv = saved["argv"]
        previous = parser.parse_args(args.argv)
        args.limit, args.seed = previous.limit, previous.seed
        text = report(outcomes, len(every), args, saved["wall"], when=saved["when"], rerun=rerun_note)
        Path(args.out).write_text(text, encoding="utf-8")
        print(text.split("## Survivors")[0])
        return 0
    chosen = [m for m in every if m.id in args.only.split(",")] if args.only else list(every)
    if args.limit and len(chosen) > args.limit:
        chosen = sorted(random.Random(args.seed).sample(chosen, args.limit), key=lambda m: (m.module, m.line))
    began = time.monotonic()
    hits = coverage_map()
    outcomes: list[Outcome] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for outcome in pool.map(lambda m: evaluate(m, hits, args.timeout, args.jobs), chosen):
            outcomes.append(outcome)
            print(
                f"{outcome.status:11} {outcome.mutant.id:24} {outcome.mutant.what:18} "
                f"{outcome.scenarios:3} scenario(s) {outcome.seconds:6.1f}s {','.join(outcome.killed_by[:1])}",
                flush=True,
            )
    wall, when = time.monotonic() - began, dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = report(outcomes, len(every), args, wall, when=when)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    (OUT / "outcomes.json").write_text(
        json.dumps(
            {
                "argv": args.argv,
                "wall": wall,
                "when": when,
                "limit": args.limit,
                "seed": args.seed,
                "outcomes": [{**asdict(o), "mutant": asdict(o.mutant)} for o in outcomes],
            },
            indent=1,
        )
    )
    print(text.split("## Survivors")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
