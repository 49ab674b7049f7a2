"""Byte ranges cut anywhere still give every line exactly once, grouped by patient."""

from __future__ import annotations

from pathlib import Path

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
