"""An immune globulin named only by its ingredient's Substance, a resource of its own.

R4 ``Medication.ingredient.item[x]`` is ``CodeableConcept | Reference(Substance | Medication)``;
the Substance it references need not be contained (clinical spec §4: "a code on
``Medication.ingredient`` rather than ``Medication.code``" must be recognised, and "an
unresolvable Medication is reported, never ignored silently"). A Medication coded only "Infusion
10%" whose ingredient references ``Substance/x`` (ATC J06BA02) was IVIG to ``fhirtis evaluate``
of a Bundle holding the Substance (4 cycles), and 0 cycles with no issue to ``fhirtis run`` (the
Substance was never read), to ``fhirtis cohort --ndjson`` (Substance.ndjson was not read as a
resource of no patient for the Medication) and to the CDS service (never read from fhirServer).
Now every path reads it, and one that cannot be read is said.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.pull import pull_patient
from fhirtis.pipeline.records import summarise
from fhirtis.registry.group_export import export_group
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.e2e.test_run import load
from tests.fhir.builders import administration, bundle, patient, qty
from tests.fhir_test_server import FhirTestServer
from tests.io._s25_srv_fake import FakeServer, statement
from tests.io._support import BASE, FakeTime
from tests.registry.cohort_cli import ndjson_args
from tests.registry.test_s24_bulk_cohorts import _patients_file, _serve_export
from tests.registry.test_s27_group_shared_by_id import _resources

Json = dict[str, Any]
ATC = "http://www.whocc.no/atc"
STARTS = ["2024-01-03", "2024-02-03", "2024-03-04", "2024-04-03"]


def substance(sid: str = "x") -> Json:
    return {
        "resourceType": "Substance",
        "id": sid,
        "code": {"coding": [{"system": ATC, "code": "J06BA02"}]},
    }


def infusion(mid: str = "octa", ref: str = "Substance/x") -> Json:
    """A Medication that says nothing of an immune globulin but by its ingredient's Substance."""
    return {
        "resourceType": "Medication",
        "id": mid,
        "code": {"text": "Infusion 10%"},
        "ingredient": [
            {
                "itemReference": {"reference": ref},
                "strength": {"numerator": qty(10, "g"), "denominator": qty(100, "mL")},
            }
        ],
    }


def administrations() -> list[Json]:
    return [
        administration(f"a{i}", f"{day}T09:00:00Z", f"{day}T13:00:00Z", dose=qty(60, "g"))
        for i, day in enumerate(STARTS)
    ]


def _record(resources: Any) -> Json:
    result = evaluate_patient_resources(resources, Settings())
    record: Json = summarise(result.patient_ref, result.evaluation, result.issues).record()
    return record


def _substance_issues(record: Json) -> list[Json]:
    return [i for i in record["issues"] if "Substance/x" in i.get("diagnostics", "")]


def test_offline_a_substance_in_the_bundle_names_the_product() -> None:
    raw = orjson.dumps(bundle(patient(), infusion(), substance(), *administrations()))
    assert _record(read_patient_bundle(raw))["ivig"]["cycle_count"] == 4


# --- fhirtis run (server pull) -------------------------------------------------------------


async def _pull_record(httpx_mock: HTTPXMock, others: list[Json]) -> tuple[Json, FakeServer]:
    pat = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-03-01"}
    server = FakeServer(statement(), [pat, *administrations()], others)
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
    return _record(pulled), server


async def test_the_pull_reads_the_ingredient_substance(httpx_mock: HTTPXMock) -> None:
    record, server = await _pull_record(httpx_mock, [infusion(), substance()])
    assert any("Substance" in p for p in server.paths()), server.paths()
    assert record["ivig"]["cycle_count"] == 4
    assert _substance_issues(record) == []


async def test_the_pull_says_a_substance_it_cannot_read(httpx_mock: HTTPXMock) -> None:
    record, _ = await _pull_record(httpx_mock, [infusion()])
    assert record["ivig"]["cycle_count"] == 0
    [issue] = _substance_issues(record)
    assert issue["code"] == "not-found" and issue["resource"] == "Medication/octa"


