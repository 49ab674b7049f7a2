"""Checks that the FHIR test server behaves as the FHIR R4 REST specification says.

These tests pin down the server behaviour the other end-to-end tests rely on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
MRN = "urn:oid:1.2.36.146.595.217.0.1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture
def client(fhir_base: str) -> Iterator[httpx.Client]:
    """A FHIR JSON client on an empty server."""
    with httpx.Client(base_url=f"{fhir_base}/", headers={"Accept": FHIR_JSON}, timeout=10.0) as c:
        yield c


def _body(response: httpx.Response) -> Json:
    data: Json = response.json()
    return data


def _send(
    client: httpx.Client,
    method: str,
    url: str,
    resource: Json,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client.request(
        method,
        url,
        content=json.dumps(resource),
        headers={"Content-Type": FHIR_JSON, **(headers or {})},
    )


def _create(client: httpx.Client, resource: Json) -> Json:
    response = _send(client, "POST", resource["resourceType"], resource)
    assert response.status_code == 201, response.text
    return _body(response)


def _patient(mrn: str, family: str = "Doe") -> Json:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": ["Jane"]}],
    }


def _observation(code: str, patient_ref: str, value: float = 1.0) -> Json:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": patient_ref},
        "valueQuantity": {
            "value": value,
            "unit": "U/L",
            "system": "http://unitsofmeasure.org",
            "code": "U/L",
        },
    }


def _medication(code: str) -> Json:
    return {"resourceType": "Medication", "code": {"coding": [{"system": RXNORM, "code": code}]}}


def _administration(medication_ref: str, patient_ref: str) -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationReference": {"reference": medication_ref},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
    }


def _match_ids(bundle: Json) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _search_ids(client: httpx.Client, resource_type: str, params: dict[str, str]) -> set[str]:
    response = client.get(resource_type, params=params)
    assert response.status_code == 200, response.text
    return set(_match_ids(_body(response)))


def _link(bundle: Json, relation: str) -> str | None:
    for link in bundle.get("link", []):
        if link["relation"] == relation:
            url: str = link["url"]
            return url
    return None


def _transaction(entries: list[Json], bundle_type: str = "transaction") -> Json:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


# --------------------------------------------------------------------------------------------
# read / vread / create / update / delete


def test_create_read_vread_and_etags(client: httpx.Client, fhir_base: str) -> None:
    created = _send(client, "POST", "Patient", {**_patient("1"), "id": "client-chosen"})
    assert created.status_code == 201
    patient = _body(created)
    pid = patient["id"]
    assert pid != "client-chosen"  # R4: the server ignores an id supplied on create
    assert patient["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == f"{fhir_base}/Patient/{pid}/_history/1"
    assert created.headers["Content-Type"].startswith(FHIR_JSON)
    assert "Last-Modified" in created.headers

    read = client.get(f"Patient/{pid}")
    assert read.status_code == 200
    assert read.headers["ETag"] == 'W/"1"'
    assert _body(read) == patient

    updated = _send(client, "PUT", f"Patient/{pid}", {**patient, "gender": "female"})
    assert updated.status_code == 200
    assert updated.headers["ETag"] == 'W/"2"'
    assert _body(updated)["meta"]["versionId"] == "2"

    version1 = client.get(f"Patient/{pid}/_history/1")
    assert version1.status_code == 200
    assert version1.headers["ETag"] == 'W/"1"'
    assert "gender" not in _body(version1)
    assert _body(client.get(f"Patient/{pid}/_history/2"))["gender"] == "female"
    assert client.get(f"Patient/{pid}/_history/3").status_code == 404

    history = _body(client.get(f"Patient/{pid}/_history"))
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]

    not_modified = client.get(f"Patient/{pid}", headers={"If-None-Match": 'W/"2"'})
    assert not_modified.status_code == 304

    missing = client.get("Patient/does-not-exist")
    assert missing.status_code == 404
    assert _body(missing)["resourceType"] == "OperationOutcome"


def test_update_as_create_and_no_op_update(client: httpx.Client, fhir_base: str) -> None:
    resource = {**_patient("2"), "id": "pat-2"}
    first = _send(client, "PUT", "Patient/pat-2", resource)
    assert first.status_code == 201
    assert first.headers["Location"] == f"{fhir_base}/Patient/pat-2/_history/1"
    same = _send(client, "PUT", "Patient/pat-2", resource)
    assert same.status_code == 200
    assert same.headers["ETag"] == 'W/"1"'  # unchanged content: no new version

    wrong_id = _send(client, "PUT", "Patient/pat-2", {**resource, "id": "other"})
    assert wrong_id.status_code == 400


def test_delete_then_read_is_gone(client: httpx.Client) -> None:
    pid = _create(client, _patient("3"))["id"]
    assert client.delete(f"Patient/{pid}").status_code in (200, 204)
    assert client.get(f"Patient/{pid}").status_code == 410
    assert client.delete(f"Patient/{pid}").status_code in (200, 204)  # idempotent
    assert _search_ids(client, "Patient", {"identifier": f"{MRN}|3"}) == set()
    assert client.get(f"Patient/{pid}/_history/1").status_code == 200


def test_invalid_resource_is_rejected(client: httpx.Client) -> None:
    response = _send(client, "POST", "Observation", {"resourceType": "Observation", "foo": 1})
    assert response.status_code == 400
    assert _body(response)["resourceType"] == "OperationOutcome"
    bad_code = _administration("Medication/x", "Patient/y") | {"status": "done"}
    response = _send(client, "POST", "MedicationAdministration", bad_code)
    assert response.status_code == 400  # not in the required value set medication-admin-status
    assert client.get("Observation").json().get("total") == 0


# --------------------------------------------------------------------------------------------
# conditional create / If-Match


def test_conditional_create_does_not_duplicate(client: httpx.Client) -> None:
    condition = {"If-None-Exist": f"identifier={MRN}|100"}
    first = _send(client, "POST", "Patient", _patient("100"), condition)
    assert first.status_code == 201
    second = _send(client, "POST", "Patient", _patient("100", family="Other"), condition)
    assert second.status_code == 200
    assert _body(second)["id"] == _body(first)["id"]
    assert _body(second)["name"][0]["family"] == "Doe"  # the existing resource, untouched
    assert _search_ids(client, "Patient", {"identifier": f"{MRN}|100"}) == {_body(first)["id"]}

    _create(client, _patient("100"))  # now two patients share the identifier
    ambiguous = _send(client, "POST", "Patient", _patient("100"), condition)
    assert ambiguous.status_code == 412


def test_conditional_update(client: httpx.Client) -> None:
    url = f"Patient?identifier={MRN}|200"
    created = _send(client, "PUT", url, _patient("200"))
    assert created.status_code == 201
    updated = _send(client, "PUT", url, {**_patient("200"), "gender": "male"})
    assert updated.status_code == 200
    assert _body(updated)["id"] == _body(created)["id"]
    assert _body(updated)["meta"]["versionId"] == "2"


def test_if_match_version_check(client: httpx.Client) -> None:
    patient = _create(client, _patient("300"))
    pid = patient["id"]
    ok = _send(
        client, "PUT", f"Patient/{pid}", {**patient, "gender": "male"}, {"If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200
    assert ok.headers["ETag"] == 'W/"2"'

    stale = _send(
        client, "PUT", f"Patient/{pid}", {**patient, "gender": "female"}, {"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert _body(stale)["resourceType"] == "OperationOutcome"
    current = _body(client.get(f"Patient/{pid}"))
    assert current["gender"] == "male"
    assert current["meta"]["versionId"] == "2"


def test_json_patch(client: httpx.Client) -> None:
    pid = _create(client, _patient("400"))["id"]
    response = client.patch(
        f"Patient/{pid}",
        content=json.dumps([{"op": "add", "path": "/gender", "value": "female"}]),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 200
    assert _body(response)["gender"] == "female"
    assert response.headers["ETag"] == 'W/"2"'


# --------------------------------------------------------------------------------------------
# search


def test_search_paging_follows_next_links(client: httpx.Client, fhir_base: str) -> None:
    pid = _create(client, _patient("500"))["id"]
    created = {_create(client, _observation("2157-6", f"Patient/{pid}", v))["id"] for v in range(5)}

    first = client.get("Observation", params={"code": f"{LOINC}|2157-6", "_count": "2"})
    assert first.status_code == 200
    page = _body(first)
    assert page["type"] == "searchset"
    assert page["total"] == 5

    pages: list[list[str]] = []
    while True:
        pages.append(_match_ids(page))
        next_url = _link(page, "next")
        if next_url is None:
            break
        assert next_url.startswith(f"{fhir_base}/Observation?")
        response = client.get(next_url)
        assert response.status_code == 200
        page = _body(response)
        assert _link(page, "previous") is not None
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen))
    assert set(seen) == created


def test_search_by_post(client: httpx.Client) -> None:
    pid = _create(client, _patient("600"))["id"]
    oid = _create(client, _observation("718-7", f"Patient/{pid}"))["id"]
    response = client.post(
        "Observation/_search",
        content=f"subject=Patient/{pid}&code={LOINC}|718-7",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert _match_ids(_body(response)) == [oid]


def test_search_parameters(client: httpx.Client) -> None:
    pat_a = _create(client, _patient("A-1", family="Alpha"))["id"]
    pat_b = _create(client, _patient("B-1", family="Beta"))["id"]
    obs1 = _create(client, _observation("2157-6", f"Patient/{pat_a}"))
    obs2 = _create(client, _observation("1920-8", f"Patient/{pat_a}"))
    obs3 = _create(client, _observation("33762-6", f"Patient/{pat_b}"))

    assert _search_ids(client, "Patient", {"identifier": f"{MRN}|A-1"}) == {pat_a}
    assert _search_ids(client, "Patient", {"identifier": "A-1"}) == {pat_a}
    assert _search_ids(client, "Patient", {"identifier": "urn:other|A-1"}) == set()
    assert _search_ids(client, "Patient", {"name": "alp"}) == {pat_a}

    either = f"{LOINC}|2157-6,{LOINC}|33762-6"
    assert _search_ids(client, "Observation", {"code": either}) == {obs1["id"], obs3["id"]}
    assert _search_ids(client, "Observation", {"patient": f"Patient/{pat_a}"}) == {
        obs1["id"],
        obs2["id"],
    }
    assert _search_ids(client, "Observation", {"subject": f"Patient/{pat_b}"}) == {obs3["id"]}
    assert _search_ids(client, "Observation", {"patient": pat_b}) == {obs3["id"]}
    assert _search_ids(client, "Observation", {"subject:Patient.identifier": f"{MRN}|A-1"}) == {
        obs1["id"],
        obs2["id"],
    }

    after_first = obs1["meta"]["lastUpdated"]
    assert _search_ids(client, "Observation", {"_lastUpdated": f"gt{after_first}"}) == {
        obs2["id"],
        obs3["id"],
    }
    assert _search_ids(client, "Observation", {"_lastUpdated": f"le{after_first}"}) == {obs1["id"]}


def test_search_modifiers_chains_and_sorting(client: httpx.Client, fhir_base: str) -> None:
    pid = _create(client, _patient("650", family="Müller"))["id"]
    other = _create(client, _patient("651", family="Smith"))["id"]
    high = _create(client, _observation("2157-6", f"{fhir_base}/Patient/{pid}", 350.0))
    low = _create(client, _observation("2157-6", f"Patient/{pid}", 4.5))
    _create(client, _observation("718-7", f"Patient/{other}", 12.0))

    # Absolute references to this server are equivalent to relative ones.
    assert _search_ids(client, "Observation", {"patient": pid}) == {high["id"], low["id"]}
    # String search: case- and accent-insensitive "starts with"; :exact is exact.
    assert _search_ids(client, "Patient", {"name": "mull"}) == {pid}
    assert _search_ids(client, "Patient", {"name:exact": "Müller"}) == {pid}
    assert _search_ids(client, "Patient", {"name:exact": "muller"}) == set()
    # Quantity with prefix, and a composite parameter.
    ucum = "http://unitsofmeasure.org"
    assert _search_ids(client, "Observation", {"value-quantity": f"gt100|{ucum}|U/L"}) == {
        high["id"]
    }
    assert _search_ids(
        client, "Observation", {"code-value-quantity": f"{LOINC}|2157-6$lt10|{ucum}|U/L"}
    ) == {low["id"]}
    # Reverse chaining and token :not.
    assert _search_ids(client, "Patient", {"_has:Observation:patient:code": "718-7"}) == {other}
    assert _search_ids(client, "Observation", {"code:not": f"{LOINC}|2157-6"}) == (
        _search_ids(client, "Observation", {"code": f"{LOINC}|718-7"})
    )
    # _sort, descending.
    response = client.get("Observation", params={"code": "2157-6", "_sort": "-_lastUpdated"})
    assert _match_ids(_body(response)) == [low["id"], high["id"]]


def test_unknown_search_parameter_handling(client: httpx.Client) -> None:
    pid = _create(client, _patient("700"))["id"]
    lenient = client.get("Patient", params={"no-such-param": "x"})
    assert lenient.status_code == 200
    bundle = _body(lenient)
    assert _match_ids(bundle) == [pid]
    assert "no-such-param" not in (_link(bundle, "self") or "")
    strict = client.get(
        "Patient", params={"no-such-param": "x"}, headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_include_medication_from_administration(client: httpx.Client) -> None:
    pid = _create(client, _patient("800"))["id"]
    mid = _create(client, _medication("1049630"))["id"]
    admins = {_create(client, _administration(f"Medication/{mid}", f"Patient/{pid}"))["id"]}
    admins.add(_create(client, _administration(f"Medication/{mid}", f"Patient/{pid}"))["id"])
    _create(client, _medication("999"))  # not referenced: must not be included

    response = client.get(
        "MedicationAdministration",
        params={"subject": f"Patient/{pid}", "_include": "MedicationAdministration:medication"},
    )
    assert response.status_code == 200
    bundle = _body(response)
    assert bundle["total"] == 2
    assert set(_match_ids(bundle)) == admins
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in included] == [
        ("Medication", mid)
    ]


def test_revinclude_observations_of_patient(client: httpx.Client) -> None:
    pid = _create(client, _patient("900"))["id"]
    other = _create(client, _patient("901"))["id"]
    oid = _create(client, _observation("2157-6", f"Patient/{pid}"))["id"]
    _create(client, _observation("2157-6", f"Patient/{other}"))

    response = client.get("Patient", params={"_id": pid, "_revinclude": "Observation:patient"})
    bundle = _body(response)
    assert _match_ids(bundle) == [pid]
    included = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert included == [oid]


# --------------------------------------------------------------------------------------------
# batch / transaction


def test_transaction_resolves_urn_uuid_references(client: httpx.Client) -> None:
    patient_urn, medication_urn = _urn(), _urn()
    bundle = _transaction(
        [
            {
                "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                "resource": _observation("2157-6", patient_urn),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": patient_urn,
                "resource": _patient("1000"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": medication_urn,
                "resource": _medication("1049630"),
                "request": {"method": "POST", "url": "Medication"},
            },
            {
                "resource": _administration(medication_urn, patient_urn),
                "request": {"method": "POST", "url": "MedicationAdministration"},
            },
        ]
    )
    response = _send(client, "POST", "", bundle)
    assert response.status_code == 200, response.text
    result = _body(response)
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * 4
    obs_entry, patient_entry, med_entry, admin_entry = result["entry"]
    pid = patient_entry["resource"]["id"]
    assert patient_entry["response"]["location"] == f"Patient/{pid}/_history/1"
    assert patient_entry["response"]["etag"] == 'W/"1"'

    observation = _body(client.get(f"Observation/{obs_entry['resource']['id']}"))
    assert observation["subject"]["reference"] == f"Patient/{pid}"
    administration = _body(client.get(f"MedicationAdministration/{admin_entry['resource']['id']}"))
    assert administration["medicationReference"]["reference"] == (
        f"Medication/{med_entry['resource']['id']}"
    )
    assert administration["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_is_atomic(client: httpx.Client, fhir_server: FhirTestServer) -> None:
    patient_urn = _urn()
    bundle = _transaction(
        [
            {
                "fullUrl": patient_urn,
                "resource": _patient("1100"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": _observation("2157-6", patient_urn),
                "request": {"method": "POST", "url": "Observation"},
            },
            {  # invalid: Observation.status and Observation.code are required
                "resource": {"resourceType": "Observation", "subject": {"reference": patient_urn}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ]
    )
    response = _send(client, "POST", "", bundle)
    assert response.status_code == 400
    assert _body(response)["resourceType"] == "OperationOutcome"
    assert fhir_server.stats()["resources"] == {}
    assert _search_ids(client, "Patient", {"identifier": f"{MRN}|1100"}) == set()


def test_transaction_rolls_back_on_if_match_failure(
    client: httpx.Client, fhir_server: FhirTestServer
) -> None:
    patient = _create(client, _patient("1200"))
    bundle = _transaction(
        [
            {
                "resource": _observation("2157-6", f"Patient/{patient['id']}"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {**patient, "gender": "other"},
                "request": {"method": "PUT", "url": f"Patient/{patient['id']}", "ifMatch": 'W/"7"'},
            },
        ]
    )
    response = _send(client, "POST", "", bundle)
    assert response.status_code == 412
    assert fhir_server.stats()["resources"] == {"Patient": 1}
    assert _body(client.get(f"Patient/{patient['id']}"))["meta"]["versionId"] == "1"


def test_transaction_if_none_exist(client: httpx.Client, fhir_server: FhirTestServer) -> None:
    existing = _create(client, _patient("1300"))
    patient_urn = _urn()
    bundle = _transaction(
        [
            {
                "fullUrl": patient_urn,
                "resource": _patient("1300", family="Changed"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={MRN}|1300",
                },
            },
            {
                "resource": _observation("2157-6", patient_urn),
                "request": {"method": "POST", "url": "Observation"},
            },
        ]
    )
    response = _send(client, "POST", "", bundle)
    assert response.status_code == 200, response.text
    patient_entry, obs_entry = _body(response)["entry"]
    assert patient_entry["response"]["status"] == "200 OK"
    assert patient_entry["resource"]["id"] == existing["id"]
    assert obs_entry["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"
    assert fhir_server.stats()["resources"] == {"Patient": 1, "Observation": 1}

    _create(client, _patient("1300"))  # second match makes the condition ambiguous
    ambiguous = _send(client, "POST", "", bundle)
    assert ambiguous.status_code == 412
    assert fhir_server.stats()["resources"] == {"Patient": 2, "Observation": 1}


def test_large_transaction_with_conditional_creates(client: httpx.Client) -> None:
    """More than 8 conditional entries (a Medplum-hosted limit, lifted by the harness)."""
    entries = [
        {
            "fullUrl": _urn(),
            "resource": _medication(str(code)),
            "request": {
                "method": "POST",
                "url": "Medication",
                "ifNoneExist": f"code={RXNORM}|{code}",
            },
        }
        for code in range(12)
    ]
    response = _send(client, "POST", "", _transaction(entries))
    assert response.status_code == 200, response.text
    assert {e["response"]["status"] for e in _body(response)["entry"]} == {"201 Created"}
    again = _send(client, "POST", "", _transaction(entries))
    assert {e["response"]["status"] for e in _body(again)["entry"]} == {"200 OK"}
    assert _body(client.get("Medication", params={"_summary": "count"}))["total"] == 12


def test_batch_entries_are_independent(client: httpx.Client) -> None:
    bundle = _transaction(
        [
            {"resource": _patient("1400"), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Observation"},  # invalid
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
            {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|1400"}},
        ],
        bundle_type="batch",
    )
    response = _send(client, "POST", "", bundle)
    assert response.status_code == 200, response.text
    result = _body(response)
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"][:3] for e in result["entry"]]
    assert statuses == ["201", "400", "404", "200"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert _search_ids(client, "Patient", {"identifier": f"{MRN}|1400"}) == {
        result["entry"][0]["resource"]["id"]
    }


# --------------------------------------------------------------------------------------------
# test-support endpoints


def test_stats_count_interactions(client: httpx.Client, fhir_server: FhirTestServer) -> None:
    assert fhir_server.stats()["requests"] == 0
    patient = _create(client, _patient("1500"))
    client.get(f"Patient/{patient['id']}")
    client.get("Patient", params={"identifier": f"{MRN}|1500"})
    _send(client, "PUT", f"Patient/{patient['id']}", {**patient, "gender": "male"})
    _send(
        client,
        "POST",
        "",
        _transaction(
            [{"resource": _patient("1501"), "request": {"method": "POST", "url": "Patient"}}]
        ),
    )
    stats = fhir_server.stats()
    assert stats["creates"] == 1
    assert stats["reads"] == 1
    assert stats["searches"] == 1
    assert stats["updates"] == 1
    assert stats["transactions"] == 1
    assert stats["entries"]["creates"] == 1
    assert stats["writes"] == 3
    assert stats["committed_writes"] == 3
    assert stats["by_method"] == {"POST": 2, "GET": 2, "PUT": 1}
    assert stats["resources"] == {"Patient": 2}

    fhir_server.reset_stats()
    client.get(f"Patient/{patient['id']}")
    client.get("Patient")
    stats = fhir_server.stats()
    assert stats["writes"] == stats["committed_writes"] == 0
    assert stats["creates"] == stats["updates"] == stats["transactions"] == 0
    assert stats["reads"] == 1
    assert stats["searches"] == 1

    # Attempted writes that change nothing: a matching conditional create and a no-op update.
    fhir_server.reset_stats()
    condition = {"If-None-Exist": f"identifier={MRN}|1500"}
    assert _send(client, "POST", "Patient", _patient("1500"), condition).status_code == 200
    current = _body(client.get(f"Patient/{patient['id']}"))
    assert _send(client, "PUT", f"Patient/{patient['id']}", current).status_code == 200
    stats = fhir_server.stats()
    assert stats["creates"] == stats["updates"] == 1
    assert stats["committed_writes"] == 0


def test_reset_empties_the_store(client: httpx.Client, fhir_server: FhirTestServer) -> None:
    pid = _create(client, _patient("1600"))["id"]
    fhir_server.reset()
    assert client.get(f"Patient/{pid}").status_code == 404
    assert fhir_server.stats()["resources"] == {}


def test_capability_statement(client: httpx.Client) -> None:
    response = client.get("metadata")
    assert response.status_code == 200
    statement = _body(response)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
