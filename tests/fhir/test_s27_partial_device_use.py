"""A central venous catheter's DeviceUseStatement whose timing is recorded only to the year or
month (a valid R4 dateTime, as IPS and Oracle Health publish other clinical dates): it was
excluded with an error, and the catheter (a risk factor, clinical spec §5.1) was lost: the
maximum rate stayed 4 mg/kg/min. As for an estrogen use or a Condition so dated, it counts from
the first day its start allows and until the last day its end allows, with a warning (the safe
side for the maximum rate)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.test_s25_pub_onset import _evaluate

CATHETER = {
    "resourceType": "Device",
    "id": "cvc",
    "type": {"coding": [{"system": "http://snomed.info/sct", "code": "52124006"}]},
}


def _catheter_use(**timing: Any) -> Any:
    statement = {
        "resourceType": "DeviceUseStatement",
        "id": "dus",
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "Device/cvc"},
        **timing,
    }
    return _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        CATHETER,
        statement,
    )


def test_a_catheter_in_place_since_a_month_counts_from_its_first_day() -> None:
    result = _catheter_use(status="active", timingPeriod={"start": "2025-03"})
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.CENTRAL_VENOUS_CATHETER, date(2025, 3, 1), None)
    ]
    (warning,) = [i for i in result.issues if i.expression and "timingPeriod" in i.expression]
    assert warning.severity == "warning" and "2025-03-01" in warning.diagnostics
    assert [f.limit_mg_kg_min for f in result.evaluation.thrombosis.rate_findings] == [
        Decimal("3.3")
    ]


def test_a_catheter_removed_in_a_year_counts_until_its_last_day() -> None:
    result = _catheter_use(status="completed", timingPeriod={"start": "2024-11-02", "end": "2025"})
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.CENTRAL_VENOUS_CATHETER, date(2024, 11, 2), date(2025, 12, 31))
    ]
