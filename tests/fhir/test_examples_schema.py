"""The bundled examples (``examples/bundles``, ``examples/invalid/two-patients.json``) are valid
FHIR R4: every resource, contained resources included, validates against the official R4 JSON
schema (the corpus check of ``test_corpus_schema``), and every bundle has hand-worked expected
results.

Needs the Node harness installed: ``npm ci --prefix tests/fhir_server``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fhir.test_corpus_schema import REPO, _resources, _schema_errors

EXAMPLES = REPO / "examples"
BUNDLES = sorted((EXAMPLES / "bundles").glob("*.json"))


def test_the_real_shaped_examples_are_there() -> None:
    names = {p.name for p in BUNDLES}
    assert {"synthea-style.json", "us-ehr-ivig-course.json"} <= names


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_each_example_is_a_bundle_of_valid_r4_resources(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc.get("resourceType") == "Bundle"
    resources = list(_resources(doc))
    assert len(resources) > 1
    errors = [e for r in resources for e in _schema_errors(r)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_each_example_has_expected_results(path: Path) -> None:
    expected = json.loads((EXAMPLES / "expected" / path.name).read_text(encoding="utf-8"))
    assert expected["patient"].startswith("Patient/")
    assert expected["_worked"], "the arithmetic is written down"
