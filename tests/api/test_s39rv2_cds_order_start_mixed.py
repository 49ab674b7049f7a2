"""An order whose dosage instructions give its start both as a date and as a dateTime with an
offset starts on the earliest *day* of the patient's records' calendar, as the pipeline would
date the infusion (clinical spec §4: an infusion at most ``cycle_gap_days`` (7) days after the
previous one continues its cycle, whose dosing weight is the latest weight before it began).

R4 ``Timing.event`` is a list of dateTime, each a date or a dateTime with an offset. The
earliest start was taken by comparing instants with a date read as midnight UTC: on a calendar
at UTC-05:00, ``2024-05-16T20:00:00-05:00`` (05-16, the 7th day after cycle 1 on 05-09: it
continues cycle 1 on 70 kg) is a later instant (05-17T01:00Z) than ``2024-05-17`` (05-17T00:00Z),
so the order was counted from 05-17 (a new cycle on this morning's 80 kg): 192 mL/h suggested
where the infusion's maximum is 168 mL/h.
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
NOW = datetime(2024, 5, 10, 17, 0, tzinfo=UTC)  # 12:00 at UTC-05:00, the records' offset
W70 = obs("w70", "29463-7", 70, "kg", "2024-05-07T09:00:00-05:00", system=LOINC)
W80 = obs("w80", "29463-7", 80, "kg", "2024-05-10T08:00:00-05:00", system=LOINC)
CYCLE_1 = administration(
    "ma1", "2024-05-09T09:00:00-05:00", "2024-05-09T13:00:00-05:00", dose=qty(350, "mL")
)
EVENTS = ["2024-05-17", "2024-05-16T20:00:00-05:00"]  # the second is the earlier day


def test_the_pipeline_puts_the_infusion_of_the_earlier_day_in_cycle_1() -> None:
    given = administration("ma2", EVENTS[1], None, dose=qty(350, "mL"), rate=qty(300, "mL/h"))
    result = evaluate_patient_resources(
        _resources(W70, CYCLE_1, W80, given), Settings(), Options(as_of=NOW)
    )
    (cycle,) = [
        c
        for c in result.evaluation.exposure.cycles
        if any("ma2" in a.administration.source for a in c.administrations)
    ]
    assert cycle.index == 1
    assert cycle.dosing_weight.kg == Decimal(70)


def test_an_order_mixing_a_date_and_a_timed_event_starts_on_the_earliest_day() -> None:
    data = _resources(W70, CYCLE_1, W80)
    result = evaluate(data, Settings(), NOW)
    request = _order_signed_now()
    request["dosageInstruction"][0]["timing"] = {"event": EVENTS}
    order = read_ivig_order(
        extractor_for(Settings()), "MedicationRequest/rx1", request, data.resolve
    )
    assert order is not None
    limit = result.evaluation.thrombosis.max_rate_now
    ordered = result.weight_of(order)
    card = max_rate_card(check_order(order, limit, ordered.weight), limit, ordered, result.now)
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"
    assert (
        "- Dosing weight of cycle 1 (started 2024-05-09), which this order continues"
        in (card["detail"])
    )
