"""What fhirtis writes stays byte-identical to what it wrote before the one-core performance
work of issue 13: the transaction Bundle and the summary record of every example and of 1,000
seeded synthetic patients (digests in ``tests/data/output-digests.txt``, made by
``python -m tests.output_digests`` before the change)."""

from __future__ import annotations

from pathlib import Path

from tests.output_digests import SYNTHETIC_PATIENTS, digests

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "bundles"

EXPECTED = Path(__file__).parent / "data" / "output-digests.txt"


def test_every_output_is_byte_identical_to_before() -> None:
    expected = EXPECTED.read_text().splitlines()
    actual = list(digests())
    patients = len(list(EXAMPLES.glob("*.json"))) + SYNTHETIC_PATIENTS
    assert len(actual) == len(expected) == patients
    changed = [a.split()[0] for a, e in zip(actual, expected, strict=True) if a != e]
    assert changed == []
