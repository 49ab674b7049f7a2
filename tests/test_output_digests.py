"""What fhirtis writes stays byte-identical to what it wrote before the one-core performance
work of issue 13: the transaction Bundle and the summary record of every example and of 1,000
seeded synthetic patients (digests in ``tests/data/output-digests.txt``, made by
``python -m tests.output_digests`` before the change)."""

from __future__ import annotations

from pathlib import Path

from tests.output_digests import digests

EXPECTED = Path(__file__).parent / "data" / "output-digests.txt"


def test_every_output_is_byte_identical_to_before() -> None:
    expected = EXPECTED.read_text().splitlines()
    actual = list(digests())
    assert len(actual) == len(expected) == 1009
    changed = [a.split()[0] for a, e in zip(actual, expected, strict=True) if a != e]
    assert changed == []
