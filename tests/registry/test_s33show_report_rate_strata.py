"""The registry report's TEE by maximum infusion rate (s33 audit of what an analyst reads): a
cycle whose maximum rate is over some of its infusions only (the others' rates unknown: the
cycle Observation says "maximum rate is over the known ones only", the summary record lists
the warning ``cycle-max-rate-partial``) is not known to be at or below the threshold, so it
is counted as "rate unknown", never in "≤ 4 mg/kg/min" (clinical spec, preamble: "where data
does not allow a rule to run, the result says so"). A known rate above the threshold puts it
above whatever the unknown ones were."""

from __future__ import annotations

import json
from typing import Any

from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.registry.report.model import build_report
from fhirtis.settings import Settings
from tests.fhir.patients import responder

Json = dict[str, Any]


def _summary(rate_of_ma10: float = 150) -> Json:
    """The test responder (4 cycles of 4 infusions at 150 mL/h of 10 %, 70 kg: 3.5714
    mg/kg/min) with a DVT associated with cycle 2, whose second infusion's rate is in a unit
    that cannot be read (unknown) and whose first runs at ``rate_of_ma10`` mL/h."""
    data = responder(dvt_after_cycle=2)
    for entry in data["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration" and r["id"] == "ma11":
            r["dosage"]["rateQuantity"] = {"value": 3, "unit": "bottles/h"}
        if r["resourceType"] == "MedicationAdministration" and r["id"] == "ma10":
            r["dosage"]["rateQuantity"]["value"] = rate_of_ma10
    result = evaluate_bundle_bytes(json.dumps(data).encode(), "p1.json", Settings())
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    (event,) = summary["thrombosis"]["associated_events"]
    assert event["cycles"] == [2]
    second = summary["ivig"]["cycles"][1]
    assert "cycle-max-rate-partial" in second["warnings"]
    return summary


def _strata(summary: Json) -> dict[str, tuple[int, int]]:
    tee = build_report([summary]).tee
    return {s.label: (s.cycles, s.events) for s in tee.strata}


def test_a_cycle_max_rate_over_some_infusions_only_is_not_counted_at_or_below() -> None:
    """Cycle 2's known rates are 3.5714 mg/kg/min; its fourth infusion's is unknown. The report
    counted cycle 2 and its DVT in "≤ 4 mg/kg/min" (4 cycles, 1 event), as if every rate were
    known."""
    summary = _summary()
    assert str(summary["ivig"]["cycles"][1]["max_rate_mg_kg_min"]) == "3.5714"
    assert _strata(summary) == {
        "≤ 4 mg/kg/min": (3, 0),
        "> 4 mg/kg/min": (0, 0),
        "rate unknown": (1, 1),
    }


def test_a_known_rate_above_the_threshold_places_a_partial_cycle_above_it() -> None:
    """ma10 at 300 mL/h (7.1429 mg/kg/min): cycle 2 ran above 4 whatever ma11's rate was."""
    summary = _summary(rate_of_ma10=300)
    assert _strata(summary) == {"≤ 4 mg/kg/min": (3, 0), "> 4 mg/kg/min": (1, 1)}
