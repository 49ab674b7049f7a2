"""The CDS service finds the dosing weight that ``fhirtis evaluate`` finds.

A body weight recorded only as a component of a vital-signs panel (LOINC 85353-1), or coded
under LOINC's OID (``urn:oid:2.16.840.1.113883.6.1``), is read from a Bundle; the service's
prefetch templates and its reads from ``fhirServer`` search Observations by ``code`` and asked
for neither, so the rate card said the mL/h "cannot be computed" (no weight) for a patient
whose weight fhirtis reads on the other paths. See tests/e2e/test_s32paths_*.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.api.test_cds_hooks import SIGN, call, card_with, cards_of, cds, ivig_order
from tests.e2e.test_run import load
from tests.fhir.builders import qty

Json = dict[str, Any]

DATA = Path(__file__).resolve().parents[1] / "data"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"


def _body(patient_id: str, server: str) -> Json:
    order = ivig_order(rate=qty(300, "mL/h"))
    order["subject"] = {"reference": f"Patient/{patient_id}"}
    body = call([order], None, server=server, token="cds-token")
    body["context"]["patientId"] = patient_id
    return body


async def _max_rate_card(fhir_base: str, doc: Json) -> str:
    load(fhir_base, doc)
    patient_id = next(
        e["resource"]["id"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, _body(patient_id, fhir_base)))
    summary: str = card_with(cards, "Max IVIG rate")["summary"]
    return summary


async def test_weight_in_a_vital_signs_panel_gives_the_ml_h(fhir_base: str) -> None:
    doc = json.loads((DATA / "vitals-panel-components.json").read_text(encoding="utf-8"))
    assert await _max_rate_card(fhir_base, doc) == (
        "Max IVIG rate 4 mg/kg/min = 172 mL/h for 72 kg of 100 mg/mL"
    )


async def test_weight_coded_under_the_loinc_oid_gives_the_ml_h(fhir_base: str) -> None:
    text = (DATA / "vitals-panel-hasmember.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    # the weight as its own Observation (not in a panel), coded under LOINC's OID
    for entry in doc["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Observation" and "hasMember" in r:
            weight = next(c for c in r["contained"] if c["id"] == "wt")
            entry["resource"] = {**weight, "id": "wt-oid", "subject": r["subject"]}
    doc = json.loads(json.dumps(doc).replace("http://loinc.org", LOINC_OID))
    assert await _max_rate_card(fhir_base, doc) == (
        "Max IVIG rate 4 mg/kg/min = 216 mL/h for 90 kg of 100 mg/mL"
    )
