"""crds/ is generated from the pydantic models: no drift, and the output is a valid structural schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ironlb.api import ALL_KINDS, IP_ADDRESS_POOL
from ironlb.operator.crdgen import crd_for, render_crds

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_crds_match_the_models() -> None:
    rendered = render_crds()
    on_disk = {path.name: path.read_text() for path in (REPO_ROOT / "crds").glob("*.yaml")}
    assert set(on_disk) == set(rendered), "run `ironlb generate` to add or remove CRD files"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} drifted from the models: run `ironlb generate`"


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}[{key}]")


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda kind: kind.kind)
def test_schema_is_structural_and_every_rule_names_the_value(kind: Any) -> None:
    schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path
        assert "type" in node, f"{path} has no type"
        for rule in node.get("x-kubernetes-validations", []):
            # a plain `message` cannot show the offending value; every rule must explain itself
            assert "messageExpression" in rule, f"{path}: {rule['rule'][:60]}"


def test_pool_columns_are_what_kubectl_get_shows() -> None:
    names = [column.name for column in IP_ADDRESS_POOL.columns if column.priority == 0]
    assert names == ["Addresses", "Auto Assign", "Assigned", "Available", "Age"]


def test_examples_parse_with_the_same_models() -> None:
    by_kind = {kind.kind: kind for kind in ALL_KINDS}
    seen = 0
    for path in sorted((REPO_ROOT / "docs" / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] in by_kind:
                by_kind[document["kind"]].spec.model_validate(document["spec"])
                seen += 1
    assert seen >= 8
