"""Every PUT entry of a write plan's transaction Bundle has a ``fullUrl``.

FHIR R4 Bundle.entry.fullUrl (http://hl7.org/fhir/R4/bundle-definitions.html#Bundle.entry.fullUrl):
"The fullUrl element SHALL have a value except that: fullUrl can be empty on a POST ...;
Results from operations might involve resources that are not identified", and "if the fullUrl
is not a urn:uuid, the URL shall be version-independent URL consistent with the Resource.id".
For an update the resource's absolute URL on the server, ``[base]/Type/id``, is the value the
transaction-bundle profile describes ("the absolute URL server address"); where the server is
not known (the pure plan), a ``urn:uuid`` (which need not agree with the id)."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.plan import plan_writes, update_full_url
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder

Json = dict[str, Any]
BASE = "https://fhir.example.org/r4"


def _evaluate(doc: Json) -> PatientResult:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _stored_then_changed() -> tuple[PatientResult, dict[str, Json]]:
    """A responder's output as stored (ids x0…, version 1), and the result of a re-run in which
    one source changed (so one TIS is updated)."""
    result = _evaluate(responder())
    stored = {
        d.identifier: {
            **d.resource,
            "id": f"x{i}",
            "meta": {**d.resource.get("meta", {}), "versionId": "1"},
        }
        for i, d in enumerate(result.derived)
    }
    doc = responder()
    for e in doc["entry"]:
        if e["resource"]["id"] == "pga3":
            e["resource"]["valueQuantity"]["value"] = 1
    return _evaluate(doc), stored


def _check_bdl7(bundle: Json) -> None:
    """bdl-7: fullUrl unique in the Bundle (no entry here has a meta.versionId to tell apart)."""
    urls = [e["fullUrl"] for e in bundle["entry"] if "fullUrl" in e]
    assert len(urls) == len(set(urls))


def test_a_planned_update_has_the_resources_absolute_url_as_full_url() -> None:
    changed, stored = _stored_then_changed()
    plan = plan_writes(
        changed.derived,
        sorted(changed.data.used.values()),
        changed.evaluation.as_of,
        stored,
        base=BASE,
    )
    assert plan.bundle is not None
    puts = [e for e in plan.bundle["entry"] if e["request"]["method"] == "PUT"]
    assert len(puts) == 1
    (put,) = puts
    assert put["fullUrl"] == f"{BASE}/{put['request']['url']}"
    assert put["fullUrl"].endswith(f"/Observation/{put['resource']['id']}")
    _check_bdl7(plan.bundle)
    # the Provenance (no fullUrl: a POST) names it relatively, which resolves on the server
    # the Bundle is processed by: the same resource
    prov = plan.bundle["entry"][-1]
    assert prov["request"]["method"] == "POST"
    assert prov["resource"]["target"] == [{"reference": put["request"]["url"]}]


def test_without_a_server_a_planned_update_has_a_urn_uuid_full_url() -> None:
    changed, stored = _stored_then_changed()
    plan = changed.plan(stored)
    assert plan.bundle is not None
    (put,) = [e for e in plan.bundle["entry"] if e["request"]["method"] == "PUT"]
    (update,) = [w for w in plan.writes if w.action.value == "update"]
    assert put["fullUrl"] == update.derived.full_url
    assert put["fullUrl"].startswith("urn:uuid:")
    _check_bdl7(plan.bundle)


def test_every_entry_but_a_post_has_a_full_url() -> None:
    result = _evaluate(responder())
    stored = {
        d.identifier: {**d.resource, "id": f"x{i}", "meta": {"versionId": "1"}, "status": "x"}
        for i, d in enumerate(result.derived)
        if i % 2  # half stored (changed: updated), half new (created)
    }
    plan = plan_writes(
        result.derived,
        sorted(result.data.used.values()),
        result.evaluation.as_of,
        stored,
        base=BASE,
    )
    assert plan.bundle is not None
    methods = {e["request"]["method"] for e in plan.bundle["entry"]}
    assert methods == {"POST", "PUT"}
    for e in plan.bundle["entry"]:
        if e["request"]["method"] != "POST":
            assert e.get("fullUrl"), e["request"]
    _check_bdl7(plan.bundle)


def test_a_server_at_the_root_of_its_host_gives_one_slash() -> None:
    """A base URL at a host's root (``normalize_base`` keeps its single ``/``)."""
    result = _evaluate(responder())
    d = result.derived[0]
    assert update_full_url(d, "x1", "http://fhir.example.org/") == (
        f"http://fhir.example.org/{d.resource_type}/x1"
    )
    assert update_full_url(d, "x1", BASE) == f"{BASE}/{d.resource_type}/x1"
