"""Parsing a scenario file's ``steps``: the broker steps of a :class:`StepKinds` registry, ``advance`` and ``fault``
(validated against the simulator's :class:`FaultKinds` registry)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from ksimkit.scenarios.model import Setup, Step, StepExpectation, to_instant
from ksimkit.scenarios.parse_expect import parse_step_expect
from ksimkit.scenarios.steps import StepKind, StepKinds
from ksimkit.scenarios.yaml_reader import YamlReader

if TYPE_CHECKING:
    from ksimkit.simulators.core.fault_kinds import FaultKinds

__all__ = ["FAULT_COMMON", "fault_fields", "parse_steps"]

# A fault step's fields besides each kind's own (docs/harness.md); ``count`` is the scenario's name for ``times``.
FAULT_COMMON = (
    "kind",
    "operation",
    "service",
    "when",
    "count",
    "times",
    "probability",
    "seed",
    "delay_ms",
    "delay_max_ms",
)
_FAULT_STRINGS = {"kind", "operation", "service", "when", "code", "message", "fault_code"}
_FAULT_NUMBERS = {"probability"}  # int or float; every other field is a whole number


def fault_fields(fault_kinds: FaultKinds) -> dict[str, tuple[type, ...]]:
    """Every field a fault step may give (the common ones and each kind's own), with the types it takes."""
    names = list(FAULT_COMMON) + [name for kind in fault_kinds.values() for name in kind.fields]
    defaults = {name: default for kind in fault_kinds.values() for name, default in kind.fields.items()}
    out: dict[str, tuple[type, ...]] = {}
    for name in dict.fromkeys(names):
        if name in _FAULT_STRINGS or isinstance(defaults.get(name), str):
            out[name] = (str,)
        elif name in _FAULT_NUMBERS:
            out[name] = (int, float)
        else:
            out[name] = (int,)
    return out


def parse_steps(
    r: YamlReader,
    node: yaml.Node,
    service: str | None,
    setup: Setup,
    defined: dict[str, int],
    steps_table: StepKinds,
    fault_kinds: FaultKinds,
) -> list[Step]:
    items = r.sequence(node, "steps")
    if items is None:
        return []
    if not items:
        r.err(node, "steps must hold at least one step")
    known = steps_table.all_kinds
    steps: list[Step] = []
    clock = setup.start
    pending_refs: list[tuple[str, yaml.Node]] = []
    for index, item in enumerate(items, start=1):
        m = r.mapping(item, f"step {index}")
        if m is None:
            continue
        kinds = [key for key in m if key not in ("expect", "note")]
        unknown = [key for key in kinds if key not in known]
        for key in unknown:
            r.err(m[key][0], f"step {index}: unknown step kind {key!r} (known: {', '.join(known)})")
        kinds = [key for key in kinds if key in known]
        if unknown:
            continue
        if len(kinds) != 1:
            r.err(
                item,
                f"step {index}: a step holds exactly one step kind (and optionally expect, note), "
                f"found {', '.join(kinds) or 'none'}",
            )
            continue
        kind = kinds[0]
        key_node, value_node = m[kind]
        what = f"step {index} ({kind})"
        note = r.string(m["note"][1], f"{what}: note") if "note" in m else None
        spec = steps_table.get(kind)
        if spec is not None and service in ("korm", "kss") and service not in spec.services:
            owners = "/".join(s.upper() for s in sorted(spec.services))
            r.err(key_node, f"{what}: {kind} is a {owners} step; this scenario's service is {service}")

        args: dict[str, Any] = {}
        if kind == "advance":
            ok = _parse_advance_step(r, value_node, what, clock, setup.timezone, args)
        elif kind == "fault":
            ok = _parse_fault(r, value_node, what, fault_kinds, args)
        else:
            assert spec is not None
            ok = _parse_broker_step(r, value_node, what, spec, setup.timezone, defined, args)

        expect = StepExpectation(line=r.line(item))
        if "expect" in m:
            parsed = parse_step_expect(r, m["expect"][1], what, pending_refs)
            if parsed is None:
                ok = False
            else:
                expect = parsed
        if spec is None and "expect" in m:
            r.err(m["expect"][0], f"{what}: an {kind} step has no outcome to expect")
            ok = False
        if ok:
            steps.append(
                Step(
                    index=index, kind=kind, args=args, expect=expect, at=clock, line=r.line(item), note=note, spec=spec
                )
            )
        if kind == "advance" and "to" in args and args["to"] > clock:
            clock = args["to"]
    for ref, ref_node in pending_refs:
        if ref not in defined:
            r.err(ref_node, f"undefined ref {ref!r}")
    return steps


def _parse_advance_step(
    r: YamlReader, node: yaml.Node, what: str, clock: dt.datetime, timezone: str, args: dict[str, Any]
) -> bool:
    target = _parse_advance(r, node, what, clock, timezone)
    if target is None:
        return False
    ok = True
    if target <= clock:
        r.err(node, f"{what}: the clock only moves forward: {target.isoformat()} is not after {clock.isoformat()}")
        ok = False
    args["to"] = target
    return ok


def _parse_fault(r: YamlReader, node: yaml.Node, what: str, fault_kinds: FaultKinds, args: dict[str, Any]) -> bool:
    types = fault_fields(fault_kinds)
    fm = r.mapping(node, what, set(types), ("kind",))
    if fm is None or "kind" not in fm:
        return False
    ok = True
    for key, (_, v_node) in fm.items():
        ok_value, value = r.plain(v_node, f"{what}: {key}")
        wanted = types[key]
        if not ok_value or isinstance(value, bool) or not isinstance(value, wanted):
            if ok_value:
                kind_name = "a string" if wanted == (str,) else "a number"
                r.err(v_node, f"{what}: {key} must be {kind_name}, not {r.kind(v_node)}")
            ok = False
            continue
        args[key] = value
    if isinstance(args.get("kind"), str) and args["kind"] not in fault_kinds:
        r.err(fm["kind"][1], f"{what}: kind must be one of {', '.join(fault_kinds)}, not {args['kind']!r}")
        ok = False
    if isinstance(args.get("when"), str) and args["when"] not in ("before", "after"):
        r.err(
            fm["when"][1],
            f"{what}: when must be before (nothing changes) or after (the answer is "
            f"lost after the change), not {args['when']!r}",
        )
        ok = False
    if "count" in fm and "times" in fm:
        r.err(fm["times"][0], f"{what}: give count or times, not both")
        ok = False
    return ok


def _parse_broker_step(
    r: YamlReader,
    node: yaml.Node,
    what: str,
    spec: StepKind,
    timezone: str,
    defined: dict[str, int],
    args: dict[str, Any],
) -> bool:
    declared = spec.fields
    fields: Mapping[str, tuple[yaml.Node, yaml.Node]] | None
    if (
        isinstance(node, yaml.ScalarNode)
        and r.scalar(node) is None
        and not any(field.required for field in declared.values())
    ):
        fields = {}
    else:
        fields = r.mapping(node, what, set(declared), [k for k, field in declared.items() if field.required])
    if fields is None:
        return False
    ok = True
    for name, field in declared.items():
        if name not in fields:
            if field.required:
                ok = False
            else:
                args[name] = None
            continue
        field_node = fields[name][1]
        value = _field(r, field_node, f"{what}: {name}", field.type, timezone)
        if value is None:
            ok = False
            continue
        if field.type == "newref":
            if value in defined:
                r.err(
                    field_node,
                    f"{what}: ref {value!r} is already defined at line {defined[value]}; "
                    "each order/activate names a new ref",
                )
                ok = False
            else:
                defined[value] = r.line(field_node)
        elif field.type == "ref" and value not in defined:
            r.err(
                field_node,
                f"{what}: undefined ref {value!r} (a ref is defined by an earlier order, activate or setup.legacy)",
            )
            ok = False
        args[name] = value
    return ok


def _parse_advance(r: YamlReader, node: yaml.Node, what: str, clock: dt.datetime, timezone: str) -> dt.datetime | None:
    if isinstance(node, yaml.MappingNode):
        m = r.mapping(node, what, {"to", "days", "hours"})
        if m is None:
            return None
        if len(m) != 1:
            r.err(node, f"{what} takes exactly one of to, days, hours")
            return None
        ((key, (_, value_node)),) = m.items()
        if key == "to":
            moment = r.moment(value_node, f"{what}: to")
            return to_instant(moment, timezone) if moment is not None else None
        amount = r.integer(value_node, f"{what}: {key}", minimum=1)
        if amount is None:
            return None
        return clock + (dt.timedelta(days=amount) if key == "days" else dt.timedelta(hours=amount))
    moment = r.moment(node, what)
    return to_instant(moment, timezone) if moment is not None else None


def _field(r: YamlReader, node: yaml.Node, what: str, type_: str, timezone: str) -> Any:
    if type_ in ("ref", "newref", "customer", "str"):
        return r.string(node, what)
    if type_ == "posint":
        return r.integer(node, what, minimum=1)
    if type_ == "int0":
        return r.integer(node, what, minimum=0)
    if type_ == "month":
        return r.period(node, what)
    if type_ == "instant":
        moment = r.moment(node, what)
        return to_instant(moment, timezone) if moment is not None else None
    raise AssertionError(type_)  # pragma: no cover - StepKind checks the types
