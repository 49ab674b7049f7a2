"""A resource that an export holds more than once, in two versions: the newest is read.

Real shapes: a Bulk Data server MAY split one type over several files (IG v2.0.0, "Response -
Complete Status"), which clients save under names that do not sort in the manifest's order
(smart-on-fhir/bulk-data-client: ``1.Observation.ndjson`` … ``10.Observation.ndjson``; the
Microsoft FHIR server's parallel export: ``Observation-<job>-1.ndjson``), and the Microsoft FHIR
server's ``$export?includeAssociatedData=_history`` writes a resource's earlier versions into
the same files as its current one. ``fhirtis run`` keeps the newest copy of a resource read
twice (``meta.lastUpdated``, else an integer ``meta.versionId``); the registry kept the copy of
the file whose name sorts last, whatever its version: a PGA corrected to ``entered-in-error``
still counted, and a Medication's corrected strength was not read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry import partition
from fhirtis.registry.partition import byte_ranges, partition_range, shared_resources
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()
Json = dict[str, Any]


def _lines(folder: Path) -> dict[str, list[Json]]:
    return {
        f.name.removesuffix(".ndjson"): [orjson.loads(x) for x in f.read_bytes().splitlines()]
        for f in folder.glob("*.ndjson")
    }


def _write(path: Path, resources: list[Json]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))


def _summaries(folder: Path, tmp_path: Path, name: str, *extra: str) -> dict[str, Json]:
    out = tmp_path / f"{name}.ndjson"
    work = tmp_path / f"run-{name}"
    work.mkdir()
    result = runner.invoke(app, [*ndjson_args(folder, work), "--summaries", str(out), *extra])
    assert result.exit_code == 0, result.output
    records = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    return {r["patient"]: r for r in records}


def _two_versions(tmp_path: Path, meta_old: Json, meta_new: Json) -> tuple[Path, Path]:
    """The export of two patients twice: as the server holds it now (``current``), and with a
    baseline PGA in two versions (``versions``): its older one, ``final``, in the file whose
    name sorts last, and its newer one, ``entered-in-error``, in the one that sorts first."""
    plain = tmp_path / "plain"
    write_ndjson(make_cohort(2, seed=11), plain)
    types = _lines(plain)
    observations = types.pop("Observation")
    index, pga = next(
        (i, o) for i, o in enumerate(observations) if o["code"]["coding"][0]["code"] == "pga"
    )
    old = {**copy.deepcopy(pga), "meta": meta_old}
    new = {**copy.deepcopy(pga), "meta": meta_new, "status": "entered-in-error"}
    others = observations[:index] + observations[index + 1 :]
    current, versions = tmp_path / "current", tmp_path / "versions"
    for folder in (current, versions):
        folder.mkdir()
        for rtype, resources in types.items():
            _write(folder / f"1.{rtype}.ndjson", resources)
    _write(current / "1.Observation.ndjson", [*others, new])
    _write(versions / "1.Observation.ndjson", [*others[:5], new])  # the newer one, first
    _write(versions / "2.Observation.ndjson", others[5:])
    _write(versions / "3.Observation.ndjson", [old])  # the older one, in the last file
    return current, versions


def test_the_newest_copy_by_last_updated_is_read(tmp_path: Path) -> None:
    current, versions = _two_versions(
        tmp_path,
        {"versionId": "1", "lastUpdated": "2024-07-01T10:00:00Z"},
        {"versionId": "2", "lastUpdated": "2024-07-02T10:00:00Z"},
    )
    expected = _summaries(current, tmp_path, "current")
    read = _summaries(versions, tmp_path, "versions")
    assert read == expected
    assert any(
        a["measures"]["pga"].get("missing") for r in read.values() for a in r["assessments"]
    )  # the retracted PGA is no baseline value


def test_the_newest_copy_by_integer_version_is_read(tmp_path: Path) -> None:
    """No ``lastUpdated``: the greater integer ``versionId`` (9 < 10, not as text)."""
    current, versions = _two_versions(tmp_path, {"versionId": "9"}, {"versionId": "10"})
    assert _summaries(versions, tmp_path, "versions") == _summaries(current, tmp_path, "current")


def test_a_shared_medication_is_read_in_its_newest_version(tmp_path: Path) -> None:
    """A Medication (of no patient) exported twice: once per patient block
    (``organizeOutputBy``, IG 3.0.0: such resources "MAY be repeated in every resource block")
    at two moments, its strength corrected in between."""
    med: Json = {
        "resourceType": "Medication",
        "id": "ivig",
        "meta": {"versionId": "2", "lastUpdated": "2024-05-02T08:00:00Z"},
        "code": {"text": "Privigen 10%"},
    }
    old = {**med, "meta": {"versionId": "1", "lastUpdated": "2024-05-01T08:00:00Z"}}
    old["code"] = {"text": "Privigen 5%"}
    folder = tmp_path / "export"
    folder.mkdir()
    _write(folder / "1.output.ndjson", [med])
    _write(folder / "2.output.ndjson", [old])
    out = tmp_path / "partitions"
    for r in byte_ranges(folder):
        partition_range(r, str(out), 2)
    assert orjson.loads(shared_resources(str(out))["Medication/ivig"]) == med


def wrong_key(resource: Json) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_an_older_copy_that_names_another_patient_is_not_read_for_that_patient(
    tmp_path: Path, engine: str
) -> None:
    """An IVIG administration charted on the wrong patient (version 1) and moved to the right
    one (version 2), both versions exported: it counts for the right patient only, on either
    engine and with byte ranges cut anywhere (each copy read by another task), and the patient
    it was taken from is told why it is not read."""
    plain = tmp_path / "plain"
    write_ndjson(make_cohort(2, seed=11), plain)
    types = _lines(plain)
    given = types.pop("MedicationAdministration")
    moved = next(m for m in given if m["subject"]["reference"] == "Patient/syn000000")
    wrong = {**copy.deepcopy(moved), "subject": {"reference": "Patient/syn000001"}}
    wrong["meta"] = {"versionId": "1", "lastUpdated": "2024-07-02T14:00:00Z"}
    right = {
        **copy.deepcopy(moved),
        "meta": {"versionId": "2", "lastUpdated": "2024-07-02T15:00:00Z"},
    }
    rest = [m for m in given if m["id"] != moved["id"]]
    current, versions = tmp_path / "current", tmp_path / "versions"
    for folder in (current, versions):
        folder.mkdir()
        for rtype, resources in types.items():
            _write(folder / f"1.{rtype}.ndjson", resources)
    _write(current / "1.MedicationAdministration.ndjson", [*rest, right])
    _write(versions / "1.MedicationAdministration.ndjson", [*rest, right])
    _write(versions / "2.MedicationAdministration.ndjson", [wrong])
    for target in (997, 1 << 30):  # the copies met by two tasks, or by one
        out = tmp_path / f"partitions-{target}"
        for r in byte_ranges(versions, target):
            partition_range(r, str(out), 3)
        stale = partition.merge_stale(partition.stale_copies(str(out), b) for b in range(3))
        assert stale == {"Patient/syn000001": {wrong_key(wrong)}}
    expected = _summaries(current, tmp_path, "current")
    read = _summaries(versions, tmp_path, "versions", "--engine", engine, "--workers", "1")
    told = [
        i for i in read["Patient/syn000001"].pop("issues") if i.get("resource") == wrong_key(wrong)
    ]
    assert told and all(i["severity"] == "information" for i in told)
    expected["Patient/syn000001"].pop("issues")
    assert read == expected


AZURE_DELETED = {
    "url": "http://azurehealthcareapis.com/data-extensions/deleted-state",
    "valueString": "soft-deleted",
}
"""What the Microsoft FHIR server's export ``includeAssociatedData=_deleted`` adds to the
``meta.extension`` of a deleted resource (microsoft/fhir-server: KnownFhirPaths
``AzureSoftDeletedExtensionUrl``, ModelExtensions ``TryAddSoftDeletedExtension``)."""


def test_a_resource_exported_as_soft_deleted_is_not_read(tmp_path: Path) -> None:
    """``$export?includeAssociatedData=_history,_deleted`` (Microsoft FHIR server): an IVIG
    administration deleted from the chart comes as its live version 1 and its deleted
    version 2, and a deleted PGA as its deleted version only; neither is read, as if the
    export did not hold them (as a server no longer returns a deleted resource)."""
    plain = tmp_path / "plain"
    write_ndjson(make_cohort(2, seed=11), plain)
    types = _lines(plain)
    given, observations = types.pop("MedicationAdministration"), types.pop("Observation")
    gone = given[1]
    live = {
        **copy.deepcopy(gone),
        "meta": {"versionId": "1", "lastUpdated": "2024-07-02T14:00:00Z"},
    }
    deleted = copy.deepcopy(gone)
    deleted["meta"] = {
        "versionId": "2",
        "lastUpdated": "2024-07-03T09:00:00Z",
        "extension": [AZURE_DELETED],
    }
    pga = next(o for o in observations if o["code"]["coding"][0]["code"] == "pga")
    pga_deleted = {**copy.deepcopy(pga), "meta": {"versionId": "3", "extension": [AZURE_DELETED]}}
    current, exported = tmp_path / "current", tmp_path / "exported"
    for folder in (current, exported):
        folder.mkdir()
        for rtype, resources in types.items():
            _write(folder / f"{rtype}-1.ndjson", resources)
    _write(current / "MedicationAdministration-1.ndjson", [m for m in given if m is not gone])
    _write(current / "Observation-1.ndjson", [o for o in observations if o is not pga])
    _write(exported / "MedicationAdministration-1.ndjson", [deleted, *given[2:]])
    _write(exported / "MedicationAdministration-2.ndjson", [given[0], live])
    _write(
        exported / "Observation-1.ndjson", [pga_deleted if o is pga else o for o in observations]
    )
    assert _summaries(exported, tmp_path, "exported") == _summaries(current, tmp_path, "current")
