"""The CDS rate card's dosing weight is the one of the cycle the order's infusion will belong to,
counted from when the order says the infusion starts, not from when it is signed.

Clinical spec §4: an administration starting at most ``cycle_gap_days`` (7) days after the
previous one belongs to that one's cycle, and a cycle's dosing weight is the latest weight before
it starts. An IVIG course is often ordered ahead: signed the day after cycle 1's infusion, for
the next cycle four weeks later (R4 MedicationRequest ``dosageInstruction.timing``:
``repeat.boundsPeriod.start`` or ``event``). The card took the order as given when signed, so it
"continued cycle 1" and checked the rate on cycle 1's 70 kg, though the infusion, 27 days later,
starts a new cycle whose dosing weight is this morning's 80 kg: 168 mL/h suggested where the
maximum for the infusion as the pipeline will compute it is 192 mL/h. An order starting within
the cycle's gap (the next day of a 2-day course) still continues the cycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fhirtis.api.cds_hooks.cards import check_order, max_rate_card
from fhirtis.api.cds_hooks.service import evaluate, extractor_for
from fhirtis.fhir.orders import read_ivig_order
from fhirtis.pipeline.offline import Options, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.api.test_s39left_cds_order_cycle_weight import _order as _order_signed_now
from tests.api.test_s39left_cds_order_cycle_weight import _resources
from tests.fhir.builders import LOINC, administration, obs, qty

Json = dict[str, Any]
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)  # the order is signed
W70 = obs("w70", "29463-7", 70, "kg", "2024-05-07T09:00:00Z", system=LOINC)
W80 = obs("w80", "29463-7", 80, "kg", "2024-05-10T08:00:00Z", system=LOINC)  # this morning
CYCLE_1 = administration(
    "ma1", "2024-05-09T09:00:00Z", "2024-05-09T13:00:00Z", dose=qty(350, "mL")
)  # yesterday, on 70 kg


def _order(timing: Json | None) -> Json:
    order = _order_signed_now()  # 300 mL/h of the 10% product
    if timing is not None:
        order["dosageInstruction"][0]["timing"] = timing
    return order


def _card(timing: Json | None) -> Json:
    data = _resources(W70, CYCLE_1, W80)
    result = evaluate(data, Settings(), NOW)
    order = read_ivig_order(
        extractor_for(Settings()), "MedicationRequest/rx1", _order(timing), data.resolve
    )
    assert order is not None
    limit = result.evaluation.thrombosis.max_rate_now
    ordered = result.weight_of(order)
    check = check_order(order, limit, ordered.weight)
    return max_rate_card(check, limit, ordered, result.now)


def _pipeline_weight(start: str) -> Decimal | None:
    """The dosing weight the pipeline computes for the cycle of an infusion given at ``start``."""
    given = administration("ma2", start, None, dose=qty(350, "mL"), rate=qty(300, "mL/h"))
    result = evaluate_patient_resources(
        _resources(W70, CYCLE_1, W80, given), Settings(), Options(as_of=NOW)
    )
    (cycle,) = [
        c
        for c in result.evaluation.exposure.cycles
        if any("ma2" in a.administration.source for a in c.administrations)
    ]
    return cycle.dosing_weight.kg


def test_an_order_for_next_month_starts_a_new_cycle_on_todays_weight() -> None:
    assert _pipeline_weight("2024-06-06T09:00:00Z") == Decimal(80)
    card = _card({"repeat": {"boundsPeriod": {"start": "2024-06-06T09:00:00Z"}}})
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 192 mL/h for 80 kg of 100 mg/mL"
    assert (
        "- Dosing weight of a new cycle starting 2024-06-06 (the order's start): 80 kg"
        in card["detail"]
    )


def test_a_date_only_event_for_next_month_is_a_new_cycle_too() -> None:
    card = _card({"event": ["2024-06-20", "2024-06-06"]})  # the earliest event is the start
    assert "a new cycle starting 2024-06-06 (the order's start): 80 kg" in card["detail"]


def test_an_order_for_tomorrow_continues_the_cycle() -> None:
    assert _pipeline_weight("2024-05-11T09:00:00Z") == Decimal(70)
    card = _card({"repeat": {"boundsPeriod": {"start": "2024-05-11T09:00:00Z"}}})
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"
    assert (
        "- Dosing weight of cycle 1 (started 2024-05-09), which this order continues"
        in (card["detail"])
    )


def test_an_order_without_a_start_or_starting_earlier_is_given_now() -> None:
    for timing in (None, {"repeat": {"boundsPeriod": {"start": "2024-04-01"}}}, {"event": ["x"]}):
        card = _card(timing)
        assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"
        assert "which this order continues" in card["detail"]
