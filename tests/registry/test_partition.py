"""Byte ranges cut anywhere still give every line exactly once, grouped by patient."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from fhirtis.registry import cohort
from fhirtis.registry.errors import CohortError
from fhirtis.registry.ndjson_store import NdjsonStore
from fhirtis.registry.partition import (
    byte_ranges,
    partition_patients,
    partition_range,
    shared_resources,
)
from tests.synthetic import make_cohort, write_ndjson


def _grouped(folder: Path, out: Path, target: int) -> tuple[dict[str, object], int]:
    ranges = byte_ranges(folder, target)
    for r in ranges:
        partition_range(r, str(out), 3)
    grouped = {p: rows for b in range(3) for p, rows in partition_patients(str(out), b)}
    return {**grouped, "shared": sorted(shared_resources(str(out)).items())}, len(ranges)


def test_small_ranges_give_the_same_partitions_as_whole_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    counts = write_ndjson(make_cohort(5, seed=2), folder)
    whole, n_whole = _grouped(folder, tmp_path / "a", 1 << 30)
    cut, n_cut = _grouped(folder, tmp_path / "b", 997)  # cuts inside lines
    assert n_whole == len(counts) and n_cut > 20 * n_whole
    assert cut == whole
    assert len(whole) == 6  # five patients and the shared Medications
    assert sum(len(rows) for rows in whole.values()) == sum(counts.values())  # type: ignore[arg-type]


def _rewrite(path: Path, index: int, change: dict[str, object]) -> dict[str, object]:
    rows = path.read_bytes().splitlines()
    resource = {**orjson.loads(rows[index]), **change}
    rows[index] = orjson.dumps(resource)
    path.write_bytes(b"\n".join(rows) + b"\n")
    return resource


def test_ids_that_are_not_fhir_ids_are_bad_lines_not_a_broken_work_folder(
    tmp_path: Path,
) -> None:
    """The work folder is tab-separated lines: an id (or a patient reference) holding a tab or
    a newline, which no FHIR id may, would cut its line apart. Such a resource is a problem of
    its file (where and why), and every other line is still partitioned."""
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=3), folder)
    observations = folder / "Observation.ndjson"
    total = len(observations.read_bytes().splitlines())
    _rewrite(observations, 0, {"id": "bad\nid"})
    _rewrite(observations, 1, {"id": "tab\tid"})
    _rewrite(observations, 2, {"subject": {"reference": "Patient/x\ty"}})
    _rewrite(observations, 3, {"resourceType": "Obser\tvation"})
    out = tmp_path / "work"
    problems = []
    for r in byte_ranges(folder):
        problems += partition_range(r, str(out), 3).problems
    assert sorted(why for _, _, why in problems) == [
        "not a FHIR resource: the id is not a FHIR id",
        "not a FHIR resource: the id is not a FHIR id",
        "not a FHIR resource: the resourceType is not a resource type",
        "the patient reference Patient/… does not name a FHIR id",
    ]
    assert {file for file, _, _ in problems} == {"Observation.ndjson"}
    rows = {p: rows for b in range(3) for p, rows in partition_patients(str(out), b)}
    kept = [k for p in rows for k, _ in rows[p] if k.startswith("Observation/")]
    assert len(kept) == total - 4


def test_a_version_specific_subject_is_grouped_with_its_patient(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(1, seed=3), folder)
    observation = _rewrite(
        folder / "Observation.ndjson", 0, {"subject": {"reference": "Patient/syn000000/_history/3"}}
    )
    out = tmp_path / "work"
    for r in byte_ranges(folder):
        partition_range(r, str(out), 3)
    rows = {p: dict(rows) for b in range(3) for p, rows in partition_patients(str(out), b)}
    assert list(rows) == ["Patient/syn000000"]
    assert f"Observation/{observation['id']}" in rows["Patient/syn000000"]


def test_gzipped_ndjson_files_are_read_as_their_plain_copies(tmp_path: Path) -> None:
    """A Bulk Data export kept compressed (``*.ndjson.gz``) is read, by the byte ranges of the
    Dask and local engines and by the store, exactly as its plain files are; it was skipped
    silently (every patient evaluated without those resources, exit 0)."""
    plain = tmp_path / "plain"
    write_ndjson(make_cohort(4, seed=3), plain)
    packed = tmp_path / "packed"
    packed.mkdir()
    for path in plain.iterdir():
        if path.name.startswith("MedicationAdministration"):
            (packed / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        else:
            (packed / path.name).write_bytes(path.read_bytes())
    expected, _ = _grouped(plain, tmp_path / "a", 1 << 30)
    got, _ = _grouped(packed, tmp_path / "b", 997)
    assert got == expected
    with NdjsonStore(tmp_path / "p.sqlite") as a, NdjsonStore(tmp_path / "z.sqlite") as b:
        assert a.load_folder(plain).resources == b.load_folder(packed).resources
        assert [a.resources_of(p) for p in a.patients()] == [
            b.resources_of(p) for p in b.patients()
        ]


def test_a_gzipped_file_that_is_not_gzip_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Observation.ndjson.gz").write_bytes(b'{"resourceType": "Observation"}\n')
    with pytest.raises(CohortError, match=r"Observation\.ndjson\.gz: not a complete gzip file"):
        for r in byte_ranges(folder):
            partition_range(r, str(tmp_path / "out"), 3)


def test_a_store_whose_load_fails_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stops on a fault while loading the work store; its SQLite connection is closed,
    not left to the collector (Python 3.13 warns of an unclosed database: a failing CI run)."""
    closed: list[Path] = []
    real = NdjsonStore.close

    def close(self: NdjsonStore) -> None:
        closed.append(self.path)
        real(self)

    monkeypatch.setattr(NdjsonStore, "close", close)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Observation.ndjson.gz").write_bytes(b"not gzip")
    with pytest.raises(CohortError):
        cohort.load_store(folder, tmp_path / "work")
    assert closed == [tmp_path / "work" / "store.sqlite"]
