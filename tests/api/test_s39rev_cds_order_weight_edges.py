"""The CDS rate card's order dosing weight at its edges (session s39, helper rev).

``order_dosing_weight`` (clinical spec §4, docs/clinical-specification.md "An order's dosing
weight") must give the dosing weight the pipeline computes for the cycle holding the order's
infusion once it is recorded. It compared now with the start of the *last* administration on
record, so an administration recorded with a start after now (a pre-charted or mistyped record)
made the order "continue" a cycle that had not begun: the card said "Dosing weight of cycle 2
(started 2024-05-20), which this order continues" and used a weight recorded after now (90 kg on
the 19th), where the pipeline puts the infusion given now in a new cycle starting now, on the
weight before it (80 kg on the 9th). The order continues the cycle of the latest administration
that started on or before now, when that one started at most ``cycle_gap_days`` days before.

And a cycle the order continues with no weight before it began: the summary said "no body
weight" while one was recorded since (the cycle's dosing weight is the one before it began); it
now says "no body weight before cycle 1 started".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fhirtis.api.cds_hooks.service import evaluate
from fhirtis.pipeline.offline import Options, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.api.test_s39left_cds_order_cycle_weight import _card, _resources
from tests.fhir.builders import LOINC, administration, obs, qty

Json = dict[str, Any]
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def _weight(oid: str, kg: int, when: str) -> Json:
    return obs(oid, "29463-7", kg, "kg", when, system=LOINC)


def _admin(aid: str, start: str) -> Json:
    return administration(aid, start, None, dose=qty(350, "mL"), rate=qty(150, "mL/h"))


def _given_now() -> Json:
    end = (NOW + timedelta(hours=1)).isoformat()
    return administration("maX", NOW.isoformat(), end, dose=qty(350, "mL"), rate=qty(300, "mL/h"))


def _pipeline_cycle(*resources: Json) -> tuple[int, str, Decimal | None]:
    """The cycle holding the order's infusion once recorded: index, start date, dosing kg."""
    result = evaluate_patient_resources(
        _resources(*resources, _given_now()), Settings(), Options(as_of=NOW)
    )
    (cycle,) = [
        c
        for c in result.evaluation.exposure.cycles
        if any("maX" in a.administration.source for a in c.administrations)
    ]
    return cycle.index, cycle.start.day.isoformat(), cycle.dosing_weight.kg


# cycle 1 on 10 April; 80 kg yesterday; an administration recorded for the 20th (after now),
# with 90 kg on the 19th
_FUTURE = (
    _weight("w70", 70, "2024-04-01T08:00:00Z"),
    _admin("ma0", "2024-04-10T09:00:00Z"),
    _weight("w80", 80, "2024-05-09T08:00:00Z"),
    _weight("w90", 90, "2024-05-19T08:00:00Z"),
    _admin("ma1", "2024-05-20T09:00:00Z"),
)


def test_an_administration_recorded_after_now_is_no_cycle_the_order_continues() -> None:
    assert _pipeline_cycle(*_FUTURE) == (2, "2024-05-10", Decimal(80))
    result = evaluate(_resources(*_FUTURE), Settings(), NOW)
    assert result.order_weight.cycle is None
    assert result.order_weight.weight.kg == Decimal(80)
    detail = _card(*_FUTURE)["detail"]
    assert "- Dosing weight of a new cycle starting now (2024-05-10): 80 kg" in detail
    assert "w90" not in detail


def test_a_later_administration_within_the_gap_joins_the_new_cycle_the_order_starts() -> None:
    # recorded for the 13th, 3 days after now: once the order's infusion is recorded, it is
    # the second of the cycle the order starts now, whose dosing weight is the one before now
    data = (*_FUTURE[:3], _weight("w90", 90, "2024-05-12T08:00:00Z"), _admin("ma1", "2024-05-13"))
    assert _pipeline_cycle(*data) == (2, "2024-05-10", Decimal(80))
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.cycle is None
    assert result.order_weight.weight.kg == Decimal(80)


def test_an_order_in_the_middle_of_a_cycle_continues_it() -> None:
    # cycle 2 began on the 8th; one of its infusions is recorded for the 12th (after now)
    data = (
        _weight("w70", 70, "2024-05-07T08:00:00Z"),
        _admin("ma1", "2024-05-08T09:00:00Z"),
        _weight("w80", 80, "2024-05-09T08:00:00Z"),
        _admin("ma2", "2024-05-12T09:00:00Z"),
    )
    assert _pipeline_cycle(*data) == (1, "2024-05-08", Decimal(70))
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.cycle is not None
    assert result.order_weight.cycle.index == 1
    assert result.order_weight.weight.kg == Decimal(70)


def test_an_order_exactly_cycle_gap_days_after_the_last_administration_continues_its_cycle() -> (
    None
):
    # 3 May → 10 May: 7 days, the same cycle (spec §4: "more than 7 days" starts a new one)
    data = (
        _weight("w70", 70, "2024-05-01T08:00:00Z"),
        _admin("ma1", "2024-05-03T09:00:00Z"),
        _weight("w80", 80, "2024-05-05T08:00:00Z"),
    )
    assert _pipeline_cycle(*data) == (1, "2024-05-03", Decimal(70))
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.cycle is not None
    assert result.order_weight.weight.kg == Decimal(70)
    assert (
        "- Dosing weight of cycle 1 (started 2024-05-03), which this order continues: 70 kg"
        in (_card(*data)["detail"])
    )


def test_a_continued_cycle_without_a_weight_before_it_does_not_say_no_body_weight() -> None:
    # the cycle began yesterday with no weight before it; 80 kg was recorded this morning
    data = (_admin("ma1", "2024-05-09T09:00:00Z"), _weight("w80", 80, "2024-05-10T08:00:00Z"))
    assert _pipeline_cycle(*data) == (1, "2024-05-09", None)
    card = _card(*data)
    assert card["summary"] == (
        "Max IVIG rate 4 mg/kg/min; mL/h cannot be computed: no body weight before cycle 1 started"
    )
    assert (
        "which this order continues: unknown (no body weight on or before the cycle start"
        in (card["detail"])
    )
