"""An IVIG order that gives its rate only in words (clinical spec §4: anything that cannot be
used is reported, never ignored silently; §5.2).

IVIG orders are often titrated in the dosage text, with no coded rate: "Start 0.5 mL/kg/hr,
increase every 30 min to max 8 mg/kg/min". The max-rate card said, in an info card, "The order
gives no infusion rate; the maximum applies when it is set", which is untrue, and a rate above
the maximum so written went unremarked. The card now says that the order gives its rate only in
words, which cannot be checked (naming where, never quoting it), and is a warning."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("text", "2 g/kg IV over 5 days, max rate 8 mg/kg/min"),
        ("text", "Start at 0.5 mL/kg/hr x 30 min, increase to max 4 mL/kg/hr as tolerated"),
        ("patientInstruction", "infuse at 300 ml/h"),
        ("additionalInstruction", "Titrate: 1 mL per kg per hour, then 2 mL per kg per hour"),
    ],
)
async def test_a_rate_given_only_in_words_is_said_not_to_be_checked(field: str, text: str) -> None:
    order = ivig_order()
    dosage = order["dosageInstruction"][0]
    if field == "additionalInstruction":
        dosage["additionalInstruction"] = [{"text": text}]
        where = "dosageInstruction[0].additionalInstruction[0].text"
    else:
        dosage[field] = text
        where = f"dosageInstruction[0].{field}"
    async with cds() as api:
        body = call([order], full_prefetch(patient_70kg(DVT)))
        card = card_with(cards_of(await api.post(SIGN, body)), "Max IVIG rate")
    assert card["indicator"] == "warning"
    assert "gives no infusion rate" not in card["detail"]
    assert f"only in words (`{where}`)" in card["detail"]
    assert "cannot be checked" in card["detail"]
    assert text not in card["detail"]  # named by where it is, not quoted


async def test_an_order_without_any_rate_still_says_so() -> None:
    async with cds() as api:
        body = call([ivig_order()], full_prefetch(patient_70kg(DVT)))  # "IVIG 2 g/kg over 2 days"
        card = card_with(cards_of(await api.post(SIGN, body)), "Max IVIG rate")
    assert card["indicator"] == "info"
    assert "The order gives no infusion rate" in card["detail"]
