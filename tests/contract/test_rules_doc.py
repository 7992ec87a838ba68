"""docs/rules.md, the vendor-rule catalog, agrees with the repository it describes.

Every rule ID of scenarios/rules.yaml has a section; every test and scenario a section cites exists and names
that rule; every scenario's rules, and every test whose name carries a rule ID, are cited under that rule, so
the catalog cannot drift when a test or a scenario is added. And the repository stands alone: no file refers to
the specification texts it was once written from, outside the repository.

Files only, by path from the repository root: nothing of the project is imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "scenarios" / "rules.yaml"
DOC = ROOT / "docs" / "rules.md"
SUITES = ROOT / "scenarios" / "suites"
TESTS = ROOT / "tests"

HEADING = re.compile(r"^### ((?:KORM|KSS|SIM)-[A-Z]+-[0-9]+)\s*$", re.M)
ANY_HEADING = re.compile(r"^#{1,3} ", re.M)
TEST_CITATION = re.compile(r"(tests/[\w./-]+\.py)(?:::([\w:]+))?")
SCENARIO_CITATION = re.compile(r"scenarios/suites/[\w./-]+\.ya?ml")
TEST_DEF = re.compile(r"^\s*(?:async\s+)?def (test\w*)\s*\(", re.M)

# What no file of the repository may point at: the specification texts that live outside it. Written in
# pieces so that this file does not match itself.
_SPEC_DIR = "sha" + "red"
FORBIDDEN_REFERENCES = (
    "../" + _SPEC_DIR,
    _SPEC_DIR + "/RULES.md",
    _SPEC_DIR + "/WIRE.md",
    _SPEC_DIR + "/DESIGN.md",
)
SCANNED_SUFFIXES = {".py", ".md", ".yaml", ".toml", ".wsdl", ".xsd"}
SKIPPED_DIRS = {".git", ".venv", "build", "dist", "out"}
# The catalog itself names none of the outside texts, not even by file name.
OUTSIDE_NAMES = re.compile(r"(?<![\w-])(?:RULES|WIRE|DESIGN)\.md|" + _SPEC_DIR + r"/|\bseeds?\b")


@cache
def rule_ids() -> tuple[str, ...]:
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    return tuple(str(rule) for group in data.values() for rule in group)


@cache
def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def sections() -> dict[str, str]:
    """Rule ID -> the text of its section (up to the next heading of level 1 to 3)."""
    text = doc_text()
    found: dict[str, str] = {}
    for match in HEADING.finditer(text):
        following = ANY_HEADING.search(text, match.end())
        found[match.group(1)] = text[match.end() : following.start() if following else len(text)]
    return found


def rule_pattern(rule: str) -> re.Pattern[str]:
    """The rule's ID as a test or a scenario names it: with dashes, or with underscores in a test name."""
    forms = "|".join(re.escape(form) for form in (rule, rule.replace("-", "_")))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{forms})(?![0-9])")


@cache
def scenario_rules() -> dict[str, tuple[str, ...]]:
    """Scenario file (relative path) -> the rule IDs of its ``rules:`` list."""
    found = {}
    for path in sorted(SUITES.rglob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict) and "rules" in data:
            found[path.relative_to(ROOT).as_posix()] = tuple(str(rule) for rule in data.get("rules") or [])
    return found


