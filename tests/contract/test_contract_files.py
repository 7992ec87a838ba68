"""Static checks of the OpenAPI 3.1 contracts in contracts/ (KORM SS, the KSS partner portal, the /_sim control plane).

They check that the files are valid OpenAPI 3.1, that every operation is named and (KORM, KSS) names the
rules it enforces, that every $ref resolves, that the examples are valid by their own schemas, that
the copies of the KORM Subscription schema are identical, and that schemathesis 4 accepts every file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
KORM = CONTRACTS / "korm-ss.openapi.yaml"
ADMIN = CONTRACTS / "admin.openapi.yaml"
KSS = CONTRACTS / "kss-rest.openapi.yaml"
FILES = {"korm": KORM, "admin": ADMIN, "kss": KSS}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
RULE_ID = re.compile(r"^(KORM|KSS|SIM)-[A-Z]+-[0-9]+$")
# The rule catalog: every x-rules ID must be one of its IDs.
RULES_DOC = ROOT / "docs" / "rules.md"
# Schemas copied from the KORM contract into the admin contract; the copies must stay identical.
SHARED_SCHEMAS = ("Subscription", "HistoryEntry", "SubscriptionBillingModel")


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module", params=sorted(FILES))
def contract(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _load(FILES[request.param])


@pytest.fixture(scope="module")
def korm() -> dict[str, Any]:
    return _load(KORM)


@pytest.fixture(scope="module")
def admin() -> dict[str, Any]:
    return _load(ADMIN)


@pytest.fixture(scope="module")
def kss() -> dict[str, Any]:
    return _load(KSS)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _walk(node: Any, pointer: str = "#") -> Iterator[tuple[str, Any]]:
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{index}")


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are used, got {ref!r}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve(doc, node["$ref"])
    return node


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _media_examples(doc: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(JSON pointer of the media type's schema, example name, example value) for every media example."""
    for path, method, op in _operations(doc):
        base = f"#/paths/{_escape(path)}/{method}"
        body = _deref(doc, op.get("requestBody"))
        if body:
            for media, content in body.get("content", {}).items():
                for name, example in content.get("examples", {}).items():
                    yield f"{base}/requestBody/content/{_escape(media)}/schema", name, _deref(doc, example)["value"]
        for status, response in op.get("responses", {}).items():
            pointer = f"{base}/responses/{status}"
            if "$ref" in response:
                pointer = response["$ref"]
            response = _deref(doc, response)
            for media, content in response.get("content", {}).items():
                for name, example in content.get("examples", {}).items():
                    yield f"{pointer}/content/{_escape(media)}/schema", name, _deref(doc, example)["value"]


# --- Structure -------------------------------------------------------------------------------


