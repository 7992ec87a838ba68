"""Reading a scenario file's YAML: the composed node tree walked with every problem recorded at its line."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from ksimkit.scenarios.errors import Issue

__all__ = ["YamlReader"]

PERIOD_RE = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")
MONEY_RE = re.compile(r"^-?\d+(\.\d+)?$")


class YamlReader:
    """Walks the composed YAML node tree, converting values and recording issues with line numbers."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.issues: list[Issue] = []

    def err(self, node: yaml.Node | int | None, message: str) -> None:
        line = node if isinstance(node, int) else (node.start_mark.line + 1 if node is not None else 0)
        self.issues.append(Issue(self.file, line, message))

    @staticmethod
    def line(node: yaml.Node | None) -> int:
        return node.start_mark.line + 1 if node is not None else 0

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node, what: str, allowed: set[str] | None = None, required: Iterable[str] = ()
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"{what} must be a mapping, not {self.kind(node)}")
            return None
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.err(key_node, f"{what}: merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.err(key_node, f"{what}: keys must be plain names")
                continue
            key = str(self.scalar(key_node))
            if key in result:
                self.err(key_node, f"{what}: key {key!r} appears twice")
                continue
            if allowed is not None and key not in allowed:
                self.err(key_node, f"{what}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
                continue
            result[key] = (key_node, value_node)
        for key in required:
            if key not in result:
                self.err(node, f"{what}: missing required key {key!r}")
        return result

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, f"{what} must be a list, not {self.kind(node)}")
            return None
        return list(node.value)

    def kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = self.scalar(node)
        if value is None:
            return "empty"
        return f"{type(value).__name__} {value!r}"

    # -- typed values --

    def plain(self, node: yaml.Node, what: str) -> tuple[bool, Any]:
        if not isinstance(node, yaml.ScalarNode):
            self.err(node, f"{what} must be a single value, not {self.kind(node)}")
            return False, None
        return True, self.scalar(node)

    def string(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
            self.err(node, f"{what} must be a string, not {self.kind(node)}")
            return None
        if isinstance(value, (dt.date, dt.datetime, float)):
            self.err(node, f"{what} must be a string, not {self.kind(node)} (quote it)")
            return None
        text = str(value)
        if not text.strip():
            self.err(node, f"{what} must not be empty")
            return None
        return text

    def code(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int)):
            self.err(
                node, f"{what} must be an error code (a string such as SUBSCRIPTION_DELETED, or a number such as 702)"
            )
            return None
        return str(value)

    def integer(self, node: yaml.Node, what: str, minimum: int | None = None) -> int | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(node, f"{what} must be a whole number, not {self.kind(node)}")
            return None
        if minimum is not None and value < minimum:
            self.err(node, f"{what} must be at least {minimum}, not {value}")
            return None
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if not isinstance(value, bool):
            self.err(node, f"{what} must be true or false, not {self.kind(node)}")
            return None
        return value

    def date(self, node: yaml.Node, what: str) -> dt.date | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, dt.datetime):
            self.err(node, f"{what} must be a date (YYYY-MM-DD), not a date-time")
            return None
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.err(node, f"{what} must be a date (YYYY-MM-DD), not {self.kind(node)}")
        return None

    def moment(self, node: yaml.Node, what: str) -> dt.date | dt.datetime | None:
        """A date (00:00 in the partner's zone) or a date-time (with Z or an offset; naive = partner's zone)."""
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, (dt.date, dt.datetime)):
            return value
        if isinstance(value, str):
            for parse in (dt.date.fromisoformat, lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))):
                try:
                    return parse(value)
                except ValueError:
                    continue
        self.err(
            node, f"{what} must be a date (2026-05-10) or a date-time (2026-05-10T09:00:00Z), not {self.kind(node)}"
        )
        return None

    def period(self, node: yaml.Node, what: str) -> str | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        if isinstance(value, str) and PERIOD_RE.match(value):
            return value
        hint = " (a month, YYYY-MM: write 2026-04, not a date)" if isinstance(value, dt.date) else " (YYYY-MM)"
        self.err(node, f"{what} must be a month{hint}, not {self.kind(node)}")
        return None

    def money(self, node: yaml.Node, what: str, places: int = 2, positive: bool = False) -> Decimal | None:
        ok, value = self.plain(node, what)
        if not ok:
            return None
        text: str | None = None
        if isinstance(value, bool) or value is None:
            text = None
        elif isinstance(value, (int, float, str)):
            text = repr(value) if isinstance(value, float) else str(value)
        if text is None or not MONEY_RE.match(text.strip()):
            self.err(node, f'{what} must be an amount such as "37.60", not {self.kind(node)}')
            return None
        try:
            amount = Decimal(text.strip())
        except InvalidOperation:  # pragma: no cover - the pattern already rules it out
            self.err(node, f"{what} is not a number: {text!r}")
            return None
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            self.err(node, f"{what} {text} has more than {places} decimals")
            return None
        if positive and amount <= 0:
            self.err(node, f"{what} must be more than 0, not {text}")
            return None
        return amount
