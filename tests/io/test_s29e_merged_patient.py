"""A Patient read that answers the record of a merged (combined) patient.

Oracle Health Millennium: "When the requested patient record is combined into another record,
an inactive patient entry is returned with a link to the current patient entry. Entries for
combined patients are only returned when retrieving the entries directly by ID. They are not
returned when searching with other parameters." (cerner/fhir.cerner.com,
content/millennium/r4/base/individuals/patient.md, "Patient Combine Example"; the answer is
``R4_COMBINED_PATIENT_ENTRY`` in lib/resources/example_json/r4_examples_patient.rb, copied below).
R4 patient.html, Patient.link.type ``replaced-by``: "The patient resource containing this link
must no longer be used. The link points forward to another patient resource that must be used
in lieu of the patient resource that contains this link."

fhirtis evaluated such a record as the patient: its data had moved to the surviving record, so
the searches found nothing, and the patient was reported evaluated (no IVIG, no thrombosis, no
birth date) with exit 0; a ``--write`` run would write those results onto the retired record.
The patient now fails, naming the record that replaced it; Epic's redirect for a merged Patient
already failed so ("a redirect, not followed").
"""

from __future__ import annotations

from typing import Any

from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, statement
from tests.io._support import BASE

Json = dict[str, Any]
DAR = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}

#: cerner/fhir.cerner.com lib/resources/example_json/r4_examples_patient.rb
COMBINED: Json = {
    "resourceType": "Patient",
    "id": "12742633",
    "meta": {"versionId": "0"},
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p><b>Patient</b></p><p><b>Status</b>:'
        " Inactive</p><p><b>Replaced By</b>: Patient/12724067</p></div>",
    },
    "identifier": [{"extension": [DAR]}],
    "active": False,
    "name": [{"extension": [DAR]}],
    "_gender": {"extension": [DAR]},
    "link": [{"other": {"reference": "Patient/12724067"}, "type": "replaced-by"}],
}


def _patient(**extra: Any) -> Json:
    return {
        "resourceType": "Patient",
        "id": "12742633",
        "active": True,
        "gender": "female",
        "birthDate": "1980-01-01",
        **extra,
    }


async def _run(patient: Json, httpx_mock: HTTPXMock) -> tuple[PatientRun, FakeServer]:
    server = FakeServer(statement(), [patient])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        run = await run_patient(client, "12742633", Settings())
    return run, server


async def test_a_combined_patient_is_not_evaluated(httpx_mock: HTTPXMock) -> None:
    run, _ = await _run(COMBINED, httpx_mock)
    assert run.status is RunStatus.FAILED, run.status
    assert run.result is None
    assert run.error is not None
    assert "Patient/12724067" in run.error and "replaced-by" in run.error, run.error


async def test_a_surviving_patient_that_replaces_another_is_evaluated(
    httpx_mock: HTTPXMock,
) -> None:
    survivor = _patient(link=[{"other": {"reference": "Patient/old"}, "type": "replaces"}])
    run, _ = await _run(survivor, httpx_mock)
    assert run.status is not RunStatus.FAILED, run.error
    assert run.result is not None


async def test_a_patient_that_refers_to_another_record_is_evaluated(
    httpx_mock: HTTPXMock,
) -> None:
    # ``refer``/``seealso``: the record is in use and valid (R4 link-type)
    patient = _patient(link=[{"other": {"reference": "Patient/other"}, "type": "seealso"}])
    run, _ = await _run(patient, httpx_mock)
    assert run.status is not RunStatus.FAILED, run.error
    assert run.result is not None
