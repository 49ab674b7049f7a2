"""A result that rests on a TIS or deterioration note says so in the summary (spec preamble:
"never guess silently … the result says so"). With CK (no ULN) and aldolase (ULN 7.6) at
baseline, CK cannot be ranked and is left out of the choice (spec §1: "the result says so"):
the TIS follows aldolase. The note was computed and dropped: the summary said nothing."""

from __future__ import annotations

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    enzyme,
    medication,
    obs,
    patient,
    qty,
    visit,
)


def test_an_enzyme_left_out_for_want_of_a_uln_is_said_once() -> None:
    resources = [
        patient(),
        condition("dm", SCT, "396230008", "2020-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-06", system=LOINC),
        administration(
            "ma0", "2024-01-08T09:00:00+01:00", "2024-01-08T20:00:00+01:00", dose=qty(140, "g")
        ),
    ]
    for i, day in enumerate(["2024-01-07", "2024-02-04", "2024-03-03"]):
        resources += [r for r in visit(i, day, 4, 4, 100, 1, 3, 1000) if r["id"] != f"ck{i}"]
        resources.append(enzyme(f"ck{i}", "2157-6", [3000, 2000, 1500][i], day, uln=None))
        resources.append(enzyme(f"ald{i}", "1761-6", [20, 19, 18][i], day, uln=7.6))
    result = evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    codes = [n["code"] for n in summary["notes"]]
    assert codes.count("enzyme-uln-unknown") == 1  # two follow-ups, one note
    # a measure missing from a comparison stays in missing_measures, not repeated as a note
    assert "missing-followup" not in codes and "missing-baseline" not in codes
