"""A search answered 200 whose searchset says that matches may be missing, against the real engine.

R4 search.html#errors lets a server answer a search it executed in part with the matches it
could return and an ``OperationOutcome`` entry (``search.mode = outcome``). R4's IssueType
``suppressed``: "Some information was not or might not have been returned due to business
rules, consent or privacy rules, or access permission constraints"; ``too-costly``,
``incomplete``, ``throttled`` say the same of cost, completeness and load. A hidden DVT
Condition changes the TEE risk: the run must say that its data may be incomplete, as the Bundle
path does for the same searchset (fhirtis.fhir.bundle), and never count the outcome as data.

An outcome that only says the search matched nothing is not such a warning: Epic's 4101
"Resource request returns no results." (severity warning; api.enablemyhealth.com/Errors, as
the test server's ``epic-like`` profile sends it) and R4's own example
(hl7.org/fhir/R4/bundle-search-warning.json.html: warning, ``not-found``, "There is no
matching patient for MRN 123456").
"""

from __future__ import annotations

from typing import Any

from fhirtis.pipeline.server import PatientRun, RunStatus
from tests.e2e.test_faults import BundleRewriting, Forwarding, run_with
from tests.e2e.test_run import load
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]

# Epic's 59204, as an Epic sandbox answers a Condition search for a client not authorized for
# some Condition categories (dotimplement/HealthChain, docs/cookbook/multi_ehr_aggregation.md:
# "Client not authorized for Condition - Encounter Diagnosis", severity warning, suppressed)
SUPPRESSED = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "warning",
            "code": "suppressed",
            "details": {
                "coding": [
                    {
                        "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369",
                        "code": "59204",
                        "display": "The authenticated client's search request applies to a "
                        "sub-resource that the client is not authorized for. Results of this "
                        "sub-type will not be returned.",
                    }
                ]
            },
            "diagnostics": "Client not authorized for Condition - Encounter Diagnosis (p1)",
        }
    ],
}
NO_RESULTS = {  # Epic's 4101, as the epic-like profile sends it
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "warning",
            "code": "processing",
            "details": {
                "coding": [
                    {
                        "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369",
                        "code": "4101",
                        "display": "Resource request returns no results.",
                    }
                ],
                "text": "Resource request returns no results.",
            },
        }
    ],
}


class AddOutcome(BundleRewriting):
    """Adds ``outcome`` as a ``search.mode = outcome`` entry to every searchset of ``rtype``
    (alone, or inside a batch response)."""

    def __init__(self, rtype: str, outcome: Json) -> None:
        super().__init__()
        self.rtype = rtype
        self.outcome = outcome
        self.added = 0

    def rewrite(self, bundle: Json) -> None:
        if bundle.get("type") == "searchset":
            self_link = next(
                (x["url"] for x in bundle.get("link") or [] if x.get("relation") == "self"), ""
            )
            if f"/{self.rtype}?" in self_link or f"/{self.rtype}/_search" in self_link:
                entry = {"resource": self.outcome, "search": {"mode": "outcome"}}
                bundle.setdefault("entry", []).append(entry)
                self.added += 1
        for entry in bundle.get("entry") or []:
            inner = entry.get("resource")
            if isinstance(inner, dict) and inner.get("resourceType") == "Bundle":
                self.rewrite(inner)


def _incomplete(run: PatientRun) -> list[Any]:
    assert run.result is not None, run.error
    return [i for i in run.result.issues if i.code == "incomplete"]


def test_a_search_that_says_matches_were_suppressed_is_reported_incomplete(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = run_with(fhir_base, Forwarding(), write=False)
    assert plain.status is RunStatus.DRY_RUN, plain.error
    assert not _incomplete(plain)

    transport = AddOutcome("Condition", SUPPRESSED)
    shaped = run_with(fhir_base, transport, write=False)
    assert transport.added
    assert shaped.status is RunStatus.DRY_RUN, shaped.error
    assert shaped.result is not None and plain.result is not None
    # the outcome is no data: the evaluation is the same, but for the risk factors the
    # Conditions may show that were not found, now not assessable (audit s35pull)
    got, want = shaped.result.evaluation, plain.result.evaluation
    assert (got.course, got.exposure, got.population) == (
        want.course,
        want.exposure,
        want.population,
    )
    assert got.thrombosis.current.factors == want.thrombosis.current.factors

    def findings(e: Any) -> list[tuple[str, Any, Any]]:
        return [
            (f.administration_source, f.rate_mg_kg_min, f.limit_mg_kg_min)
            for f in e.thrombosis.rate_findings
        ]

    assert findings(got) == findings(want)  # the same limits: only their notes say more
    added = set(got.thrombosis.current.unassessed) - set(want.thrombosis.current.unassessed)
    assert added and all("Condition records only in part" in u.reason for u in added), added
    warnings = _incomplete(shaped)
    assert len(warnings) == 1, warnings  # once, however many pages carried it
    (warning,) = warnings
    assert warning.severity == "warning"
    assert "suppressed" in warning.diagnostics
    assert "p1" not in warning.diagnostics  # the server's words are not copied
    others = [i for i in shaped.result.issues if i.code != "incomplete"]
    assert others == plain.result.issues


def test_an_outcome_that_only_says_no_results_is_not_a_warning(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = run_with(fhir_base, Forwarding(), write=False)
    transport = AddOutcome("Device", NO_RESULTS)
    shaped = run_with(fhir_base, transport, write=False)
    assert transport.added
    assert shaped.result is not None and plain.result is not None
    assert shaped.result.issues == plain.result.issues
