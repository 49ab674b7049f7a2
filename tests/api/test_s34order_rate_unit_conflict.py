"""An ordered rate whose ``unit`` text and UCUM ``code`` disagree (clinical spec §4, §5.2).

IVIG titration orders are written per kg ("0.5 mL/kg/h, increase to 4 mL/kg/h"). A sending
system that maps its display unit to UCUM imperfectly may send ``unit`` "mL/kg/h" with
``code`` "mL/h": fhirtis read the code alone, took 4 mL/kg/h (6.67 mg/kg/min of a 10 %
product, above the 3.3 maximum) as 4 mL/h (0.1 mg/kg/min) and answered "within the maximum"
in an info card. A rate whose unit text and code disagree (per kg or not, or another factor:
"mL/min" shown, "mL/h" coded) is now refused, said in a warning card, never misread."""

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

UCUM = "http://unitsofmeasure.org"


def _q(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


async def _max_card(rate: dict[str, Any], rate_key: str = "rateQuantity") -> dict[str, Any]:
    body = call([ivig_order(rate=rate, rate_key=rate_key)], full_prefetch(patient_70kg(DVT)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    return card_with(cards, "Max IVIG rate")


@pytest.mark.parametrize(
    ("rate", "rate_key"),
    [
        (_q(4, "mL/kg/h", "mL/h"), "rateQuantity"),  # per kg shown, not coded
        (_q(4, "mL/kg/hr", "mL/h"), "rateQuantity"),  # as an EHR spells it
        (_q(2, "mL/min", "mL/h"), "rateQuantity"),  # 120 mL/h shown, 2 mL/h coded
        ({"low": qty(0.5, "mL/kg/h"), "high": _q(4, "mL/kg/h", "mL/h")}, "rateRange"),
        (
            {"numerator": _q(4, "mL/kg", "mL"), "denominator": qty(1, "h")},
            "rateRatio",
        ),
    ],
)
async def test_a_rate_whose_unit_and_code_disagree_is_refused_not_misread(
    rate: dict[str, Any], rate_key: str
) -> None:
    card = await _max_card(rate, rate_key)
    assert card["indicator"] == "warning"
    assert "within the maximum" not in card["detail"]
    assert "A rate could not be read" in card["detail"]
    assert "disagree" in card["detail"]


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (_q(300, "mL/hr", "mL/h"), "300 mL/h = 7.14 mg/kg/min: above"),  # an alias of the code
        (_q(4, "ml/kg/hr", "mL/kg/h"), "4 mL/kg/h = 6.67 mg/kg/min: above"),
        (_q(100, "milliliters per hour", "mL/h"), "100 mL/h = 2.38 mg/kg/min: within"),
    ],
)
async def test_a_unit_text_that_agrees_or_cannot_be_read_leaves_the_code(
    rate: dict[str, Any], shown: str
) -> None:
    card = await _max_card(rate)
    assert shown in card["detail"]
    assert "could not be read" not in card["detail"]
