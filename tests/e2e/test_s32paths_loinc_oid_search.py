"""Observations coded under LOINC's OID are read from a server as they are from a Bundle.

fhirtis reads a coding under the OID FHIR R4 gives LOINC (``urn:oid:2.16.840.1.113883.6.1``,
terminologies-systems.html), as FHIR converted from CDA carries it, as LOINC
(profiles/TERMINOLOGY.md, *Code system aliases*; CHANGELOG: "a body weight … coded so was not
read"). ``fhirtis evaluate`` and ``fhirtis cohort`` read every Observation of the patient and so
found a CK or a body weight so coded. ``fhirtis run``, ``$myositis-evaluate`` and the CDS service
search Observations by ``code`` tokens: a token ``system|code`` matches the system as stored
(R4 search.html#token), and only ``http://loinc.org`` was searched. The same patient's TIS was
complete offline and partial (enzyme missing) from the server, and its dosing weight was
unknown there.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fhirtis.fhir.codes import terminology
from fhirtis.fhir.needs import observation_code_groups, observation_codes
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.server import PatientRun, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load

Json = dict[str, Any]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "adult-responder.json"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"


def _with_loinc_oid() -> Json:
    text = EXAMPLE.read_text(encoding="utf-8").replace("http://loinc.org", LOINC_OID)
    doc: Json = json.loads(text)
    return doc


def _server(base: str, patient: str) -> PatientRun:
    async def go() -> PatientRun:
        async with FhirClient(FhirClientConfig(base_url=base, page_size=50)) as client:
            return await run_patient(client, patient, Settings(), write=False)

    return asyncio.run(go())


def _clinical(result: PatientResult) -> Json:
    """TIS per follow-up and g/kg per cycle, from the derived resources."""
    out: Json = {"tis": [], "cycles": []}
    for d in result.derived:
        r = d.resource
        if r["resourceType"] != "Observation":
            continue
        code = r["code"]["coding"][0]["code"]
        value = r.get("valueQuantity", {}).get("value", r.get("valueRange"))
        if code == "tis":
            out["tis"].append((r["effectivePeriod"]["end"], value))
        elif code == "ivig-cycle-dose":
            out["cycles"].append(value)
    out["tis"].sort()
    return out


def test_loinc_codes_are_searched_under_their_oid_too() -> None:
    terms = terminology()
    codes = observation_codes(terms)
    for code in ("2157-6", "29463-7", "8302-2", "39156-5"):
        assert ("http://loinc.org", code) in codes
        assert (LOINC_OID, code) in codes
    assert set().union(*observation_code_groups(terms).values()) == set(codes)


def test_oid_coded_observations_same_on_server_as_offline(fhir_base: str) -> None:
    doc = _with_loinc_oid()
    offline = _clinical(evaluate_bundle_bytes(json.dumps(doc).encode(), "b.json", Settings()))
    # as examples/expected/adult-responder.json: complete TIS (CK read), 2 g/kg each cycle
    assert offline["tis"][-1][1] == 80
    assert offline["cycles"] == [2, 2, 2, 2]
    load(fhir_base, doc)
    run = _server(fhir_base, "resp")
    assert run.result is not None, run.error
    assert _clinical(run.result) == offline
