"""A note about the patient's data is said once in the patient's notes, however many cycles it
bears on (s36 tidy audit of what a clinician reads).

A body weight excluded as a jump (clinical spec §1: "a weight that differs from the previous one
within 14 days by more than 25% is implausible: excluded with the reason") — here the same-day
duplicate 154 kg, the 70 kg weight charted again in pounds under the kg code — was listed once
per cycle dosed after it: 4 identical "excluded: body weight 154 kg is implausible" lines in
``fhirtis evaluate``'s printout and in the summary's ``notes``, since each cycle's dosing weight
carries the exclusions on or before its start. Each cycle's own Observation still says it."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder

Json = dict[str, Any]


def _with_duplicate_weight() -> Json:
    """The responder (70 kg on 2024-01-06, 4 cycles from 2024-01-08) with the same day's
    weight recorded again as 154 (pounds, under kg): 120% off, excluded."""
    data = responder()
    w0 = next(e["resource"] for e in data["entry"] if e["resource"]["id"] == "w0")
    dup = obs("w0lb", "29463-7", 154, "kg", w0["effectiveDateTime"], system=LOINC)
    data["entry"].append({"resource": dup})
    return data


def _summary(data: Json) -> tuple[Json, Any]:
    result = evaluate_bundle_bytes(orjson.dumps(data), "p1.json", Settings())
    record = patient_summary(result.patient_ref, result.evaluation, result.issues)
    return orjson.loads(orjson.dumps(record, default=str)), result


def test_an_excluded_weight_is_said_once_in_the_patients_notes() -> None:
    summary, result = _summary(_with_duplicate_weight())
    jumps = [n for n in summary["notes"] if n["code"] == "weight-implausible"]
    assert len(jumps) == 1, jumps
    assert jumps[0]["source"] == "Observation/w0lb"
    assert "154 kg is implausible" in jumps[0]["message"]
    assert len(summary["ivig"]["cycles"]) == 4
    # each cycle's dosing weight still carries it (its Observation says what its weight rests on)
    for cycle in result.evaluation.exposure.cycles:
        assert [n.code for n in cycle.dosing_weight.notes].count("weight-implausible") == 1
    notes = result.evaluation.exposure.all_notes()
    assert [n.code for n in notes].count("weight-implausible") == 1


def test_no_note_of_the_summary_is_said_twice() -> None:
    """Whatever note repeats across cycles (the exclusion, the same weight's conflict) is said
    once; notes that differ (a stale weight's age per cycle) all stay."""
    data = _with_duplicate_weight()
    w0 = next(e["resource"] for e in data["entry"] if e["resource"]["id"] == "w0")
    # the same weight at the same time again with another value: a weight conflict, used by
    # every cycle
    data["entry"].append(
        {"resource": obs("w0b", "29463-7", 71, "kg", w0["effectiveDateTime"], system=LOINC)}
    )
    summary, _ = _summary(data)
    said = [(n["severity"], n["code"], n["message"], n.get("source")) for n in summary["notes"]]
    assert len(said) == len(set(said)), said
    codes = [n["code"] for n in summary["notes"]]
    assert codes.count("weight-conflict") == 1
    assert codes.count("stale-weight") == 2  # 58 and 86 days: two statements
