"""An EHR's AdverseEvent re-recorded under a new id, written back to a server that enforces
referential integrity on delete, as stock HAPI FHIR JPA does.

HAPI's ``JpaStorageSettings.enforceReferentialIntegrityOnDelete`` defaults to true: a DELETE of
a resource another resource references is refused 409 Conflict, "HAPI-0550: Unable to delete
AdverseEvent/x because at least one resource has a reference to this resource. First reference
found was resource Provenance/y in path Provenance.target" (hapifhir/hapi-fhir issue #7160;
``DeleteConflictService``). fhirtis's own Provenance names every AdverseEvent it wrote, so the
old AdverseEvent of a re-recorded event can never be deleted there.

What an integrator expects (R4 http.html#update: an update keeps the logical id; the old
AdverseEvent and its successor describe the same event, same subject, onset and coding): after
one run the server holds ONE fhirtis AdverseEvent for the event, naming the new source; a
re-run writes nothing (idempotent, R4 http.html "Conditional create ... idempotent").
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, search
from tests.e2e.test_s24_hapi_conflicts import CASES, HapiLike
from tests.e2e.test_s29a_replaced_event import _ehr_event, _ours
from tests.e2e.test_write_withdraw import run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


def _as_written(old: Json) -> Json:
    return old


def _date_with_z(old: Json) -> Json:
    """the same instant, ``Z`` for ``+00:00`` (R4 datatypes.html#dateTime allows both; a server
    may store or return either)"""
    assert old["date"].endswith("+00:00"), old["date"]
    return {**old, "date": old["date"].removesuffix("+00:00") + "Z"}


def _codings_displayed(old: Json) -> Json:
    """each coding given a ``display`` (a server or a terminology step fills it in; the token
    search ``event=system|code`` still matches, R4 search.html#token)"""

    def displayed(concept: Json) -> Json:
        codings = [{**c, "display": "as the server says"} for c in concept.get("coding", [])]
        return {**concept, "coding": codings}

    category = [displayed(c) for c in old.get("category", [])]
    return {**old, "event": displayed(old["event"]), "category": category}


STORED_FORMS = {f.__name__.lstrip("_"): f for f in (_as_written, _date_with_z, _codings_displayed)}


@pytest.mark.parametrize("stored_form", sorted(STORED_FORMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_replaced_ehr_event_on_hapi_converges_in_one_run(
    fhir_server: FhirTestServer, fhir_base: str, case: str, stored_form: str
) -> None:
    profile, learn = CASES[case]
    patient = responder()
    patient["entry"].append({"resource": _ehr_event("ehr-ae-1")})
    load(fhir_base, patient)
    fhir_server.set_profile(profile)
    first = run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn)
    assert first.status is RunStatus.WRITTEN, first.error
    fhir_server.set_profile("full")
    (old,) = _ours(fhir_base)
    # the server holds it in another form than fhirtis sent, equal for its searches
    stored = STORED_FORMS[stored_form](old)
    if stored is not old:
        httpx.put(f"{fhir_base}/AdverseEvent/{old['id']}", json=stored).raise_for_status()

    # the EHR replaces its record: the old one deleted, the same event entered again
    httpx.delete(f"{fhir_base}/AdverseEvent/ehr-ae-1").raise_for_status()
    httpx.put(f"{fhir_base}/AdverseEvent/ehr-ae-2", json=_ehr_event("ehr-ae-2")).raise_for_status()
    fhir_server.set_profile(profile)

    hapi = HapiLike(fhir_base)
    second = run_once(fhir_base, transport=hapi, learn=learn)
    assert second.status is RunStatus.WRITTEN, second.error
    assert not second.unconfirmed, second.unconfirmed
    assert not second.not_written, [n.message() for n in second.not_written]
    assert hapi.conflicts == []  # no delete the server refuses
    fhir_server.set_profile("full")
    (now,) = _ours(fhir_base)  # one AdverseEvent for the event, naming its new source
    assert now["identifier"]["value"] != old["identifier"]["value"]
    named = {t["reference"] for p in search(fhir_base, "Provenance") for t in p["target"]}
    assert f"AdverseEvent/{now['id']}" in named

    fhir_server.set_profile(profile)
    fhir_server.reset_stats()
    third = run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn)
    assert third.status is RunStatus.UNCHANGED, (third.status, third.error, third.unconfirmed)
    assert fhir_server.stats()["committed_writes"] == 0
