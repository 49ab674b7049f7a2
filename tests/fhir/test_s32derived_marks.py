"""What the derived resources say about results that the evaluation marks (audit s32derived).

- Clinical spec §4: an administration ``in-progress`` or ``stopped`` is counted, *but marked*.
  The evaluation marked it (a warning per administration), but the written IVIG cycle dose and
  cumulative dose Observations said nothing: a cycle whose day-2 infusion was still running was
  written ``final`` with its period ending at that infusion's start, and a cycle with an infusion
  stopped for a reaction (examples/bundles/us-ehr-ivig-course.json) read as a plain 2 g/kg cycle.
  Now such a cycle (and the cumulative dose) is ``preliminary`` while an infusion is in progress,
  and each in-progress or stopped administration is named in the note.
- Clinical spec §3 (confirmed deterioration is dated at the second of two consecutive
  deteriorations; "never guess silently"): when missing measures leave open whether an earlier
  pair already confirmed it, the Observation was written ``true`` at the later date with nothing
  to say it may have been confirmed earlier. Now the note says from which assessment on it may
  have been confirmed.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    administration,
    bundle,
    medication,
    obs,
    patient,
    qty,
    visit,
)

Json = dict[str, Any]
WEIGHT = obs("w", "29463-7", 70, "kg", "2024-01-06T08:00:00Z", system=LOINC)


def _derived(*resources: Json) -> dict[str, list[Json]]:
    doc = bundle(patient(), WEIGHT, *resources)
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())
    out: dict[str, list[Json]] = {}
    for d in result.derived:
        code = d.resource.get("code", {}).get("coding", [{}])[0].get("code", "")
        out.setdefault(code, []).append(d.resource)
    return out


def _notes(resource: Json) -> list[str]:
    return [n["text"] for n in resource.get("note", [])]


def _cycle(*administrations: Json) -> tuple[Json, Json]:
    derived = _derived(medication(), *administrations)
    (cycle,) = derived["ivig-cycle-dose"]
    (cumulative,) = derived["ivig-cumulative-dose"]
    return cycle, cumulative


DAY1 = administration(
    "a1",
    "2024-01-08T09:00:00+01:00",
    "2024-01-08T15:00:00+01:00",
    dose=qty(70, "g"),
    rate=qty(100, "mL/h"),
)


def test_a_cycle_with_an_infusion_in_progress_is_preliminary_and_says_so() -> None:
    running = administration(
        "a2", "2024-01-09T09:00:00+01:00", dose=qty(70, "g"), status="in-progress"
    )
    cycle, cumulative = _cycle(DAY1, running)
    assert cycle["status"] == "preliminary"
    assert cumulative["status"] == "preliminary"
    for resource in (cycle, cumulative):
        assert any(
            "MedicationAdministration/a2" in t and "in progress" in t for t in _notes(resource)
        ), _notes(resource)


def test_a_stopped_infusion_is_named_in_the_cycle_dose() -> None:
    stopped = administration(
        "a2",
        "2024-01-09T09:00:00+01:00",
        "2024-01-09T10:00:00+01:00",
        dose=qty(70, "g"),
        status="stopped",
    )
    cycle, cumulative = _cycle(DAY1, stopped)
    assert cycle["status"] == "final"  # over: what was recorded stands, marked
    assert cumulative["status"] == "final"
    for resource in (cycle, cumulative):
        assert any(
            "MedicationAdministration/a2" in t and "stopped" in t for t in _notes(resource)
        ), _notes(resource)


def test_completed_administrations_add_no_mark() -> None:
    done = administration(
        "a2", "2024-01-09T09:00:00+01:00", "2024-01-09T15:00:00+01:00", dose=qty(70, "g")
    )
    cycle, cumulative = _cycle(DAY1, done)
    for resource in (cycle, cumulative):
        assert resource["status"] == "final"
        assert not any("MedicationAdministration" in t for t in _notes(resource))


def test_confirmed_deterioration_says_when_it_may_have_been_confirmed_earlier() -> None:
    # extramuscular 3 -> 5 cm (worse by 2 cm: deterioration) at 02-01, 04-01 and 05-01; at
    # 03-01 only PGA and MMT-8 (unchanged) are recorded: deterioration there is unknown, so
    # the 02-01/03-01 pair may already have confirmed it on 03-01.
    resources = [
        *visit(0, "2024-01-01", 4, 4, 100, 1.0, 3, 1000),
        *visit(1, "2024-02-01", 4, 4, 100, 1.0, 5, 1000),
        obs("pga2", "pga", 4, "cm", "2024-03-01"),
        obs("mmt2", "mmt8-150", 100, "{score}", "2024-03-01"),
        *visit(3, "2024-04-01", 4, 4, 100, 1.0, 5, 1000),
        *visit(4, "2024-05-01", 4, 4, 100, 1.0, 5, 1000),
        medication(),
        administration(
            "a1", "2024-01-02T09:00:00+01:00", "2024-01-02T15:00:00+01:00", dose=qty(140, "g")
        ),
    ]
    (det,) = _derived(*resources)["confirmed-deterioration"]
    assert det["valueBoolean"] is True
    assert det["effectiveDateTime"] == "2024-05-01"
    assert any("2024-03-01" in t for t in _notes(det)), _notes(det)


def test_confirmed_deterioration_without_an_open_earlier_pair_has_no_such_note() -> None:
    resources = [
        *visit(0, "2024-01-01", 4, 4, 100, 1.0, 3, 1000),
        *visit(1, "2024-02-01", 4, 4, 100, 1.0, 5, 1000),
        *visit(2, "2024-03-01", 4, 4, 100, 1.0, 5, 1000),
        medication(),
        administration(
            "a1", "2024-01-02T09:00:00+01:00", "2024-01-02T15:00:00+01:00", dose=qty(140, "g")
        ),
    ]
    (det,) = _derived(*resources)["confirmed-deterioration"]
    assert det["valueBoolean"] is True
    assert det["effectiveDateTime"] == "2024-03-01"
    assert not any("earlier" in t for t in _notes(det)), _notes(det)
