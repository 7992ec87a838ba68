"""The vendor-rule catalog: rule IDs and their one-line titles (data in ``rules.yaml`` beside this module)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

__all__ = ["Rule", "RULES_FILE", "all_rules", "is_known", "rule", "title"]

RULES_FILE = Path(__file__).with_name("rules.yaml")


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    group: str  # korm | kss | sim


@lru_cache(maxsize=1)
def all_rules() -> dict[str, Rule]:
    """Every rule, in catalog order, keyed by ID."""
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")) or {}
    rules: dict[str, Rule] = {}
    for group, items in data.items():
        for rule_id, rule_title in (items or {}).items():
            rules[str(rule_id)] = Rule(str(rule_id), str(rule_title), str(group))
    return rules


def is_known(rule_id: str) -> bool:
    return rule_id in all_rules()


def rule(rule_id: str) -> Rule:
    """The rule with this ID; ``KeyError`` if the catalog does not have it."""
    return all_rules()[rule_id]


def title(rule_id: str) -> str:
    """The rule's title, or ``""`` for an ID the catalog does not have."""
    found = all_rules().get(rule_id)
    return found.title if found else ""
