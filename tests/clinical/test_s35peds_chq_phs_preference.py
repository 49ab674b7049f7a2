"""The juvenile CHQ-PhS alternative to the enzyme (clinical spec §1: "Juvenile PRINTO alternatives
(optional, same weights) … CHQ-PhS for `enzyme`") beside the lab enzymes at both assessments.

The implementation decision (docs/clinical-specification.md, "Implementation decisions",
Assessments): of two instruments of one measure, each comparison uses one measured at both
assessments, the core set's first. The core set's enzyme measure is the most abnormal muscle
enzyme, which §1 and §2.1 specify in full; CHQ-PhS has no range in the specification and is
scored on an assumed 0–100 (`chq-phs-range-assumed`). A JDM clinic that records CHQ-PhS (PRINTO)
at every visit beside its CK, aldolase and LDH had the assumed-range CHQ-PhS replace the enzyme:
the bundled juvenile example (examples/bundles/juvenile.json, fhirtis's input contract of §6,
CodeSystem myositis-core-set code ``chq-phs``) read TIS 20, 50, 55, 80 instead of its
25, 57.5, 62.5, 87.5. CHQ-PhS stays the measure where the chosen lab enzyme is not measured at
both assessments."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from fhirtis.clinical.course import evaluate_course
from fhirtis.clinical.facts import Instrument, Measure, MeasureValue, ResultStatus
from fhirtis.clinical.policy import Policy, Population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.clinical.helpers import mv

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "juvenile.json"
CORE = "http://fhirtis.org/fhir/CodeSystem/myositis-core-set"
B, F = date(2024, 1, 1), date(2024, 3, 1)
D = Decimal


def _chq(oid: str, when: str, value: int) -> dict[str, Any]:
    return {
        "fullUrl": f"Observation/{oid}",
        "resource": {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": CORE, "code": "chq-phs"}]},
            "subject": {"reference": "Patient/juv"},
            "effectiveDateTime": when,
            "valueQuantity": {
                "value": value,
                "unit": "{score}",
                "system": "http://unitsofmeasure.org",
                "code": "{score}",
            },
        },
    }


def test_lab_enzymes_at_every_visit_are_scored_though_chq_phs_is_recorded_beside_them() -> None:
    data = orjson.loads(EXAMPLE.read_bytes())
    pgas = [
        e["resource"]
        for e in data["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "pga"
    ]
    data["entry"] += [_chq(f"chq-{i}", p["effectiveDateTime"], 30 + i) for i, p in enumerate(pgas)]
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(data)), Settings())
    followups = result.evaluation.course.followups
    assert [f.tis.tis for f in followups] == [D(25), D("57.5"), D("62.5"), D("87.5")]
    assert all(f.tis.measure(Measure.ENZYME).instrument is Instrument.LDH for f in followups), [
        f.tis.measure(Measure.ENZYME).instrument for f in followups
    ]
    codes = {n.code for f in followups for n in f.tis.notes}
    assert "chq-phs-range-assumed" not in codes


def _chq_value(value: int, day: date) -> MeasureValue:
    return MeasureValue(
        Measure.ENZYME,
        Instrument.CHQ_PHS,
        D(value),
        day,
        f"Observation/chq-{day}",
        ResultStatus.FINAL,
    )


def _enzyme_score(values: list[MeasureValue]) -> tuple[Instrument | None, Decimal | None]:
    course = evaluate_course(values, Population.JUVENILE, Policy(), first_ivig=date(2024, 1, 2))
    m = course.followups[0].tis.measure(Measure.ENZYME)
    return m.instrument, m.score


def test_chq_phs_and_ck_at_both_the_ck_is_compared() -> None:
    # CK 1000 → 800 (20 %: 5); CHQ-PhS 30 → 60 would be 30/100 = 30 % (7.5)
    values = [
        mv("pga", 6, B),
        mv("ck", 1000, B, uln=200),
        _chq_value(30, B),
        mv("pga", 6, F),
        mv("ck", 800, F, uln=200),
        _chq_value(60, F),
    ]
    assert _enzyme_score(values) == (Instrument.CK, D(5))


def test_chq_phs_at_both_is_compared_when_the_chosen_enzyme_is_missing_at_follow_up() -> None:
    # CK chosen at baseline (1000/200 = 5 × ULN over aldolase 10/8); at follow-up only aldolase:
    # the enzyme pair cannot be compared (never switch enzymes), the CHQ-PhS pair can
    values = [
        mv("pga", 6, B),
        mv("ck", 1000, B, uln=200),
        mv("aldolase", 10, B, uln=8),
        _chq_value(30, B),
        mv("pga", 6, F),
        mv("aldolase", 9, F, uln=8),
        _chq_value(60, F),
    ]
    assert _enzyme_score(values) == (Instrument.CHQ_PHS, D("7.5"))


def test_chq_phs_at_both_without_lab_enzymes_at_follow_up_is_compared() -> None:
    values = [
        mv("pga", 6, B),
        mv("ck", 1000, B, uln=200),
        _chq_value(30, B),
        mv("pga", 6, F),
        _chq_value(60, F),
    ]
    assert _enzyme_score(values) == (Instrument.CHQ_PHS, D("7.5"))
