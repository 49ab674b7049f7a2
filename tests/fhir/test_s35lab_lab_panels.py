"""Muscle enzymes sent as the components of one laboratory panel Observation (clinical spec §1).

- Each component carries its own reference range (R4 ``Observation.component.referenceRange``):
  its ULN comes from that range ("ULN comes from ``Observation.referenceRange.high``"), and the
  most abnormal enzyme is chosen by value ÷ that ULN. The component's range was dropped: each
  enzyme had no ULN, and with several enzymes at baseline none could be ranked, so the enzyme
  measure was missing and the TIS partial.
- One component that cannot be used (a censored ``<6 U/L``) is excluded by itself, with the
  reason; the panel's other enzymes are still read. It excluded the whole panel part-way: the
  enzymes after it were dropped (a wrong enzyme chosen, or none), those before it kept.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.facts import Instrument
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    PATIENT,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.test_extract import _extract

D = Decimal


def _component(
    loinc: str, value: int, high: int | None, comparator: str | None = None
) -> dict[str, Any]:
    comp: dict[str, Any] = {
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "valueQuantity": qty(value, "U/L"),
    }
    if comparator is not None:
        comp["valueQuantity"]["comparator"] = comparator
    if high is not None:
        comp["referenceRange"] = [{"high": qty(high, "U/L")}]
    return comp


def _panel(
    oid: str, day: str, ck: int, ast: int, first: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A chemistry panel (LOINC 24325-3 hepatic function panel) whose enzymes are components,
    each with its own referenceRange, in the shape of the HL7 R4 example
    observation-example-f205-egfr (component[].referenceRange)."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "24325-3"}]},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": day,
        "component": [
            *(first or []),
            _component("2157-6", ck, 200),
            _component("1920-8", ast, 40),
        ],
    }


def test_a_panel_components_own_reference_range_is_its_uln() -> None:
    """Published shape: HL7 R4 observation-example-f205-egfr (components, each with its own
    referenceRange). CK 600 (ULN 200) and AST 400 (ULN 40) as components: each keeps its ULN."""
    data = _extract(patient(), _panel("lab0", "2024-01-02", 600, 400))
    ulns = {m.instrument: (m.value, m.uln) for m in data.measures}
    assert ulns == {Instrument.CK: (D(600), D(200)), Instrument.AST: (D(400), D(40))}
    assert data.issues == []


def test_a_components_range_wins_over_the_panels() -> None:
    """A range on the panel itself is the panel's (R4: referenceRange applies to the value of
    the Observation it is on); the component's own range is the component's ULN, and a
    component without one has no ULN from the panel's."""
    panel = _panel("lab0", "2024-01-02", 600, 400)
    panel["referenceRange"] = [{"high": qty(999, "U/L")}]
    del panel["component"][1]["referenceRange"]
    data = _extract(patient(), panel)
    ulns = {m.instrument: m.uln for m in data.measures}
    assert ulns == {Instrument.CK: D(200), Instrument.AST: None}


def test_a_censored_component_is_excluded_alone_and_the_other_enzymes_are_read() -> None:
    """Published shape: HL7 R4 observation-example-f205-egfr (components with their own
    referenceRange), with an ALT below the detection limit sent as ``<6 U/L``, a Quantity with
    ``comparator`` as HL7 v2-to-FHIR maps an OBX SN value ``<^6``. The ALT is excluded with the
    reason; the CK and AST after it are read (they were dropped with the whole panel)."""
    alt = _component("1742-6", 6, 40, comparator="<")
    data = _extract(patient(), _panel("lab0", "2024-01-02", 600, 400, first=[alt]))
    ulns = {m.instrument: (m.value, m.uln) for m in data.measures}
    assert ulns == {Instrument.CK: (D(600), D(200)), Instrument.AST: (D(400), D(40))}
    [issue] = data.issues
    assert issue.severity == "error"
    assert issue.expression == "Bundle.entry[1].resource.component[0].valueQuantity.comparator"
    assert issue.diagnostics.startswith("Observation/lab0 component 0 excluded: ")


def _core(i: int, day: str) -> list[dict[str, Any]]:
    return [
        obs(f"pga{i}", "pga", 6, "cm", day),
        obs(f"ptga{i}", "ptga", 6, "cm", day),
        obs(f"mmt{i}", "mmt8-150", 100, "{score}", day),
        obs(f"haq{i}", "haq-di", 1.5, "{score}", day),
        obs(f"em{i}", "extramuscular", 5, "cm", day),
    ]


@pytest.mark.parametrize("censored_alt", [False, True])
def test_the_most_abnormal_enzyme_is_chosen_from_the_components_ranges(censored_alt: bool) -> None:
    """Published shape: HL7 R4 observation-example-f205-egfr (component[].referenceRange), as a
    hepatic function panel. Baseline CK 600/200 = 3×ULN, AST 400/40 = 10×ULN: AST is the most
    abnormal enzyme (spec §1). Follow-up AST 300: (400 − 300)/400 = 25% → band >15–25 → 5 points
    (spec §2.2); the other measures are unchanged (0). TIS 5, complete. (Was: enzyme missing,
    "none has an upper limit of normal", TIS partial [0, 7.5].) With an ALT ``<6 U/L`` listed
    first in each panel, the same (was: no enzyme read at all, TIS partial)."""
    first = [_component("1742-6", 6, 40, comparator="<")] if censored_alt else None
    resources = [
        patient(),
        condition("dm", SCT, "396230008", "2020-01-01"),
        medication(),
        *_core(0, "2024-01-02"),
        _panel("lab0", "2024-01-02", 600, 400, first),
        administration("a1", "2024-01-03T09:00:00Z", "2024-01-03T13:00:00Z", dose=qty(140, "g")),
        *_core(1, "2024-04-02"),
        _panel("lab1", "2024-04-02", 150, 300, first),
    ]
    raw = json.dumps(bundle(*resources)).encode()
    result = evaluate_bundle_bytes(raw, "panel.json", Settings())
    record: dict[str, Any] = json.loads(
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    )
    (follow_up,) = record["assessments"]
    assert follow_up["measures"]["enzyme"]["percent_improvement"] == 25
    assert follow_up["measures"]["enzyme"]["score"] == 5
    assert (follow_up["tis"], follow_up["tis_lower"], follow_up["tis_upper"]) == (5, 5, 5)
