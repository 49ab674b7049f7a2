"""Epic's searchset warning that the answer may not hold the whole record.

Epic's FHIR error codes (api.enablemyhealth.com/Errors, the list tests/e2e/
test_s24_search_outcomes.py cites for 4101): "4119 | Warning | Additional data may be present
for patient." Epic sends it as a ``search.mode = outcome`` entry of severity ``warning`` and code
``processing``, its own code in ``details.coding`` under an Epic OID, with the text "This
response includes information available to the authorized user at the time of the request. It
may not contain the entire record available in the system." (the response quoted in
onc-healthit/inferno-program issue #229, an Epic Immunization search).

fhirtis read it as it reads 4101 ("Resource request returns no results.", same severity and
code): as no warning at all, so a search that Epic says may lack part of the record (a DVT the
user may not see) was evaluated as complete. R4 IssueType ``suppressed`` ("not or might not
have been returned due to ... access permission constraints") already gives the warning; Epic's
4119 says the same and now gives it too. 4101 still does not.
"""

from __future__ import annotations

from typing import Any

from fhirtis.pipeline.pull import partial_results

Json = dict[str, Any]
EPIC_OID = "urn:oid:1.2.840.114350.1.13.5325.1.7.2.657369"  # as in inferno-program #229
TEXT_4119 = (
    "This response includes information available to the authorized user at the time of the "
    "request. It may not contain the entire record available in the system."
)


def _epic(code: str, text: str) -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "processing",
                "details": {
                    "coding": [{"system": EPIC_OID, "code": code, "display": text}],
                    "text": text,
                },
            }
        ],
    }


def test_epic_4119_says_the_results_may_be_incomplete() -> None:
    issues = partial_results([_epic("4119", TEXT_4119)])
    assert len(issues) == 1
    assert issues[0].severity == "warning" and issues[0].code == "incomplete"
    assert TEXT_4119 not in issues[0].diagnostics  # the server's words are not copied


def test_epic_4101_no_results_is_still_no_warning() -> None:
    assert partial_results([_epic("4101", "Resource request returns no results.")]) == []


def test_4119_under_another_system_is_not_epics() -> None:
    other = _epic("4119", "something else")
    other["issue"][0]["details"]["coding"][0]["system"] = "http://example.org/codes"
    assert partial_results([other]) == []
