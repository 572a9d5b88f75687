"""Every field of every CRD either changes behaviour or is refused, and a test proves which.

tests/data/field-evidence.yaml names, per field, the tests that set it and assert an outcome depending on
its value, and the cases of tests/data/invalid-objects.yaml in which the API server refuses it (the corpus
test applies each one). This walk reads the fields from the generated CRDs, so a field added without
evidence, or evidence pointing at nothing, fails here. Label selectors and tolerations are one field each
(their shape is Kubernetes', tested once as a whole).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ironlb.api import ALL_KINDS
from ironlb.operator.crdgen import crd_for

REPO_ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = REPO_ROOT / "tests" / "data" / "field-evidence.yaml"
CORPUS = REPO_ROOT / "tests" / "data" / "invalid-objects.yaml"
WHOLE = re.compile(r"(Selectors|^tolerations)$")  # a Kubernetes shape, evidenced as one field


def _leaves(schema: dict[str, Any], path: str) -> Iterator[str]:
    name = path.rsplit(".", 1)[-1].removesuffix("[]")
    if WHOLE.search(name):
        yield path.removesuffix("[]")
        return
    if schema.get("properties"):
        for child, sub in schema["properties"].items():
            yield from _leaves(sub, f"{path}.{child}")
    elif schema.get("type") == "array" and (schema.get("items") or {}).get("properties"):
        yield from _leaves(schema["items"], f"{path}[]")
    else:
        yield path


def crd_fields() -> set[str]:
    fields = set()
    for kind in ALL_KINDS:
        spec = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        if spec.get("properties"):  # kinds without a spec (ServiceL2Status) have nothing to configure
            fields |= {f"{kind.kind} {path}" for path in _leaves(spec, "spec")}
    return fields


@cache
def _functions(path: str) -> dict[str, str]:
    """Module-level test functions of a test file: name -> source from ``def`` on (no decorators)."""
    text = (REPO_ROOT / path).read_text()
    lines = text.splitlines()
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.parse(text).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def _corpus() -> dict[str, tuple[str, str]]:
    """Case name -> (kind, first ``# expect:`` field, indexes removed)."""
    cases = {}
    for chunk in CORPUS.read_text().split("\n---\n"):
        document = yaml.safe_load(chunk)
        expected = re.findall(r"^# expect: (.+)$", chunk, flags=re.MULTILINE)[0]
        cases[document["metadata"]["name"]] = (document["kind"], re.sub(r"\[\d+\]", "", expected))
    return cases


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower().replace("a_s_n", "asn")


def test_every_crd_field_has_evidence_and_no_evidence_names_a_field_that_is_gone() -> None:
    evidence = yaml.safe_load(EVIDENCE.read_text())
    fields = crd_fields()
    assert len(fields) >= 50
    assert sorted(fields - set(evidence)) == [], "fields without evidence: add a test, or refuse the field"
    assert sorted(set(evidence) - fields) == [], "evidence for fields the CRDs no longer have"
    for field, entry in evidence.items():
        assert entry.get("tests") or entry.get("refused"), f"{field}: neither a test nor a refusal"


def test_each_test_named_as_evidence_exists_and_sets_the_field() -> None:
    evidence = yaml.safe_load(EVIDENCE.read_text())
    for field, entry in evidence.items():
        last = field.rsplit(".", 1)[-1].removesuffix("[]")
        names = {last, _snake(last)}
        for reference in entry.get("tests") or []:
            path, _, function = reference.partition("::")
            source = _functions(path).get(function)
            assert source is not None, f"{field}: {reference} is not a test function"
            assert any(name in source for name in names), f"{field}: {reference} never names {sorted(names)}"


def test_each_refusal_named_as_evidence_is_a_corpus_case_on_that_field() -> None:
    cases = _corpus()
    for field, entry in yaml.safe_load(EVIDENCE.read_text()).items():
        kind, path = field.split(" ", 1)
        for name in entry.get("refused") or []:
            assert name in cases, f"{field}: no corpus case {name}"
            case_kind, expected = cases[name]
            assert case_kind == kind and expected.startswith(path.replace("[]", "")), (
                field,
                name,
                cases[name],
            )
