"""Clinical spec §5 with data that does not settle a rule (s31 audit): the preamble's "never guess
silently: where data does not allow a rule to run, the result says so", for

* the written tee-risk Flag (§7) when no risk factor was found but some could not be assessed:
  "none found; maximum rate 4 mg/kg/min" must not read as if every factor had been checked;
* an administration on the day of a date-only thromboembolic onset (§5.3: an event during
  treatment is a history risk factor "from its onset on"): whether the onset came before the
  start is not known, so whether its limit is 3.3 or 4 mg/kg/min is not known either.

End to end from FHIR Bundles (tests/fhir/builders.py shapes)."""

from __future__ import annotations

import json
from typing import Any

from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]


def _evaluate(*extra: Json, birth: str = "1980-06-15", admins: list[Json] | None = None) -> Any:
    """Adult, 70 kg, 10% product; by default two 150 mL/h (3.57 mg/kg/min) infusions."""
    if admins is None:
        admins = [
            administration(
                f"a{k}",
                f"2024-01-{8 + k:02d}T09:00:00+01:00",
                f"2024-01-{8 + k:02d}T11:30:00+01:00",
                dose=qty(350, "mL"),
                rate=qty(150, "mL/h"),
            )
            for k in range(2)
        ]
    b = bundle(
        patient(birth=birth),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        *admins,
        *extra,
    )
    return evaluate_bundle_bytes(json.dumps(b).encode(), "s31c.json", Settings())


def _flag(result: Any) -> Json:
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    flag_json: Json = flag
    return flag_json


# --- the tee-risk Flag says what it could not assess -------------------------------------------


def test_flag_with_no_factor_found_names_an_age_that_could_not_be_assessed() -> None:
    # born in 1959 (year only), as of 2024-01-09: 64 or 65 years old; no BMI, no PGA either
    result = _evaluate(birth="1959")
    assert result.evaluation.thrombosis.risk_factors == ()
    text = _flag(result)["code"]["text"]
    assert "maximum rate 4 mg/kg/min" in text
    assert "not assessable" in text
    assert "advanced-age" in text and "64–65" in text
    assert "obesity" in text and "inflammation" in text


def test_flag_with_every_factor_assessed_and_none_found_says_nothing_more() -> None:
    # full birth date (43 years), a BMI of 24.2 from weight and height, PGA 4 cm: all assessed
    result = _evaluate(
        obs("h0", "8302-2", 170, "cm", "2024-01-01", system=LOINC),
        obs("pga0", "pga", 4, "cm", "2024-01-05"),
    )
    assert result.evaluation.thrombosis.current.unassessed == ()
    assert _flag(result)["code"]["text"] == (
        "Thromboembolism risk with IVIG: none found; maximum rate 4 mg/kg/min"
    )


def test_flag_with_a_factor_found_is_unchanged_by_unassessed_ones() -> None:
    # a factor found: 3.3 applies whatever the unassessed factors would have shown
    result = _evaluate(condition("dvt", SCT, "128053003", "2019-01-01"), birth="1959")
    assert _flag(result)["code"]["text"] == (
        "Thromboembolism risk with IVIG: thrombosis-history; maximum rate 3.3 mg/kg/min"
    )


# --- an administration on the day of a date-only onset -----------------------------------------


def _cycle_at(ml_per_h: int) -> list[Json]:
    """Four daily infusions 2024-01-08..11, 09:00–11:30+01:00 (147 mL/h = 3.5 mg/kg/min)."""
    return [
        administration(
            f"a{k}",
            f"2024-01-{8 + k:02d}T09:00:00+01:00",
            f"2024-01-{8 + k:02d}T11:30:00+01:00",
            dose=qty(350, "mL"),
            rate=qty(ml_per_h, "mL/h"),
        )
        for k in range(4)
    ]


def _uncertain_notes(result: Any) -> list[Any]:
    return [n for n in result.evaluation.thrombosis.notes if n.code == "rate-limit-uncertain"]


def test_date_only_onset_on_an_administration_day_leaves_its_limit_unknown_and_says_so() -> None:
    # DVT on 2024-01-10 (no time): a2 started that day at 09:00 at 3.5 mg/kg/min, above 3.3 if
    # the DVT began before 09:00, within 4 if after; a3 (next day) is surely after: a finding
    result = _evaluate(condition("dvt", SCT, "128053003", "2024-01-10"), admins=_cycle_at(147))
    findings = result.evaluation.thrombosis.rate_findings
    assert [f.administration_source for f in findings] == ["MedicationAdministration/a3"]
    (note,) = _uncertain_notes(result)
    assert note.source == "MedicationAdministration/a2"
    assert "2024-01-10" in note.message and "3.3" in note.message


def test_no_uncertainty_note_when_the_rate_is_within_every_limit() -> None:
    # 138 mL/h = 3.29 mg/kg/min: within 3.3 whichever came first
    result = _evaluate(condition("dvt", SCT, "128053003", "2024-01-10"), admins=_cycle_at(138))
    assert result.evaluation.thrombosis.rate_findings == ()
    assert _uncertain_notes(result) == []


