"""``answer_problem``: the one rule by which ``fhirtis run`` (fhirtis/pipeline/pull.py) and the
CDS service (fhirtis/api/cds_hooks/fetch.py) judge a 2xx answer. R4 http.html: a read answers
the resource it names, a search a Bundle of type ``searchset`` (FHIR's search-set-bundle
profile: ``Bundle.type`` pattern ``searchset``). Redox's FHIR API answers a query the EHR behind
it failed with 200 and an OperationOutcome (docs.redoxengine.com, "Responding to queries",
partial error)."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.io import answer_problem
from tests.io._support import REDOX_FAILED

Json = dict[str, Any]
PATIENT: Json = {"resourceType": "Patient", "id": "p1"}


@pytest.mark.parametrize(
    ("body", "read_of", "problem"),
    [
        ({"resourceType": "Bundle", "type": "searchset"}, None, None),
        ({"resourceType": "Bundle"}, None, None),  # type absent: taken as a searchset
        (PATIENT, "Patient", None),
        (REDOX_FAILED, None, "an OperationOutcome, not a searchset Bundle"),
        (REDOX_FAILED, "Patient", "an OperationOutcome, not a Patient"),
        (
            {"resourceType": "Bundle", "type": "collection"},
            None,
            "something else, not a searchset Bundle",
        ),
        (
            {"resourceType": "Bundle", "type": "searchset"},
            "Patient",
            "something else, not a Patient",
        ),
        (PATIENT, None, "something else, not a searchset Bundle"),
        ({}, "Medication", "something else, not a Medication"),
    ],
)
def test_an_answer_is_what_was_asked_or_says_why_not(
    body: Json, read_of: str | None, problem: str | None
) -> None:
    assert answer_problem(body, read_of) == problem
