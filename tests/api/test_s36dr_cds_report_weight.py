"""The CDS service reads a weight sent as a contained result of a DiagnosticReport in prefetch.

A CDS client's prefetch Bundle may carry a DiagnosticReport whose results are contained
Observations (HL7 R4 diagnosticreport-example.json's shape); fhirtis read no DiagnosticReport,
so a weight sent so was lost and the rate card said the mL/h "cannot be computed". See
tests/fhir/test_s36dr_report_contained_results.py.
"""

from __future__ import annotations

from typing import Any

from tests.api.test_cds_hooks import (
    SIGN,
    _day,
    _service_clock,  # noqa: F401 (autouse: the service's clock, as test_cds_hooks sets it)
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    searchset,
)
from tests.fhir.builders import LOINC, PATIENT, patient, qty

Json = dict[str, Any]


def _weight_report(status: str = "final") -> Json:
    return {
        "resourceType": "DiagnosticReport",
        "id": "lab7",
        "status": status,
        "code": {"text": "Admission observations"},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": _day(3),
        "contained": [
            {
                "resourceType": "Observation",
                "id": "r1",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                "valueQuantity": qty(70, "kg"),
            }
        ],
        "result": [{"reference": "#r1"}],
    }


async def _max_rate(report: Json) -> str:
    prefetch = full_prefetch([patient()])
    prefetch["measures"] = searchset([report])
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch)
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    summary: str = card_with(cards, "Max IVIG rate")["summary"]
    return summary


async def test_a_weight_contained_in_a_prefetched_report_gives_the_ml_h() -> None:
    assert (await _max_rate(_weight_report())).startswith(
        "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg"
    )


async def test_a_report_entered_in_error_gives_no_weight() -> None:
    assert (await _max_rate(_weight_report("entered-in-error"))).endswith(
        "mL/h cannot be computed: no body weight"
    )
