"""Azure's FHIR service truncating a search's ``_include``d resources.

microsoft/fhir-server (SqlServerSearchService, CosmosFhirDataStore): when the resources a page's
``_include`` brings exceed the server's limit, the page carries an OperationOutcome entry
(``search.mode = outcome``) with severity ``warning``, code ``incomplete`` and the diagnostics
"Included items are truncated. Use the related link in the response to retrieve all included
items." (release notes; the server's tests assert that text). The matches themselves are all
there; only included resources are missing, and fhirtis reads every Medication (and Device)
it lacks by id after the searches.

fhirtis read that outcome as "some of the patient's data may not have been returned": a false
"may be incomplete" warning on a pull that, after the reads by id, lacks nothing. The warning
now stays for what is still missing: a referenced resource that cannot be read by id is
reported (not-found) as before, and an outcome saying anything else about the matches still
gives the warning.
"""

from __future__ import annotations

from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, ivig_medication, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]
AZURE_TRUNCATED = (
    "Included items are truncated. Use the related link in the response to retrieve all "
    "included items."
)
MEDICATION = ivig_medication()


def _administration() -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/med1"},
        "effectiveDateTime": "2024-01-05T10:00:00Z",
    }


def _truncated(diagnostics: str, code: str = "incomplete") -> Any:
    """Answers the administrations' search with the match and an outcome, without the
    ``_include``d Medication (as Azure answers past its limit)."""

    def answer(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/MedicationAdministration"):
            return None
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": code, "diagnostics": diagnostics}],
        }
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "fullUrl": f"{BASE}/MedicationAdministration/ma1",
                        "resource": _administration(),
                        "search": {"mode": "match"},
                    },
                    {"resource": outcome, "search": {"mode": "outcome"}},
                ],
            },
        )

    return answer


async def _pull(httpx_mock: HTTPXMock, handler: Any, *, medication: bool = True) -> Any:
    others = [MEDICATION] if medication else []
    server = FakeServer(statement(), [patient()], others, before=[handler])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
    assert any(r.url.path.endswith("/MedicationAdministration") for r in server.requests)
    return pulled


async def test_a_truncated_include_read_by_id_gives_no_incomplete_warning(
    httpx_mock: HTTPXMock,
) -> None:
    pulled = await _pull(httpx_mock, _truncated(AZURE_TRUNCATED))
    assert pulled.resolve["Medication/med1"]["id"] == "med1"  # read by id
    assert [i for i in pulled.issues if i.code == "incomplete"] == []
    assert [i for i in pulled.issues if i.severity in ("error", "fatal")] == []


async def test_a_truncated_include_that_cannot_be_read_is_still_reported(
    httpx_mock: HTTPXMock,
) -> None:
    pulled = await _pull(httpx_mock, _truncated(AZURE_TRUNCATED), medication=False)
    assert "Medication/med1" not in pulled.resolve
    missing = [i for i in pulled.issues if i.code == "not-found"]
    assert missing and "Medication/med1" in missing[0].diagnostics


async def test_another_incomplete_outcome_still_warns(httpx_mock: HTTPXMock) -> None:
    pulled = await _pull(httpx_mock, _truncated("Search results were limited (cost)"))
    warnings = [i for i in pulled.issues if i.code == "incomplete"]
    assert len(warnings) == 1 and warnings[0].severity == "warning"