def test_files_exist_and_are_openapi_31(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    assert doc["openapi"] == "3.1.0", name
    expected_server = {"korm": "/korm/v1", "admin": "/_sim", "kss": "/kss/v1"}[name]
    assert doc["servers"] == [{"url": expected_server}]


def test_valid_openapi_31(contract: tuple[str, dict[str, Any]]) -> None:
    import openapi_spec_validator as validator

    name, doc = contract
    validator.validate(copy.deepcopy(doc), cls=validator.OpenAPIV31SpecValidator)


def test_every_ref_resolves(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    refs = [(pointer, node["$ref"]) for pointer, node in _walk(doc) if isinstance(node, dict) and "$ref" in node]
    assert refs, "expected $refs"
    broken = []
    for pointer, ref in refs:
        try:
            _resolve(doc, ref)
        except (AssertionError, KeyError, IndexError, ValueError) as exc:
            broken.append(f"{pointer}: {ref} ({exc!r})")
    assert not broken, "\n".join(broken)


def test_every_operation_has_a_unique_operation_id(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    ids = [op.get("operationId") for _, _, op in _operations(doc)]
    assert all(ids), f"{name}: an operation has no operationId"
    assert len(ids) == len(set(ids)), f"{name}: duplicate operationIds"


def _known_rule_ids() -> set[str]:
    return set(re.findall(r"^### ((?:KORM|KSS|SIM)-[A-Z]+-[0-9]+)\s*$", RULES_DOC.read_text("utf-8"), re.M))


def _check_operation_rules(doc: dict[str, Any]) -> None:
    known = _known_rule_ids()
    description = doc["info"]["description"]
    for _path, _method, op in _operations(doc):
        rules = op.get("x-rules")
        assert isinstance(rules, list), f"{op['operationId']}: x-rules must be a list"
        for rule in rules:
            assert RULE_ID.match(rule), f"{op['operationId']}: bad rule id {rule!r}"
            assert rule in known, f"{op['operationId']}: {rule} is not in docs/rules.md"
        if op.get("security") != []:
            assert rules, f"{op['operationId']}: an authenticated operation should name its rules"
        assert op["operationId"] in description, f"{op['operationId']} missing from the rules table in info.description"


def test_korm_operations_list_their_rules(korm: dict[str, Any]) -> None:
    _check_operation_rules(korm)


def test_kss_operations_list_their_rules(kss: dict[str, Any]) -> None:
    _check_operation_rules(kss)


def test_korm_description_marks_the_contract_as_inference(korm: dict[str, Any]) -> None:
    text = korm["info"]["description"].lower()
    assert "no public wire contract" in text
    assert "inference" in text


def test_kss_description_says_it_is_ksims_own_api_modelled_on_seed_002(kss: dict[str, Any]) -> None:
    text = " ".join(kss["info"]["description"].lower().split())
    assert "no public rest api" in text and "ksim's own partner-portal api" in text
    assert "seed 002" in text
    for phrase in ("monthly collective bill", "monthly report", "recorded by name and timestamp"):
        assert phrase in text, phrase


def test_security_global_bearer_with_public_contract(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    schemes = doc["components"]["securitySchemes"]
    assert len(schemes) == 1
    ((scheme_name, scheme),) = schemes.items()
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{scheme_name: []}]
    public = {op["operationId"] for _, _, op in _operations(doc) if op.get("security") == []}
    assert public == {"korm": {"getContract"}, "admin": {"health", "getAdminContract"}, "kss": {"getContract"}}[name]


def test_error_responses_are_problem_json(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    codes = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    for _, _, op in _operations(doc):
        if op.get("security") != []:
            assert "401" in op["responses"], f"{op['operationId']}: missing 401"
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            response = _deref(doc, response)
            assert list(response["content"]) == ["application/problem+json"], f"{op['operationId']} {status}"
            media = response["content"]["application/problem+json"]
            assert _deref(doc, media["schema"]) is doc["components"]["schemas"]["Problem"]
            assert media.get("examples"), f"{op['operationId']} {status}: no example"
            for example in media["examples"].values():
                value = _deref(doc, example)["value"]
                assert value["status"] == int(status), f"{op['operationId']} {status}: example {value['code']}"
                assert value["code"] in codes
                assert value["type"] == "https://ksim.dev/problems/" + value["code"].lower().replace("_", "-")


def test_every_problem_code_has_an_example(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    codes = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    shown = {
        example["value"]["code"]
        for example in doc["components"]["examples"].values()
        if isinstance(example.get("value"), dict) and "code" in example["value"] and "status" in example["value"]
    }
    assert codes == shown


def test_every_operation_has_an_example(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    for _path, _method, op in _operations(doc):
        found = False
        for response in op["responses"].values():
            for content in _deref(doc, response).get("content", {}).values():
                found = found or bool(content.get("examples"))
        assert found, f"{op['operationId']}: no response example"
        body = _deref(doc, op.get("requestBody"))
        if body:
            for content in body["content"].values():
                assert content.get("examples"), f"{op['operationId']}: no request example"


def test_korm_posts_list_the_common_statuses_and_headers(korm: dict[str, Any]) -> None:
    for _path, method, op in _operations(korm):
        if method != "post":
            continue
        name = op["operationId"]
        for status in ("400", "401", "409", "415", "422"):
            assert status in op["responses"], f"{name}: missing {status}"
        conflict = _deref(korm, op["responses"]["409"])["content"]["application/problem+json"]["examples"]
        assert "IDEMPOTENCY_KEY_REUSED" in conflict, name
        params = {_deref(korm, p)["name"] for p in op.get("parameters", [])}
        assert {"Idempotency-Key", "X-Ksim-Actor"} <= params, name
        body = _deref(korm, op["requestBody"])
        schema = _deref(korm, body["content"]["application/json"]["schema"])
        assert schema.get("additionalProperties") is False, name
        for status, response in op["responses"].items():
            if status.startswith("2"):
                headers = _deref(korm, response).get("headers", {})
                assert "Idempotent-Replayed" in headers, f"{name} {status}"
                assert _deref(korm, headers["Idempotent-Replayed"]).get("required") is False
            if status == "201":
                assert _deref(korm, response["headers"]["Location"])["required"] is True


def test_request_bodies_forbid_unknown_fields(contract: tuple[str, dict[str, Any]]) -> None:
    name, doc = contract
    for _path, _method, op in _operations(doc):
        body = _deref(doc, op.get("requestBody"))
        if not body:
            continue
        schema = _deref(doc, body["content"]["application/json"]["schema"])
        branches = [_deref(doc, s) for s in schema.get("oneOf", [schema])]
        for branch in branches:
            assert branch.get("additionalProperties") is False, f"{op['operationId']}"


def test_shared_schemas_are_identical(korm: dict[str, Any], admin: dict[str, Any]) -> None:
    for schema in SHARED_SCHEMAS:
        assert korm["components"]["schemas"][schema] == admin["components"]["schemas"][schema], schema


def test_examples_match_their_schemas(contract: tuple[str, dict[str, Any]]) -> None:
    import jsonschema
    import referencing

    name, doc = contract
    uri = f"urn:ksim:contract:{name}"
    resource = referencing.Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT202012)
    registry = referencing.Registry().with_resource(uri, resource)
    checked = 0
    errors = []
    for pointer, example_name, value in _media_examples(doc):
        schema = {"$ref": uri + pointer}
        validator = jsonschema.Draft202012Validator(
            schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        for error in validator.iter_errors(value):
            errors.append(f"{pointer} example {example_name}: {error.message}")
        checked += 1
    assert checked > 10
    assert not errors, "\n".join(errors)


# --- schemathesis ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_schemathesis_accepts_the_contract(name: str) -> None:
    import schemathesis

    schema = schemathesis.openapi.from_path(str(FILES[name]))
    operations = [result.ok() for result in schema.get_all_operations()]
    doc = _load(FILES[name])
    assert len(operations) == len(list(_operations(doc)))
    for operation in operations:
        # Building the strategy makes schemathesis resolve every schema of the operation.
        operation.as_strategy()
