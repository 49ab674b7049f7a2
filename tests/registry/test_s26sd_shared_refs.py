"""A cohort's shared resources (a Medication, a Device of no patient) reach every patient that
names them, whatever the shape of the reference a Bulk export writes.

Sources: Bulk Data Access IG v2.0.0, export.md "Bulk Data Output File Request" (repository
HL7/bulk-data, input/pagecontent/export.md): "References in the resources returned MAY be
relative URLs with the format <resource type>/<id>, or absolute URLs with the same structure
rooted in the base URL for the server from which the export was performed. References will be
resolved by looking for a resource with the specified type and id within the file set."
R4 Reference: a literal reference may be version specific (``Type/id/_history/v``,
http://hl7.org/fhir/R4/references.html). The inputs are the corpus Bundles
``tests/data/versioned-references.json`` and ``tests/data/device-use-statement-ips.json``
(sources in tests/data/README.md: [R4-REF], [IPS] — the R4 DeviceUseStatement example names
``Device/example``, a Device with no ``patient``), written out as an export, one file per type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import summarise
from fhirtis.settings import Settings
from tests.registry.cohort_cli import ndjson_args

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data"
BASE = "https://ehr.example.org/fhir/"


def _rewrite(node: Any, refs: dict[str, str]) -> Any:
    """``node`` with every ``reference`` text mapped through ``refs`` (others kept)."""
    if isinstance(node, dict):
        return {
            k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, refs))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v, refs) for v in node]
    return node


def _export(bundle: dict[str, Any], folder: Path, refs: dict[str, str]) -> Path:
    """The Bundle's resources as a Bulk export (one NDJSON file per type), references mapped."""
    folder.mkdir()
    by_type: dict[str, list[bytes]] = {}
    for entry in bundle["entry"]:
        resource = _rewrite(entry["resource"], refs)
        by_type.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def _cohort(tmp_path: Path, folder: Path) -> dict[str, Any]:
    summaries = tmp_path / "s.ndjson"
    result = runner.invoke(
        app,
        ndjson_args(folder, tmp_path, "--summaries", str(summaries)),
    )
    assert result.exit_code == 0, result.output
    assert "1 patients: evaluated 1" in result.stdout, result.stdout
    records = [orjson.loads(line) for line in summaries.read_bytes().splitlines()]
    assert len(records) == 1
    record: dict[str, Any] = records[0]
    return record


