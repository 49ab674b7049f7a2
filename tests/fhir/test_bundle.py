"""Reading a patient's Bundle: the reference table's precedence, nested and excluded entries, and
the patients named, all in one pass (issue 13, one core)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.outcome import InputError

Json = dict[str, Any]
SUBJECT = {"reference": "Patient/p"}


def _raw(*entries: Json) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": list(entries)})


def test_reference_table_precedence_and_nested_entries() -> None:
    patient = {"resourceType": "Patient", "id": "p"}
    first = {"resourceType": "Medication", "id": "m", "status": "first"}
    second = {"resourceType": "Medication", "id": "m", "status": "second"}
    by_url = {"resourceType": "Medication", "id": "other", "status": "by-url"}
    bad_id = {"resourceType": "Medication", "id": "bad id!", "status": "bad"}
    nested_med = {"resourceType": "Medication", "id": "n", "status": "nested"}
    excluded_nested = {"resourceType": "Medication", "id": "x", "status": "in excluded bundle"}
    raw = _raw(
        {"fullUrl": "urn:uuid:p", "resource": patient},
        {"resource": first},
        {"resource": second},
        {"fullUrl": "Medication/m", "resource": by_url},
        {"resource": bad_id},
        {"resource": {"resourceType": "Bundle", "id": "b", "entry": [{"resource": nested_med}]}},
        {
            "resource": {
                "resourceType": "Bundle",
                "id": "no good",
                "entry": [{"fullUrl": "urn:uuid:x", "resource": excluded_nested}, 7],
            }
        },
        {"resource": 3},
    )
    read = read_patient_bundle(raw, "t.json")
    assert read.patient_ref == "Patient/p"
    # a fullUrl wins over "Type/id"; among listed resources the first one listed (the one read)
    assert read.resolve["Medication/m"] == by_url
    assert read.resolve["Medication/other"] == by_url
    assert read.resolve["urn:uuid:p"] == patient
    # excluded and nested resources stay referable; only listed resources are read
    assert read.resolve["Medication/bad id!"] == bad_id
    assert read.resolve["Medication/n"] == nested_med
    assert read.resolve["urn:uuid:x"] == excluded_nested
    assert read.resolve["Bundle/b"]["id"] == "b"
    # Medication/m is listed twice: read once, the first copy (the second is reported)
    assert [loc for loc, _ in read.resources] == [
        "Bundle.entry[0].resource",
        "Bundle.entry[1].resource",
        "Bundle.entry[3].resource",
        "Bundle.entry[5].resource.entry[0].resource",
    ]
    # problems of an excluded nested Bundle's own entries are not reported
    assert [(i.code, i.expression) for i in read.issues] == [
        ("duplicate", "Bundle.entry[2].resource"),
        ("value", "Bundle.entry[4].resource.id"),
        ("value", "Bundle.entry[6].resource.id"),
        ("structure", "Bundle.entry[7].resource"),
    ]
    # and nothing else is referable: every resource by "Type/id", every entry by its fullUrl
    assert sorted(read.resolve) == [
        "Bundle/b",
        "Bundle/no good",
        "Medication/bad id!",
        "Medication/m",
        "Medication/n",
        "Medication/other",
        "Medication/x",
        "Patient/p",
        "urn:uuid:p",
        "urn:uuid:x",
    ]


def test_patients_named_by_absolute_and_relative_references() -> None:
    obs = {"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/p"}}
    dev = {"resourceType": "Device", "id": "d", "patient": {"reference": "https://x/Patient/p"}}
    other = {"resourceType": "Observation", "id": "g", "subject": {"reference": "Group/1"}}
    read = read_patient_bundle(_raw({"resource": obs}, {"resource": dev}, {"resource": other}))
    assert read.patient_ref == "Patient/p"


def test_a_resource_listed_twice_is_read_once() -> None:
    """Two searches of a batch-response (or two pages) may return the same resource: it is read
    once, the first copy, as the server read path does, and each duplicate is reported (a
    warning when the copies differ). Counting it twice would double an IVIG dose."""
    patient = {"resourceType": "Patient", "id": "p"}
    ma = {"resourceType": "MedicationAdministration", "id": "a", "subject": SUBJECT}
    changed = ma | {"status": "stopped"}

    def searchset(*resources: Json) -> Json:
        entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
        return {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": entries}}

    raw = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [{"resource": patient}, searchset(ma), searchset(ma), searchset(changed)],
        }
    )
    read = read_patient_bundle(raw)
    assert [(where, r) for where, r in read.resources] == [
        ("Bundle.entry[0].resource", patient),
        ("Bundle.entry[1].resource.entry[0].resource", ma),
    ]
    assert [(i.severity, i.code, i.expression, i.resource) for i in read.issues] == [
        (
            "information",
            "duplicate",
            "Bundle.entry[2].resource.entry[0].resource",
            "MedicationAdministration/a",
        ),
        (
            "warning",
            "duplicate",
            "Bundle.entry[3].resource.entry[0].resource",
            "MedicationAdministration/a",
        ),
    ]
    assert "read once" in read.issues[0].diagnostics
    assert "differ" in read.issues[1].diagnostics


def test_version_specific_references_name_the_patient() -> None:
    """R4 references may be version specific (``Patient/p/_history/2``): the same patient."""
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "subject": {"reference": "Patient/p/_history/2"},
    }
    dev = {
        "resourceType": "Device",
        "id": "d",
        "patient": {"reference": "https://x/fhir/Patient/p/_history/7"},
    }
    pat = {"resourceType": "Patient", "id": "p", "meta": {"versionId": "7"}}
    read = read_patient_bundle(_raw({"resource": pat}, {"resource": obs}, {"resource": dev}))
    assert read.patient_ref == "Patient/p"


def test_a_page_of_a_search_is_said_to_be_incomplete() -> None:
    """A searchset with a ``next`` link (R4 bundle-example) is one page: the patient's other
    data are on the next pages. Said once per page, at its link, without the link's URL (its
    query may name the patient); a last page (no ``next``) and other Bundle types say nothing."""
    obs = {"resourceType": "Observation", "id": "o", "subject": SUBJECT}
    url = "https://x/Observation?patient=p&name=Smith&searchId=1&page=2"
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [
            {"relation": "self", "url": "https://x/Observation"},
            {"relation": "next", "url": url},
        ],
        "entry": [{"resource": obs}],
    }
    read = read_patient_bundle(orjson.dumps(page))
    (issue,) = read.issues
    assert (issue.severity, issue.code, issue.expression) == (
        "warning",
        "incomplete",
        "Bundle.link[1]",
    )
    assert "one page of a search" in issue.diagnostics and "Smith" not in issue.diagnostics
    assert [r for _, r in read.resources] == [obs]
    nested = {"resourceType": "Bundle", "type": "batch-response", "entry": [{"resource": page}]}
    (issue,) = read_patient_bundle(orjson.dumps(nested)).issues
    assert issue.expression == "Bundle.entry[0].resource.link[1]"
    last = page | {"link": page["link"][:1]}
    assert read_patient_bundle(orjson.dumps(last)).issues == []
    collection = page | {"type": "collection"}
    assert read_patient_bundle(orjson.dumps(collection)).issues == []


@pytest.mark.parametrize("count", [1, 3, 250, 2])
def test_listed_locations_are_the_entry_paths_of_each_bundle(count: int) -> None:
    """The top Bundle's locations come from a table made once per process (grown as larger
    Bundles come): each is still this Bundle's entry path, and a nested Bundle's are its own."""
    patient = {"resource": {"resourceType": "Patient", "id": "p"}}
    observations = [
        {"resource": {"resourceType": "Observation", "id": f"o{i}"}} for i in range(count)
    ]
    nested = {
        "resource": {
            "resourceType": "Bundle",
            "id": "b",
            "entry": [{"resource": {"resourceType": "Observation", "id": "n"}}],
        }
    }
    read = read_patient_bundle(_raw(patient, *observations, nested))
    locations = [where for where, _ in read.resources]
    assert locations == [
        *(f"Bundle.entry[{i}].resource" for i in range(count + 1)),
        f"Bundle.entry[{count + 1}].resource.entry[0].resource",
    ]


def test_a_resource_listed_twice_is_read_and_referenced_as_its_first_copy() -> None:
    """The copy extraction reads is the copy references resolve to: an administration that
    references a Medication listed twice (copies that differ) sees the one read, never the
    other (the warning names "the first copy")."""
    patient = {"resourceType": "Patient", "id": "p"}
    first = {"resourceType": "Medication", "id": "m", "status": "active"}
    second = {"resourceType": "Medication", "id": "m", "status": "inactive"}
    read = read_patient_bundle(
        _raw({"resource": patient}, {"resource": first}, {"resource": second}), "t.json"
    )
    assert [r for _, r in read.resources if r["resourceType"] == "Medication"] == [first]
    assert read.resolve["Medication/m"] == first


def test_entries_without_a_resource_are_errors_only_when_they_should_hold_one() -> None:
    """A transaction-response's entries may carry only a ``response`` (R4
    bundle-response.json: ``{"response": {"status": "200 OK"}}``), a transaction's a DELETE or a
    search ``request``: no data is missing, so no error. An entry with neither is an error."""
    patient = {"resourceType": "Patient", "id": "p"}
    raw = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {"resource": patient, "response": {"status": "201 Created"}},
                {"response": {"status": "200 OK"}},
                {"request": {"method": "DELETE", "url": "Observation/1"}},
                {"request": {"method": "GET", "url": "Patient?name=x"}},
                {"fullUrl": "urn:uuid:lost"},
                {"request": {"method": "POST", "url": "Observation"}},  # a POST needs one
                {"request": {"method": {"not": "a code"}}},
            ],
        }
    )
    found = read_patient_bundle(raw)
    assert [(i.severity, i.diagnostics, i.expression) for i in found.issues] == [
        ("error", "entry has no resource", "Bundle.entry[4].resource"),
        ("error", "entry has no resource", "Bundle.entry[5].resource"),
        ("error", "entry has no resource", "Bundle.entry[6].resource"),
    ]


def test_a_patient_without_an_id_is_named_as_the_reason_for_refusal() -> None:
    """R4 bundle-transaction.json creates Patients by POST with a ``urn:uuid:`` fullUrl and no
    id, their data referencing that fullUrl. fhirtis names a patient by its id, so such a Bundle
    is refused, and the refusal says why (not "no Patient and no subject reference")."""
    uuid = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    weight = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": uuid},
        "effectiveDateTime": "2020-01-01",
        "valueQuantity": {"value": 70, "system": "http://unitsofmeasure.org", "code": "kg"},
    }
    raw = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": uuid,
                    "resource": {"resourceType": "Patient"},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {"resource": weight, "request": {"method": "POST", "url": "Observation"}},
            ],
        }
    )
    with pytest.raises(InputError) as caught:
        read_patient_bundle(raw)
    assert [(i.severity, i.code, i.diagnostics, i.expression) for i in caught.value.issues] == [
        (
            "fatal",
            "required",
            "the Patient has no id: fhirtis names the patient by its id (Patient/<id>); "
            "give the Patient an id",
            "Bundle.entry[0].resource.id",
        )
    ]
