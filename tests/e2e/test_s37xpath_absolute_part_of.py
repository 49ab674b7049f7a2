"""A titration step whose ``partOf`` names its bag by an absolute URL is a step on every path.

R4 references.html: an absolute URL on the server's base names the same resource as the relative
``Type/id``; the Bulk Data IG (v2) lets an export's references be absolute, to be resolved by
type and id within the files. ``fhirtis evaluate`` found the bag of such a step (by the Bundle's
``fullUrl``), but ``fhirtis run`` and ``fhirtis cohort`` (server reads, NDJSON) looked the text up
as written and found nothing: each step counted as an administration of its own, of unknown
grams (clinical spec §4: the cycle's grams and g/kg unknown, 6 administrations instead of 4),
and its DetectedIssue (§5.2) did not name the bag nor carry the bag's security labels. See
s32paths for the other cross-path tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.e2e.test_run import load, run, search
from tests.fhir.tee_course import summary_record
from tests.fhir.test_s37page_step_issue_names_bag import titrated_too_fast
from tests.registry.cohort_cli import group_args, ndjson_args

Json = dict[str, Any]
R = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
BAG = "MedicationAdministration/ma00"


def _absolute(doc: Json, base: str, element: str, target: str) -> Json:
    """``doc`` with absolute ``fullUrl``s on ``base`` and each ``element`` naming ``target``
    by its absolute URL there."""
    for entry in doc["entry"]:
        r = entry["resource"]
        entry["fullUrl"] = f"{base}/{r['resourceType']}/{r['id']}"
        if element in r:
            r[element] = [{"reference": f"{base}/{target}"}]
    return doc


def _steps(base: str) -> Json:
    """The responder's first bag (labelled restricted) with two fast steps partOf it, named by
    its absolute URL on ``base``."""
    doc = titrated_too_fast()
    for entry in doc["entry"]:
        if f"{entry['resource']['resourceType']}/{entry['resource']['id']}" == BAG:
            entry["resource"]["meta"] = {"security": [R]}
    return _absolute(doc, base, "partOf", BAG)


def _offline(doc: Json) -> PatientResult:
    return evaluate_bundle_bytes(orjson.dumps(doc), "p1.json", Settings())


def _first_cycle(result: PatientResult) -> tuple[int, object]:
    cycle = summary_record(result)["ivig"]["cycles"][0]
    return cycle["administrations"], cycle["grams"]


def _issues(resources: list[Json]) -> dict[str, tuple[object, list[Json]]]:
    """Each DetectedIssue's implicated record → (its evidence, its confidentiality labels)."""
    return {
        i["implicated"][0]["reference"].split("/_history/")[0]: (
            i.get("evidence"),
            [c for c in i.get("meta", {}).get("security", []) if c["system"] == R["system"]],
        )
        for i in resources
        if i["resourceType"] == "DetectedIssue"
    }


def _expected() -> dict[str, tuple[object, list[Json]]]:
    evidence = [
        {
            "code": [
                {"text": "the infusion the implicated administration is a rate step of (partOf)"}
            ],
            "detail": [{"reference": BAG}],
        }
    ]
    steps = ["MedicationAdministration/s1", "MedicationAdministration/s2"]
    return {s: (evidence, [R]) for s in steps}


def test_offline_the_steps_are_steps_of_their_bag(fhir_base: str) -> None:
    result = _offline(_steps(fhir_base))
    assert _first_cycle(result) == (4, 140)
    # the Bundle carries the labels too (the control of the paths below)
    assert _issues([d.resource for d in result.derived]) == _expected()


def test_fhirtis_run_finds_the_bag_as_offline(fhir_base: str) -> None:
    doc = _steps(fhir_base)
    offline = _offline(doc)
    load(fhir_base, doc)
    got = run(fhir_base, write=False)
    assert got.result is not None, got.error
    assert _first_cycle(got.result) == _first_cycle(offline) == (4, 140)
    derived = [d.resource for d in got.result.derived]
    assert _issues(derived) == _issues([d.resource for d in offline.derived]) == _expected()


def test_cohort_ndjson_finds_the_bag_as_offline(fhir_base: str, tmp_path: Path) -> None:
    doc = _steps("https://ehr.example.org/fhir")  # an export of another server: by type and id
    folder = tmp_path / "export"
    folder.mkdir()
    by_type: dict[str, list[Json]] = {}
    for entry in doc["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    for rtype, resources in by_type.items():
        lines = b"".join(orjson.dumps(r) + b"\n" for r in resources)
        (folder / f"{rtype}.ndjson").write_bytes(lines)
    out = tmp_path / "summaries.ndjson"
    args = [
        *ndjson_args(folder, tmp_path),
        "--server",
        fhir_base,
        "--write",
        "--summaries",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (record,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    cycle = record["ivig"]["cycles"][0]
    assert (cycle["administrations"], cycle["grams"]) == (4, 140)
    assert _issues(search(fhir_base, "DetectedIssue")) == _expected()


def test_cohort_group_export_finds_the_bag_as_offline(fhir_base: str, tmp_path: Path) -> None:
    doc = _steps(fhir_base)
    load(fhir_base, doc)
    group = {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": "Patient/p1"}}],
    }
    httpx.put(f"{fhir_base}/Group/g1", json=group).raise_for_status()
    out = tmp_path / "summaries.ndjson"
    args = [*group_args("g1", fhir_base, tmp_path), "--write", "--summaries", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (record,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    cycle = record["ivig"]["cycles"][0]
    assert (cycle["administrations"], cycle["grams"]) == (4, 140)
    assert _issues(search(fhir_base, "DetectedIssue")) == _expected()
