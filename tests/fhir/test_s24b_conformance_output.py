"""What fhirtis writes, checked as a strict FHIR server would (HAPI with its validating
interceptor, Firely), beyond what tests/fhir/test_conformance.py already checks.

* A ``Coding`` of a CodeSystem in ``profiles/`` that carries a ``display`` must carry the
  display the CodeSystem defines: the R4 validator checks displays against the code system it
  has loaded ("Display should be ..."; an error where a server is set to treat displays
  strictly).
* Withdrawn output (``plan.withdrawal``: the stored resource marked ``entered-in-error``, put
  back with its ``meta.profile``) must still conform to its profile, or a validating server
  refuses the withdrawal (422) and the stale Flag stays active.
* ``profiles/OperationDefinition-myositis-evaluate.json`` declares exactly the parameters the
  service takes (``fhirtis/api/evaluate.py``), each with a type whose value the service reads:
  a client (or a server validating ``Parameters`` against the definition) builds its call from
  it.

The R4 rules: terminology-service.html ($validate-code: "display ... if the display is not
valid, an error"), operationdefinition.html (OperationDefinition.parameter), and each
resource's status ValueSet (Flag, Observation, DetectedIssue: ``entered-in-error``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, get_origin

import pytest

from fhirtis.api.evaluate import parameters_from_resource, parse_parameters
from fhirtis.clinical.policy import Policy
from fhirtis.fhir.plan import RETIRABLE, RETIRED, withdrawal
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_file
from fhirtis.settings import Settings
from tests.fhir.test_conformance import _errors, _evaluate, _run_validator

Json = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
EXAMPLES = sorted((REPO / "examples" / "bundles").glob("*.json"))


@cache
def _conformance(kind: str) -> dict[str, Json]:
    out = {}
    for path in sorted(PROFILES.glob(f"{kind}-*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        out[resource["url"]] = resource
    return out


def _displays(concepts: list[Json]) -> Iterator[tuple[str, str | None]]:
    for c in concepts:
        yield c["code"], c.get("display")
        yield from _displays(c.get("concept", []))


def _codings(value: Any) -> Iterator[Json]:
    if isinstance(value, dict):
        if isinstance(value.get("system"), str) and isinstance(value.get("code"), str):
            yield value
        for v in value.values():
            yield from _codings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _codings(v)


@pytest.fixture(scope="module")
def example_results() -> list[PatientResult]:
    assert EXAMPLES, "examples/bundles/ is empty"
    return [evaluate_bundle_file(path, Settings()) for path in EXAMPLES]


def test_every_display_fhirtis_writes_is_the_code_systems(
    example_results: list[PatientResult],
) -> None:
    displays = {
        url: dict(_displays(cs.get("concept", [])))
        for url, cs in _conformance("CodeSystem").items()
    }
    written: list[Json] = []
    for result in example_results:
        plan = result.plan()
        assert plan.bundle is not None
        written += [e["resource"] for e in plan.bundle["entry"]]
    checked = 0
    wrong = []
    for coding in _codings(written):
        defined = displays.get(coding["system"])
        if defined is None or "display" not in coding:
            continue
        checked += 1
        if coding["display"] != defined.get(coding["code"]):
            wrong.append(
                f"{coding['system']}#{coding['code']}: wrote {coding['display']!r}, "
                f"defined {defined.get(coding['code'])!r}"
            )
    assert checked, "no display was checked"
    assert not wrong, "\n".join(sorted(set(wrong)))


# -- withdrawn output still conforms to its profile ---------------------------------------------


def test_withdrawn_output_conforms_to_its_profile() -> None:
    """Each retirable derived resource (the adult of test_conformance: an active Flag with two
    risk factors, TIS, deterioration, cycles, DetectedIssues) as fhirtis withdraws it."""
    adult = _evaluate("adult")
    withdrawn = []
    for n, d in enumerate(adult.derived):
        if d.resource["resourceType"] not in RETIRABLE:
            continue
        stored = {**copy.deepcopy(d.resource), "id": f"stored-{n}"}
        stored["meta"] = {**stored["meta"], "versionId": "3"}
        w = withdrawal(stored, d.identifier)
        assert w.derived.resource["status"] == RETIRED
        withdrawn.append(w.derived.resource)
    kinds = {r["resourceType"] for r in withdrawn}
    assert kinds == set(RETIRABLE), kinds
    assert any(r["resourceType"] == "Flag" and r.get("extension") for r in withdrawn)
    # the invariant still holds of a Flag that is not withdrawn: inactive with a factor is wrong
    (flag,) = [r for r in withdrawn if r["resourceType"] == "Flag"]
    inactive = {**flag, "status": "inactive"}
    results = _run_validator([], [*withdrawn, inactive])
    errors = _errors(results[:-1])
    assert not errors, "\n".join(errors)
    assert any("fhirtis-tee-risk-1" in e for e in _errors(results[-1:])), _errors(results[-1:])


# -- the OperationDefinition declares what the service takes ------------------------------------


def _operation() -> Json:
    (op,) = _conformance("OperationDefinition").values()
    return op


def _expected_type(annotation: Any) -> str:
    """The FHIR type whose value[x] the service reads for a Policy field of this type."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "code"
    if annotation is int:
        return "integer"
    if annotation is Decimal:
        return "decimal"
    if get_origin(annotation) is tuple:  # a list setting: the comma form of a result's note
        return "string"
    raise AssertionError(f"no FHIR type for {annotation!r}")


