"""The rate suggestion for an order written as a range (R4 Dosage.doseAndRate.rateRange).

IVIG is titrated: an order may say "start at 100 mL/h, increase to 300 mL/h" as a rateRange
(the check reads its ``high``, orders.py). The suggestion replaced the whole range with a fixed
``rateQuantity`` at the maximum: a clinician accepting it would start the infusion at the
maximum instead of titrating up to it. The suggestion now keeps the range and lowers its
``high`` to the maximum, keeping ``low`` where it is at most that (else leaving it out)."""

from __future__ import annotations

from typing import Any

import pytest

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
from tests.fhir.builders import qty


def _suggested(rate_range: dict[str, Any]) -> dict[str, Any]:
    """A hook call ordering IVIG at ``rate_range`` for a 70 kg patient with a DVT history."""
    return call(
        [ivig_order(rate=rate_range, rate_key="rateRange")], full_prefetch(patient_70kg(DVT))
    )


@pytest.mark.parametrize(
    ("low", "kept"),
    [
        (qty(100, "mL/h"), qty(100, "mL/h")),  # titrated up to the maximum
        (qty(1, "mL/min"), qty(1, "mL/min")),  # 60 mL/h: below it, in the order's own unit
        (qty(200, "mL/h"), None),  # above the maximum: left for the clinician to set
        (None, None),
    ],
)
async def test_a_range_keeps_its_start_and_gets_the_maximum_as_its_end(
    low: dict[str, Any] | None, kept: dict[str, Any] | None
) -> None:
    rate_range = {"high": qty(300, "mL/h")}  # 300 mL/h: 7.14 mg/kg/min at 70 kg of 10 %
    if low is not None:
        rate_range["low"] = low
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, _suggested(rate_range)))
    card = card_with(cards, "exceeds")
    (suggestion,) = card["suggestions"]
    assert suggestion["label"] == "Lower the infusion rate to 138 mL/h"
    resource = suggestion["actions"][0]["resource"]
    (dose_and_rate,) = resource["dosageInstruction"][0]["doseAndRate"]
    assert "rateQuantity" not in dose_and_rate
    expected: dict[str, Any] = {"high": qty(138, "mL/h")}
    if kept is not None:
        expected["low"] = kept
    assert dose_and_rate["rateRange"] == expected
    assert dose_and_rate["doseQuantity"] == qty(70, "g")  # nothing else changes
