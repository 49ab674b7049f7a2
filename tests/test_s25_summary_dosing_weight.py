"""A cycle's dosing weight in the summary (``fhirtis evaluate --json``, the service's summary, the
cohort summaries) is the number the cycle's Observation writes: 4 places. On the adjusted basis
(ideal + 0.4 × (actual − ideal), a division by 2.54 on the way) the summary printed every digit
of the Decimal (82.27874015748031…) beside an Observation saying 82.2787."""

from __future__ import annotations

from decimal import Decimal

import orjson

from fhirtis.clinical.policy import Policy
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder


def test_the_summary_says_the_dosing_weight_the_observation_writes() -> None:
    bundle = responder()
    heavy = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "w0")
    heavy["valueQuantity"]["value"] = 97.3
    day = heavy["effectiveDateTime"]
    bundle["entry"].append({"resource": obs("h0", "8302-2", 161.3, "cm", day, system=LOINC)})
    settings = Settings(policy=Policy(dosing_weight="adjusted"))
    result = evaluate_bundle_bytes(orjson.dumps(bundle), "p1.json", settings)
    summary = orjson.loads(
        orjson.dumps(
            patient_summary(result.patient_ref, result.evaluation, result.issues),
            default=str,
        )
    )
    written = {
        e["resource"]["effectivePeriod"]["start"]: next(
            c["valueQuantity"]["value"]
            for c in e["resource"]["component"]
            if c["code"]["coding"][0]["code"] == "dosing-weight"
        )
        for e in result.plan().bundle["entry"]  # type: ignore[index]
        if e["resource"]["resourceType"] == "Observation"
        and any(
            c["code"]["coding"][0]["code"] == "dosing-weight"
            for c in e["resource"].get("component", [])
        )
    }
    cycles = summary["ivig"]["cycles"]
    assert cycles and {c["dosing_weight_basis"] for c in cycles} == {"adjusted"}
    for c in cycles:
        shown = Decimal(str(c["dosing_weight_kg"]))
        assert shown == Decimal(str(written[c["start"]])), (shown, written)
        assert -shown.as_tuple().exponent <= 4  # type: ignore[operator]