def function_source(source: str, function: str) -> str | None:
    """The text of the (module-level or class-level) function ``function``, decorators included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            start = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            return "\n".join(source.splitlines()[start - 1 : node.end_lineno])
    return None


def cited_tests(text: str) -> set[tuple[str, str | None]]:
    return {(match.group(1), match.group(2)) for match in TEST_CITATION.finditer(text)}


def test_every_rule_of_the_catalog_has_a_section() -> None:
    missing = [rule for rule in rule_ids() if rule not in sections()]
    assert not missing, f"docs/rules.md has no '### <ID>' section for {missing}"


def test_every_section_is_a_rule_of_the_catalog_and_appears_once() -> None:
    headings = HEADING.findall(doc_text())
    unknown = sorted(set(headings) - set(rule_ids()))
    twice = sorted({rule for rule in headings if headings.count(rule) > 1})
    assert not unknown, f"docs/rules.md has sections for rules not in scenarios/rules.yaml: {unknown}"
    assert not twice, f"docs/rules.md has more than one section for {twice}"


def test_the_table_of_contents_lists_every_rule_with_its_title() -> None:
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    titles = {str(rule): str(title) for group in data.values() for rule, title in group.items()}
    rows = dict(re.findall(r"^\|\s*((?:KORM|KSS|SIM)-[A-Z]+-[0-9]+)\s*\|(.*)\|\s*$", doc_text(), re.M))
    missing = [rule for rule in titles if rule not in rows]
    assert not missing, f"the contents table of docs/rules.md lacks {missing}"
    wrong = [rule for rule, title in titles.items() if title not in rows[rule]]
    assert not wrong, f"the contents table of docs/rules.md does not carry the title of rules.yaml for {wrong}"


def test_every_cited_test_exists() -> None:
    problems = []
    for path, name in sorted(cited_tests(doc_text()), key=str):
        file = ROOT / path
        if not file.is_file():
            problems.append(f"{path}: no such file")
            continue
        if name is not None:
            function = name.split("::")[-1]
            if function not in TEST_DEF.findall(file.read_text(encoding="utf-8")):
                problems.append(f"{path}: no 'def {function}'")
    assert not problems, "docs/rules.md cites tests that do not exist:\n" + "\n".join(problems)


def test_every_test_cited_under_a_rule_names_that_rule() -> None:
    problems = []
    for rule, text in sections().items():
        pattern = rule_pattern(rule)
        for path, name in cited_tests(text):
            file = ROOT / path
            if not file.is_file():
                continue  # reported by test_every_cited_test_exists
            source = file.read_text(encoding="utf-8")
            if name is None:
                if not pattern.search(source):
                    problems.append(f"{rule}: {path} does not name it")
                continue
            function = name.split("::")[-1]
            body = function_source(source, function)
            if body is None:
                continue  # reported by test_every_cited_test_exists
            if not pattern.search(body):
                problems.append(f"{rule}: {path}::{function} does not name it")
    assert not problems, "docs/rules.md cites tests under rules they do not name:\n" + "\n".join(problems)


def test_every_cited_scenario_exists_and_lists_the_rule_it_is_cited_under() -> None:
    problems = []
    known = scenario_rules()
    for rule, text in sections().items():
        for path in SCENARIO_CITATION.findall(text):
            if not (ROOT / path).is_file():
                problems.append(f"{rule}: {path}: no such file")
            elif rule not in known.get(path, ()):
                problems.append(f"{rule}: {path} does not name it in its rules: list")
    for path in SCENARIO_CITATION.findall(doc_text()):
        if not (ROOT / path).is_file():
            problems.append(f"{path}: no such file")
    assert not problems, "docs/rules.md cites scenarios wrongly:\n" + "\n".join(sorted(set(problems)))


def test_every_scenario_is_cited_under_each_rule_it_lists() -> None:
    problems = []
    for path, rules in scenario_rules().items():
        for rule in rules:
            if rule not in sections():
                problems.append(f"{path} names {rule}, which has no section")
            elif path not in SCENARIO_CITATION.findall(sections()[rule]):
                problems.append(f"{path} is not cited under {rule}")
    assert not problems, "docs/rules.md lags behind the scenario suites:\n" + "\n".join(problems)


def test_every_test_named_after_a_rule_is_cited_under_that_rule() -> None:
    patterns = {rule: rule_pattern(rule) for rule in rule_ids()}
    cited = {
        rule: {(path, (name or "").split("::")[-1]) for path, name in cited_tests(text)}
        for rule, text in sections().items()
    }
    problems = []
    for file in sorted(TESTS.rglob("test_*.py")):
        path = file.relative_to(ROOT).as_posix()
        for function in TEST_DEF.findall(file.read_text(encoding="utf-8")):
            for rule, pattern in patterns.items():
                if pattern.search(function) and (path, function) not in cited.get(rule, set()):
                    problems.append(f"{path}::{function} is not cited under {rule}")
    assert not problems, "docs/rules.md lags behind the tests:\n" + "\n".join(problems)


def test_the_catalog_stands_alone_without_the_outside_specification() -> None:
    found = sorted({match.group(0) for match in OUTSIDE_NAMES.finditer(doc_text())})
    assert not found, f"docs/rules.md refers to texts outside the repository: {found}"


def _scanned_files() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS for part in relative.parts) or path.suffix not in SCANNED_SUFFIXES:
            continue
        if path.is_file():
            files.append(path)
    return files


def test_no_file_in_the_repository_refers_to_the_specification_outside_it() -> None:
    hits = []
    for path in _scanned_files():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            for reference in FORBIDDEN_REFERENCES:
                if reference in line:
                    hits.append(f"{path.relative_to(ROOT).as_posix()}:{number}: {reference}")
    assert not hits, (
        "the repository must stand alone; these files refer to texts outside it "
        "(point them at docs/rules.md, docs/kss-wire.md or docs/korm.md instead):\n" + "\n".join(hits)
    )
