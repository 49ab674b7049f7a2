"""A searchset warning that says results were suppressed, whatever its IssueType.

InteliChart's FHIR API documents, among the OperationOutcomes it returns (fhirqa.intelichart.com/
Help/ErrorCodes: "Operation outcomes with a severity of 'Warning' do not prevent the operation
from executing. They are included in successful responses"), one answered with HTTP 200,
severity Warning, code Required, "Missing Required Coding": "Additional search results were
found but could not be compliantly expressed and have been suppressed." Oracle Health answers
with the same words under code ``suppressed`` (cerner/fhir.cerner.com,
lib/resources/example_json/r4_examples_document_reference.rb; tests/data/vendor/oracle/
observations-searchset-outcome.json), and its newer FHIR APIs (Oracle Health AI Application
Suite change log, "Search Bundle Error Handling") leave noncompliant resources out of a search
Bundle with "a generic inline OperationOutcome ... to inform users about the omitted
resources".

fhirtis told a searchset outcome that withholds matches only by its IssueType (``suppressed``,
``security``, ``too-costly``, ...), its severity (error, fatal) or Epic's own 4119, so this
warning, coded ``required``, was read as no warning at all: an IVIG administration (or a DVT)
the server could not express was missing and the evaluation said nothing (clinical
specification, preamble: "Never guess silently"; README: a searchset's own OperationOutcome
"that says matches were withheld ... gives one ``incomplete`` warning"). A warning or
information issue whose text says results were suppressed, withheld or omitted now gives that
warning too. Outcomes that only say nothing matched, or that a parameter or the ``_include``d
resources were cut, still give none.
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import partial_results, pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, ivig_medication, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]

INTELICHART_SUPPRESSED = (
    "Additional search results were found but could not be compliantly expressed and have "
    "been suppressed."
)


def _outcome(severity: str, code: str, text: str, *, where: str = "details") -> Json:
    issue: Json = {"severity": severity, "code": code}
    if where == "details":
        issue["details"] = {"text": text}
    else:
        issue["diagnostics"] = text
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@pytest.mark.parametrize("where", ["details", "diagnostics"])
def test_a_warning_that_results_were_suppressed_says_incomplete(where: str) -> None:
    issues = partial_results([_outcome("warning", "required", INTELICHART_SUPPRESSED, where=where)])
    assert len(issues) == 1
    (issue,) = issues
    assert issue.severity == "warning" and issue.code == "incomplete"
    assert INTELICHART_SUPPRESSED not in issue.diagnostics  # the server's words are not copied


@pytest.mark.parametrize(
    "text",
    [
        "2 resources were omitted from this search Bundle: they could not be expressed",
        "Some results were withheld.",
    ],
)
def test_omitted_or_withheld_results_say_incomplete(text: str) -> None:
    assert len(partial_results([_outcome("information", "informational", text)])) == 1


@pytest.mark.parametrize(
    "outcome",
    [
        # Epic 4101 (api.enablemyhealth.com/Errors), R4's bundle-search-warning example
        _outcome("warning", "processing", "Resource request returns no results."),
        _outcome("warning", "not-found", "There is no matching patient for MRN 123456"),
        # Azure's FHIR service: a parameter ignored (lenient handling), its _include cut short
        _outcome(
            "warning",
            "not-supported",
            "The search parameter 'clinical-status' is not supported for resource type "
            "'Condition'.",
            where="diagnostics",
        ),
        _outcome(
            "warning",
            "incomplete",
            "Included items are truncated. Use the related link in the response to retrieve "
            "all included items.",
            where="diagnostics",
        ),
    ],
)
def test_outcomes_that_withhold_nothing_still_say_nothing(outcome: Json) -> None:
    assert partial_results([outcome]) == []


def _administration() -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/med1"},
        "effectiveDateTime": "2024-01-05T10:00:00Z",
        "dosage": {"dose": {"value": 35, "unit": "g", "system": "http://unitsofmeasure.org"}},
    }


async def test_a_pull_whose_search_says_results_were_suppressed_warns(
    httpx_mock: HTTPXMock,
) -> None:
    """The InteliChart shape on the MedicationAdministration search: the administration the
    server could express is read, and the run says the rest may be missing."""
    suppressed = _outcome("warning", "required", INTELICHART_SUPPRESSED)

    server = FakeServer(statement(), [patient(), _administration()], [ivig_medication()])
    original = server.search

    def search(rtype: str, params: Any) -> Json:
        page = original(rtype, params)
        if rtype == "MedicationAdministration":
            page["entry"].append({"resource": suppressed, "search": {"mode": "outcome"}})
        return page

    server.search = search  # type: ignore[method-assign]
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
    assert "MedicationAdministration/ma1" in pulled.resolve
    assert not [r for _, r in pulled.resources if r.get("resourceType") == "OperationOutcome"]
    incomplete = [i for i in pulled.issues if i.code == "incomplete"]
    assert len(incomplete) == 1, pulled.issues
    assert incomplete[0].severity == "warning"
