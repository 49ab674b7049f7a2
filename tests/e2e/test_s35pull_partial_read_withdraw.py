"""Earlier output is not withdrawn on a read the server said was only part of the patient's data.

Epic answers a Condition search from a client not authorized for some Condition categories with
the matches it may return and a ``search.mode = outcome`` entry of severity ``warning``, code
``suppressed``: its 59204, "Client not authorized for Condition - Encounter Diagnosis ... Results
of this sub-type will not be returned" (the shape of tests/e2e/test_s24_search_outcomes.py,
after dotimplement/HealthChain's Epic sandbox transcript). A consent or security filter that
drops counted matches (HAPI FHIR's ConsentInterceptor, hapifhir/hapi-fhir#2012) says so only by
``Bundle.total`` (tests/io/test_s32pull_total_cut_off.py). Either way ``fhirtis run`` warns that
the data may be incomplete (code ``incomplete``), and evaluates what it read.

It then planned the conclusions the missing data would have drawn as "no longer derived" and
withdrew them: a DVT recorded as an encounter diagnosis, hidden from a less-privileged run (a
clinician's ``$myositis-evaluate write=true`` in pass-through mode, after a backend run that saw
it), deleted its ``tee-temporally-associated`` AdverseEvent and marked every
``infusion-rate-above-max`` DetectedIssue judged against the 3.3 mg/kg/min limit
``entered-in-error``. Clinical specification, preamble: "Never guess silently: where data does
not allow a rule to run, the result says so"; §7: changed *inputs* update in place. Data the
server withheld is no changed input: such a run leaves earlier output that it no longer draws
as it is, and reports each as not withdrawn, saying why. A complete read still withdraws
(tests/e2e/test_write_withdraw.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.fhir.plan import Action
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_faults import BundleRewriting, Forwarding, run_with
from tests.e2e.test_run import load, search
from tests.e2e.test_s24_search_outcomes import SUPPRESSED
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


class HideDvt(BundleRewriting):
    """Leaves ``Condition/dvt`` out of every Condition searchset (the server's ``total`` still
    counts it), and with ``outcome`` adds Epic's 59204 ``suppressed`` outcome entry."""

    def __init__(self, *, outcome: bool) -> None:
        super().__init__()
        self.outcome = outcome
        self.hidden = 0

    def rewrite(self, bundle: Json) -> None:
        entries = bundle.get("entry") or []
        if bundle.get("type") == "searchset" and "/Condition" in str(bundle.get("link")):
            kept = [e for e in entries if (e.get("resource") or {}).get("id") != "dvt"]
            self.hidden += len(entries) - len(kept)
            if self.outcome:
                kept.append({"resource": SUPPRESSED, "search": {"mode": "outcome"}})
            bundle["entry"] = kept
        for entry in bundle.get("entry") or []:
            inner = entry.get("resource")
            if isinstance(inner, dict) and inner.get("resourceType") == "Bundle":
                self.rewrite(inner)


def _live(base: str, rtype: str) -> list[str]:
    return sorted(
        str(r["id"])
        for r in search(base, rtype)
        if "derived" in str(r.get("identifier")) and r.get("status") != "entered-in-error"
    )


@pytest.mark.parametrize("outcome", [True, False], ids=["epic-suppressed", "total-cut-off"])
def test_a_read_the_server_said_was_partial_withdraws_nothing(
    fhir_server: FhirTestServer, fhir_base: str, outcome: bool
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    first = run_with(fhir_base, Forwarding())
    assert first.status is RunStatus.WRITTEN, first.error
    events, issues = _live(fhir_base, "AdverseEvent"), _live(fhir_base, "DetectedIssue")
    assert len(events) == 1 and issues  # the DVT's AdverseEvent, the rates above 3.3

    transport = HideDvt(outcome=outcome)
    dry = run_with(fhir_base, transport, write=False)
    assert transport.hidden
    assert dry.result is not None and dry.plan is not None
    assert [i for i in dry.result.issues if i.code == "incomplete"]  # it says so ...
    assert not [w for w in dry.plan.writes if w.action is Action.WITHDRAW]  # ... and plans none

    second = run_with(fhir_base, transport)
    assert second.status is not RunStatus.FAILED, second.error
    assert not [w for w in second.written if w.action is Action.WITHDRAW], second.written
    assert _live(fhir_base, "AdverseEvent") == events
    assert _live(fhir_base, "DetectedIssue") == issues
    held = [n for n in second.not_written if n.verb == "withdrawn"]
    assert {n.resource_type for n in held} == {"AdverseEvent", "DetectedIssue"}
    assert len(held) == len(events) + len(issues)
    assert all("only in part" in n.message() for n in held), held

    # the same data read in full again: nothing to withdraw, nothing left unsaid
    third = run_with(fhir_base, Forwarding())
    assert third.status in (RunStatus.UNCHANGED, RunStatus.WRITTEN), third.error
    assert not [n for n in third.not_written if n.verb == "withdrawn"]
    assert _live(fhir_base, "AdverseEvent") == events


def _unassessed(flag: Json) -> dict[str, str]:
    """The tee-risk Flag's ``tee-risk-unassessed`` extensions: factor code → reason."""
    out: dict[str, str] = {}
    for ext in flag.get("extension") or []:
        if not str(ext.get("url")).endswith("/tee-risk-unassessed"):
            continue
        parts = {e["url"]: e for e in ext.get("extension") or []}
        code = parts["factor"]["valueCodeableConcept"]["coding"][0]["code"]
        out[code] = parts["reason"]["valueString"]
    return out


def test_the_risk_flag_of_a_partial_read_says_what_it_could_not_assess(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The same Epic-shaped read updates the tee-risk Flag: without the hidden DVT it finds no
    factor, and the maximum rate becomes 4 mg/kg/min. It said so as if the Conditions had been
    read whole ("none found", only obesity not assessable). The factors the Conditions record
    are now named not assessable, with why (the ``tee-risk-unassessed`` extension, clinical
    spec §5.1 and preamble)."""
    load(fhir_base, responder(dvt_after_cycle=2))
    run_with(fhir_base, Forwarding())
    (before,) = search(fhir_base, "Flag")
    assert "thrombosis-history" not in _unassessed(before)

    partial = run_with(fhir_base, HideDvt(outcome=True))
    assert partial.status is not RunStatus.FAILED, partial.error
    (after,) = search(fhir_base, "Flag")
    unassessed = _unassessed(after)
    assert "thrombosis-history" in unassessed, after
    assert "Condition" in unassessed["thrombosis-history"]
    assert "only in part" in unassessed["thrombosis-history"]
    assert "advanced-age" not in unassessed  # the Patient was read whole
    assert "not assessable" in after["code"]["text"]

    # read whole again: the DVT is back, and nothing is said to be unassessable for it
    run_with(fhir_base, Forwarding())
    (whole,) = search(fhir_base, "Flag")
    assert "thrombosis-history" not in _unassessed(whole)