async def test_the_pull_reads_an_absolute_versioned_substance_reference(
    httpx_mock: HTTPXMock,
) -> None:
    ref = f"{BASE.rstrip('/')}/Substance/x/_history/3"
    record, _ = await _pull_record(httpx_mock, [infusion(ref=ref), substance()])
    assert record["ivig"]["cycle_count"] == 4


# --- fhirtis cohort --ndjson -----------------------------------------------------------------


def _export(folder: Path, resources: list[Json]) -> Path:
    folder.mkdir()
    by_type: dict[str, list[bytes]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(orjson.dumps(r))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def _cohort(tmp_path: Path, resources: list[Json]) -> Json:
    folder = _export(tmp_path / "export", resources)
    summaries = tmp_path / "s.ndjson"
    result = CliRunner().invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(summaries)))
    assert result.exit_code == 0, result.output
    [record] = [orjson.loads(line) for line in summaries.read_bytes().splitlines()]
    return dict(record)


def test_the_registry_reads_substance_ndjson(tmp_path: Path) -> None:
    record = _cohort(tmp_path, [patient(), infusion(), substance(), *administrations()])
    assert record["ivig"]["cycle_count"] == 4
    assert _substance_issues(record) == []


def test_the_registry_says_a_substance_the_export_lacks(tmp_path: Path) -> None:
    record = _cohort(tmp_path, [patient(), infusion(), *administrations()])
    assert record["ivig"]["cycle_count"] == 0
    [issue] = _substance_issues(record)
    assert issue["code"] == "not-found" and issue["resource"] == "Medication/octa"


# --- CDS service (fhirServer) ------------------------------------------------------------------


async def test_cds_reads_the_ingredient_substance_from_fhir_server(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, bundle(infusion(), substance()))
    order = ivig_order(
        rate=qty(300, "mL/h"), med={"medicationReference": {"reference": "Medication/octa"}}
    )
    body = call([order], full_prefetch(patient_70kg(DVT)), server=fhir_base, token="cds-token")
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        sent = [str(r.url) for r in api.sent]
    assert any("Substance" in url for url in sent), sent
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    )


async def test_cds_says_an_ingredient_substance_it_cannot_read(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """The patient's earlier administrations name a Medication whose Substance fhirServer does
    not hold: the risk card says what was not read (the IVIG order itself is recognised)."""
    history = patient_70kg(DVT, infusion(), *administrations())
    order = ivig_order(rate=qty(300, "mL/h"))
    body = call([order], full_prefetch(history), server=fhir_base, token="cds-token")
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        sent = [str(r.url) for r in api.sent]
    assert any("Substance" in url for url in sent), sent
    risk = card_with(cards, "TEE risk")
    assert "Substance of Medication" in risk["detail"], risk["detail"]


# --- fhirtis cohort --group (a Group export that lacks the resources of no patient) ---------


async def test_a_group_export_reads_the_substance_of_a_medication_it_read_by_id(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """A Group export need hold only the Patient compartment: the Medication it lacks is read by
    id (s27), and now the Substance that Medication names, as ``fhirtis run`` reads it."""

    def searchset(r: Json) -> Json:
        entry = [{"resource": r, "search": {"mode": "match"}}]
        return {"resourceType": "Bundle", "type": "searchset", "entry": entry}

    httpx_mock.add_response(url=f"{BASE}/metadata", json=statement(), is_optional=True)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Medication?_id=octa") + r".*"), json=searchset(infusion())
    )
    # the statement lists no Substance search: read by id
    httpx_mock.add_response(url=f"{BASE}/Substance/x", json=substance())
    files = {
        "Patient.ndjson": _patients_file("p1"),
        "MedicationAdministration.ndjson": b"\n".join(orjson.dumps(a) for a in administrations()),
    }
    _serve_export(httpx_mock, BASE, "g1", "2024-05-01T10:00:00Z", files)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work")
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        export = await export_group(fhir, "g1", options)
    held = _resources(export.folder)
    assert held["Substance/x"] == substance()
    assert held["Medication/octa"] == infusion()