def _bundle_record(name: str, bundle: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``fhirtis evaluate`` finds in the Bundle itself (every reference resolved)."""
    raw = (DATA / name).read_bytes() if bundle is None else orjson.dumps(bundle)
    result = evaluate_patient_resources(read_patient_bundle(raw, name), Settings())
    return summarise(result.patient_ref, result.evaluation, result.issues).record()


def _facts(record: dict[str, Any]) -> tuple[Any, ...]:
    ivig, tee = record["ivig"], record["thrombosis"]
    findings = [
        (f["administration"], str(f["rate"]), str(f["limit"])) for f in tee["rate_findings"]
    ]
    return (
        ivig["cycle_count"],
        str(ivig["cumulative_grams"]),
        len(ivig["cycles"]),
        sorted(tee["risk_factors"]),
        str(tee["max_rate_now"]),
        findings,
    )


def _unversioned_keys(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]


def test_a_version_specific_medication_reference_reaches_the_patient(tmp_path: Path) -> None:
    """``medicationReference`` ``Medication/ver-med/_history/2`` (R4 allows it): before, the
    registry looked the Medication up by that text, found none, and the patient's four IVIG
    administrations were silently not counted (0 cycles, 0 g, no issue)."""
    name = "versioned-references.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", {}))
    expected = _bundle_record(name)
    assert expected["ivig"]["cycle_count"] == 2 and expected["ivig"]["cumulative_grams"] == 280
    assert _facts(record) == _facts(expected)
    assert record["issues"] == []


def test_absolute_references_rooted_in_the_server_base_resolve(tmp_path: Path) -> None:
    """The same export with every reference absolute, rooted in the server's base (Bulk Data IG
    v2: resolved by type and id within the file set): the patient's resources are grouped and
    the Medication they name is found."""
    name = "versioned-references.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    refs = {f"{key}/_history/2": BASE + key for key in _unversioned_keys(bundle)}
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", refs))
    assert record["patient"] == "Patient/pt-ver"
    assert _facts(record) == _facts(_bundle_record(name))


def test_a_device_of_no_patient_reaches_its_device_use_statement(tmp_path: Path) -> None:
    """The IPS Bundle as an export (``urn:uuid:`` references written as ``Type/id``, as a server
    exports them): the catheter's Device names no patient, so it lands among the shared
    resources; its DeviceUseStatement must still find it. Before, the registry resolved shared
    Medications only: no catheter risk factor, limit 4 instead of 3.3 for cycle 1."""
    name = "device-use-statement-ips.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    refs = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", refs))
    expected = _bundle_record(name)
    findings = expected["thrombosis"]["rate_findings"]
    assert [(f["cycle"], str(f["limit"])) for f in findings] == [(1, "3.3"), (1, "3.3")]
    assert _facts(record) == _facts(expected)


def test_a_medication_changed_under_a_versioned_reference_reevaluates(tmp_path: Path) -> None:
    """The input digest covers the Medication the patient names by a version-specific
    reference: a changed Medication makes the next run evaluate the patient again."""
    name = "versioned-references.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    folder = _export(bundle, tmp_path / "export", {})
    _cohort(tmp_path, folder)
    med = orjson.loads((folder / "Medication.ndjson").read_bytes())
    med["meta"] = {"versionId": "3"}
    (folder / "Medication.ndjson").write_bytes(orjson.dumps(med) + b"\n")
    again = runner.invoke(
        app,
        [
            "cohort",
            "--ndjson",
            str(folder),
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
            "--work-dir",
            str(tmp_path / "work"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert "evaluated 1; skipped (unchanged since the ledger) 0" in again.stdout, again.stdout


def test_a_medication_the_export_lacks_is_reported_not_silent(tmp_path: Path) -> None:
    """A Group export need return only the Patient compartment (Bulk Data IG v2, Group export:
    a Medication, outside it, may be left out). The administrations whose Medication the export
    lacks cannot be counted; as ``fhirtis run`` does when it cannot read one, the patient's
    record says so (an error where the administration looks like an immune globulin). Before,
    the record showed 0 IVIG cycles and no issue at all."""
    name = "versioned-references.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Medication"]
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", {}))
    missing = [i for i in record["issues"] if i.get("code") == "not-found"]
    administrations = sorted(
        f"MedicationAdministration/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationAdministration"
    )
    assert sorted(i["resource"] for i in missing) == administrations, record["issues"]
    assert all("Medication/ver-med/_history/2" in i["diagnostics"] for i in missing)
    assert all(i["severity"] in {"error", "information"} for i in missing)


def test_a_device_the_export_lacks_is_a_warning(tmp_path: Path) -> None:
    """A Device of no patient is outside the Patient compartment too: a DeviceUseStatement whose
    Device the export lacks gets the warning ``fhirtis run`` gives (a catheter not counted)."""
    name = "device-use-statement-ips.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    refs = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Device"]
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", refs))
    missing = [i for i in record["issues"] if i.get("code") == "not-found"]
    assert [(i["severity"], i["resource"]) for i in missing] == [
        ("warning", "DeviceUseStatement/dus-use")
    ], record["issues"]
    assert "Device/dus-line" in missing[0]["diagnostics"]


def test_a_device_of_the_patient_is_found_among_the_patients_own(tmp_path: Path) -> None:
    """A Device that names its patient is grouped with that patient, not shared: its
    DeviceUseStatement finds it there, with no "not in the input" warning."""
    name = "device-use-statement-ips.json"
    bundle = orjson.loads((DATA / name).read_bytes())
    refs = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    patient = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["id"] == "pt-dus")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Device":
            entry["resource"]["patient"] = {"reference": patient}
    record = _cohort(tmp_path, _export(bundle, tmp_path / "export", refs))
    assert [i for i in record["issues"] if i.get("code") == "not-found"] == []
    assert _facts(record) == _facts(_bundle_record(name, bundle))