def test_the_operation_declares_every_policy_parameter_the_service_takes() -> None:
    declared = {p["name"]: p["type"] for p in _operation()["parameter"] if p["use"] == "in"}
    for name, field in Policy.model_fields.items():
        assert name in declared, f"{name}: taken by the service, not declared"
        assert declared[name] == _expected_type(field.annotation), name


def _example(name: str, fhir_type: str) -> Json:
    """A value of ``fhir_type`` for parameter ``name``: the default policy's own value (as the
    result's note writes it) or a valid operation argument."""
    fixed: dict[str, Json] = {
        "patient": {"valueReference": {"reference": "Patient/p1"}},
        "write": {"valueBoolean": False},
        "baseline-date": {"valueDate": "2024-01-02"},
        "population": {"valueCode": "juvenile"},
        "server": {"valueUri": "https://ehr.example.org/fhir"},
    }
    if name in fixed:
        return fixed[name]
    default = getattr(Policy(), name)
    if fhir_type == "string":
        return {"valueString": ",".join(str(v) for v in default)}
    if fhir_type == "code":
        return {"valueCode": default.value}
    if fhir_type == "integer":
        return {"valueInteger": default}
    assert fhir_type == "decimal", (name, fhir_type)
    return {"valueDecimal": float(default)}


def test_every_declared_in_parameter_is_read_by_the_service() -> None:
    """One Parameters resource giving every declared input with a value of its declared type:
    the service reads each (no 400 for an unknown parameter or a value it cannot read)."""
    op = _operation()
    inputs = [p for p in op["parameter"] if p["use"] == "in"]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": p["name"], **_example(p["name"], p["type"])} for p in inputs],
    }
    params = parse_parameters(parameters_from_resource(body))
    policy = params.policy_over(Policy())
    assert policy == Policy()
    assert set(params.policy) == {p["name"] for p in inputs} & set(Policy.model_fields)
    (out,) = [p for p in op["parameter"] if p["use"] == "out"]
    assert (out["name"], out["type"], out["min"], out["max"]) == ("return", "Bundle", 1, "1")


# -- the transaction Bundles of the examples keep R4's Bundle and datatype rules -----------------


def _nodes(value: Any) -> Iterator[Json]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _nodes(v)
    elif isinstance(value, list):
        for v in value:
            yield from _nodes(v)


def _at(text: str) -> datetime:
    """An R4 date or dateTime as the instant its precision starts at (a date: midnight UTC)."""
    full = text if "T" in text else f"{text}T00:00:00+00:00"
    return datetime.fromisoformat(full.replace("Z", "+00:00"))


def test_the_example_transactions_keep_r4_bundle_and_datatype_rules(
    example_results: list[PatientResult],
) -> None:
    """bundle.html (transaction processing, bdl-7), datatypes.html (per-1, rng-2),
    observation.html (obs-6, obs-7): the rules the JSON schema cannot say."""
    problems = []
    for result in example_results:
        bundle = result.plan().bundle
        assert bundle is not None and bundle["type"] == "transaction"
        urls = [e["fullUrl"] for e in bundle["entry"] if "fullUrl" in e]
        if len(urls) != len(set(urls)):
            problems.append("bdl-7: a fullUrl twice")
        for n, entry in enumerate(bundle["entry"]):
            resource, request = entry["resource"], entry["request"]
            where = f"{resource['resourceType']} entry[{n}]"
            if request["method"] == "POST" and (
                "id" in resource or request["url"] != resource["resourceType"]
            ):
                problems.append(f"{where}: a create names an id or another type")
            match = request.get("ifNoneExist")
            if match is not None and ("?" in match or "=" not in match.split("&")[0]):
                problems.append(f"{where}: ifNoneExist is not a query: {match}")
            for node in _nodes(resource):
                ref = node.get("reference")
                if isinstance(ref, str) and ref.startswith("urn:") and ref not in urls:
                    problems.append(f"{where}: {ref} is not an entry of the Bundle")
                start, end = node.get("start"), node.get("end")
                if isinstance(start, str) and isinstance(end, str) and _at(start) > _at(end):
                    problems.append(f"{where}: per-1 {start} > {end}")
                low, high = node.get("low"), node.get("high")
                if (
                    isinstance(low, dict)
                    and isinstance(high, dict)
                    and (low["value"] > high["value"] or low["code"] != high["code"])
                ):
                    problems.append(f"{where}: rng-2 {low} {high}")
            if resource["resourceType"] == "Observation":
                for part in (resource, *resource.get("component", [])):
                    has_value = any(k.startswith("value") for k in part)
                    if has_value and "dataAbsentReason" in part:
                        problems.append(f"{where}: obs-6")
                for component in resource.get("component", []):
                    if component["code"] == resource["code"]:
                        problems.append(f"{where}: obs-7")
    assert not problems, "\n".join(problems)
