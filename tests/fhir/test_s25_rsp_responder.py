"""The ProDERM responder status (clinical spec §3: TIS ≥ the minimal threshold and no confirmed
deterioration at or before the assessment) in the FHIR output: a ``responder`` component of each
TIS Observation, ``valueBoolean`` when known, else a ``dataAbsentReason`` — always what the
summary record's ``responder`` says for that assessment, and conformant to the fhirtis-tis
profile (checked with ``tests/fhir_server/validate.mjs``, as ``test_conformance`` does)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import orjson
import pytest

from fhirtis.clinical.tis import THRESHOLDS
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.fhir.test_conformance import _run_validator
from tests.output_digests import inputs

Json = dict[str, Any]

FHIRTIS = "http://fhirtis.org/fhir/CodeSystem/fhirtis"
DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
RESPONDER = {"coding": [{"system": FHIRTIS, "code": "responder"}]}


@cache
def _results() -> tuple[tuple[str, PatientResult, Json], ...]:
    """(name, result, summary record) of every example and of the 1,000 synthetic patients of
    ``tests/output_digests.py`` (the examples with their settings, as ``fhirtis evaluate``)."""
    out = []
    for name, blob, settings in inputs():
        result = evaluate_patient_resources(read_patient_bundle(blob, name), settings)
        summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
        out.append((name, result, summary))
    return tuple(out)


def _tis_observations(result: PatientResult) -> list[Json]:
    """The TIS Observations as written: the entries of the transaction Bundle."""
    bundle = result.plan().bundle
    if bundle is None:
        return []
    resources = [e["resource"] for e in bundle["entry"]]
    return [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and (r["code"]["coding"][0]["system"], r["code"]["coding"][0]["code"]) == (FHIRTIS, "tis")
    ]


def _responder_components(obs: Json) -> list[Json]:
    return [c for c in obs["component"] if c["code"] == RESPONDER]


def _stated(component: Json) -> bool | None:
    if "valueBoolean" in component:
        assert "dataAbsentReason" not in component
        value = component["valueBoolean"]
        assert isinstance(value, bool)
        return value
    return None


def test_every_tis_observation_says_the_summarys_responder_status() -> None:
    seen: dict[tuple[bool | None, bool], int] = {}
    for name, result, summary in _results():
        observations = {o["effectivePeriod"]["end"]: o for o in _tis_observations(result)}
        assessments = summary["assessments"]
        assert len(observations) == len(assessments), name
        followups = {str(f.assessment.day): f for f in result.evaluation.course.followups}
        for a in assessments:
            day = str(a["date"])
            obs = observations[day]
            (component,) = _responder_components(obs)
            expected = a["responder"]
            assert _stated(component) is expected, f"{name} {day}"
            if expected is None:
                absent = component["dataAbsentReason"]
                assert absent["coding"] == [{"system": DAR, "code": "unknown"}], f"{name} {day}"
                # the reason says what leaves it open (spec §3: the TIS, the deterioration)
                f = followups[day]
                minimal = THRESHOLDS[f.tis.population][0]
                if f.tis.lower < minimal <= f.tis.upper:
                    assert "minimal improvement threshold" in absent["text"], absent
                if f.confirmed_deterioration is None:
                    assert "confirmed deterioration" in absent["text"], absent
            else:
                assert component == {"code": RESPONDER, "valueBoolean": expected}
            key = (expected, a["partial"])
            seen[key] = seen.get(key, 0) + 1
    # every state occurs, so the comparison above compares something
    assert {s for s, _ in seen} == {True, False, None}, seen
    assert (None, True) in seen and (False, True) in seen, seen


def _samples() -> Iterator[Json]:
    """One written TIS Observation per (responder status, partial TIS, why unknown)."""
    kinds: set[tuple[bool | None, bool, str]] = set()
    for _, result, _ in _results():
        for obs in _tis_observations(result):
            (component,) = _responder_components(obs)
            why = component.get("dataAbsentReason", {}).get("text", "")
            kind = (_stated(component), "valueRange" in obs, why)
            if kind not in kinds:
                kinds.add(kind)
                yield obs


def _errors(resources: list[Json]) -> list[list[str]]:
    results = _run_validator([], resources)
    return [
        [
            f"[{i['source']}] {i['expression']}: {i['message']}"
            for i in r["issues"]
            if i["severity"] == "error"
        ]
        for r in sorted(results, key=lambda r: int(r["index"]))
        if r.get("entry") is None
    ]


def test_every_kind_of_responder_component_written_conforms_to_the_profile() -> None:
    samples = list(_samples())
    assert len(samples) >= 4
    assert _errors(samples) == [[] for _ in samples]


def _complete(state: bool | None) -> Json:
    """A written Observation of a complete TIS whose responder status is ``state``."""
    for obs in _samples():
        if "valueQuantity" in obs and _stated(_responder_components(obs)[0]) is state:
            return obs
    raise AssertionError(f"no complete TIS with responder {state}")


def _replace_responder(component: Json) -> Callable[[Json], None]:
    def apply(obs: Json) -> None:
        obs["component"] = [c for c in obs["component"] if c["code"] != RESPONDER]
        obs["component"].append(component)

    return apply


def _drop_responder(obs: Json) -> None:
    obs["component"] = [c for c in obs["component"] if c["code"] != RESPONDER]


_UNKNOWN = {"coding": [{"system": DAR, "code": "unknown"}], "text": "undetermined"}

# (case, the change, the error expected, or None: still valid)
CASES: list[tuple[str, Callable[[Json], None], str | None]] = [
    # a complete TIS whose deterioration is undetermined: the TIS stays a plain number
    # (fhirtis-tis-2 ties a valueRange to the measure components only)
    (
        "complete-tis-unknown-responder",
        _replace_responder({"code": RESPONDER, "dataAbsentReason": _UNKNOWN}),
        None,
    ),
    ("without-responder", _drop_responder, "fhirtis-tis-4"),
    (
        "responder-as-quantity",
        _replace_responder({"code": RESPONDER, "valueQuantity": {"value": 1}}),
        "type Quantity is not allowed",
    ),
    (
        "responder-value-and-absent",
        _replace_responder({"code": RESPONDER, "valueBoolean": True, "dataAbsentReason": _UNKNOWN}),
        "fhirtis-tis-1",
    ),
    (
        "two-responders",
        lambda obs: obs["component"].append({"code": RESPONDER, "valueBoolean": False}),
        "component:responder: maximum 1",
    ),
]


def test_the_profile_holds_the_responder_component() -> None:
    base = _complete(True)
    broken = []
    for _, change, _ in CASES:
        obs = copy.deepcopy(base)
        change(obs)
        broken.append(obs)
    for (case, _, expected), errors in zip(CASES, _errors(broken), strict=True):
        if expected is None:
            assert errors == [], case
        else:
            assert any(expected in e for e in errors), f"{case}: {errors}"


@pytest.mark.parametrize("state", [True, False])
def test_a_known_responder_status_is_a_boolean(state: bool) -> None:
    (component,) = _responder_components(_complete(state))
    assert component == {"code": RESPONDER, "valueBoolean": state}


def test_undetermined_deterioration_leaves_a_complete_tis_responder_unknown() -> None:
    """No extramuscular activity at weeks 4 and 8: deterioration unknown at both, so confirmed
    deterioration is unknown from week 8 on (spec §3: two consecutive assessments) and so is the
    responder status — week 12's TIS (62.5, complete, above the minimal threshold) included. Its
    Observation stays a plain valueQuantity with an unknown responder, and conforms."""
    data = responder()
    data["entry"] = [e for e in data["entry"] if e["resource"].get("id") not in ("em1", "em2")]
    result = evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(data), "em-missing.json"), Settings()
    )
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    assert [a["responder"] for a in summary["assessments"]] == [True, None, None]
    observations = _tis_observations(result)
    components = [_responder_components(o) for o in observations]
    assert components[0] == [{"code": RESPONDER, "valueBoolean": True}]
    for (component,) in components[1:]:
        assert component["dataAbsentReason"] == {
            "coding": [{"system": DAR, "code": "unknown"}],
            "text": "missing measures leave confirmed deterioration undetermined",
        }
    assert observations[-1]["valueQuantity"]["value"] == 62.5
    assert _errors(observations) == [[], [], []]
