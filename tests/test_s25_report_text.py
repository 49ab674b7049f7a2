"""What ``fhirtis report`` prints for people: quartiles of exact arithmetic read to two decimals
("7.939725–11.87365" was printed), and a count of one in the singular ("1 events" was the TEE
plot's title). The records (``--out`` JSON and CSV) keep the exact values."""

from __future__ import annotations

from decimal import Decimal

from fhirtis.registry.report.plots import count_text
from fhirtis.registry.report.stats import spread


def test_quartiles_are_printed_to_two_decimals_and_kept_exact() -> None:
    s = spread([Decimal("7.939725"), Decimal("8.1"), Decimal("11.87365"), Decimal("12")])
    assert s is not None
    assert s.text() == "9.99 (8.06–11.91), n=4"
    assert s.as_record()["q1"] == Decimal("8.05993125")  # the record keeps it exact
    whole = spread([1, 2, 3, 4, 5])
    assert whole is not None and whole.text() == "3 (2–4), n=5"


def test_a_count_of_one_is_singular() -> None:
    assert count_text(1, "event") == "1 event"
    assert count_text(0, "event") == "0 events"
    assert count_text(2, "cycle") == "2 cycles"