def test_no_uncertainty_note_when_the_onset_has_a_time() -> None:
    # 10:00 on a2's day: after its 09:00 start, so a2 is judged without the DVT (4), a3 with it
    result = _evaluate(
        condition("dvt", SCT, "128053003", "2024-01-10T10:00:00+01:00"), admins=_cycle_at(147)
    )
    findings = result.evaluation.thrombosis.rate_findings
    assert [f.administration_source for f in findings] == ["MedicationAdministration/a3"]
    assert _uncertain_notes(result) == []


def test_no_uncertainty_note_when_another_factor_settles_the_limit() -> None:
    # hypertension since 2015: 3.3 applies to every administration anyway (all four are findings)
    result = _evaluate(
        condition("dvt", SCT, "128053003", "2024-01-10"),
        condition("htn", "http://hl7.org/fhir/sid/icd-10-cm", "I10", "2015-01-01"),
        admins=_cycle_at(147),
    )
    assert len(result.evaluation.thrombosis.rate_findings) == 4
    assert _uncertain_notes(result) == []


# --- the window's first day when the onset and the infusion are recorded in different offsets --
#
# §5.3 compares calendar dates "in the time zone the record gives"; where the two instants order
# the onset and the cycle's start, that order decides the start edge (docs/clinical-specification
# .md: "fhirtis applies [calendar dates] where the times cannot order the two"). An event before
# any IVIG is history, never an event with no suspect; one after the first infusion started is
# never "before any IVIG".


def _late_evening_infusion() -> list[Json]:
    # 2024-01-09T23:00-05:00 = 2024-01-10T04:00Z
    return [
        administration(
            "a0",
            "2024-01-09T23:00:00-05:00",
            "2024-01-10T01:00:00-05:00",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        )
    ]


def test_onset_hours_before_the_first_infusion_on_a_later_recorded_day_is_history() -> None:
    # MI at 2024-01-10T02:00+01:00 = 01:00Z: three hours before the infusion, though its recorded
    # calendar date (the 10th) is after the infusion's (the 9th)
    result = _evaluate(
        condition("mi", SCT, "22298006", "2024-01-10T02:00:00+01:00"),
        admins=_late_evening_infusion(),
    )
    t = result.evaluation.thrombosis
    assert t.associated_events == ()
    assert [e.source for e in t.history_events] == ["Condition/mi"]
    assert not [d for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]


def test_onset_minutes_after_the_first_infusion_on_an_earlier_recorded_day_is_associated() -> None:
    # infusion from 2024-01-09T00:30+01:00 (= 2024-01-08T23:30Z); MI at 2024-01-08T23:45Z, 15
    # minutes into it, recorded on the 8th: early, the infusion its suspect
    admins = [
        administration(
            "a0",
            "2024-01-09T00:30:00+01:00",
            "2024-01-09T03:00:00+01:00",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        )
    ]
    result = _evaluate(condition("mi", SCT, "22298006", "2024-01-08T23:45:00Z"), admins=admins)
    t = result.evaluation.thrombosis
    assert t.history_events == ()
    (a,) = t.associated_events
    assert a.suspects == ("MedicationAdministration/a0",) and a.early is True


def test_onset_after_a_later_cycle_started_on_an_earlier_recorded_day_is_associated() -> None:
    # cycle 1 on 2024-01-08; cycle 2 from 2024-02-05T00:30+01:00 (= 02-04T23:30Z); a DVT at
    # 2024-02-04T23:45Z is 15 minutes into cycle 2 (and 27 days after cycle 1: outside its window)
    admins = [
        administration(
            f"a{i}",
            start,
            end,
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        )
        for i, (start, end) in enumerate(
            [
                ("2024-01-08T09:00:00+01:00", "2024-01-08T11:30:00+01:00"),
                ("2024-02-05T00:30:00+01:00", "2024-02-05T03:00:00+01:00"),
            ]
        )
    ]
    result = _evaluate(condition("dvt", SCT, "128053003", "2024-02-04T23:45:00Z"), admins=admins)
    t = result.evaluation.thrombosis
    assert t.unassociated_events == ()
    (a,) = t.associated_events
    assert a.cycle_indexes == (2,) and a.suspects == ("MedicationAdministration/a1",)


def test_same_offset_first_day_edges_are_unchanged() -> None:
    # one offset throughout: an onset hours before the first infusion on its day is history; a
    # date-only onset on that day is associated (the day's infusion may have started before it)
    admins = _cycle_at(147)[:1]  # 2024-01-08T09:00+01:00
    before = _evaluate(
        condition("dvt", SCT, "128053003", "2024-01-08T08:00:00+01:00"), admins=admins
    ).evaluation.thrombosis
    assert [e.source for e in before.history_events] == ["Condition/dvt"]
    same_day = _evaluate(
        condition("dvt", SCT, "128053003", "2024-01-08"), admins=admins
    ).evaluation.thrombosis
    (a,) = same_day.associated_events
    assert a.suspects == ("MedicationAdministration/a0",)
