"""The CDS rate card's dosing weight is the one of the cycle the order's infusion belongs to.

Clinical spec §4: a cycle's dosing weight is the latest plausible body weight before the cycle
starts; an administration starting at most ``cycle_gap_days`` (7) days after the previous one
belongs to that one's cycle. The card used "the dosing weight now": the latest weight on or
before today's date, whatever cycle the order continues and whatever time of the day the weight
was taken. Worked case: 70 kg two days ago, the cycle's first infusion yesterday, 80 kg this
morning, the order today (cycle day 2). Once given, the pipeline computes that infusion's rate
and the cycle's g/kg on 70 kg (the weight before the cycle began); the card used 80 kg, so its
maximum of 4 mg/kg/min for this patient read 192 mL/h, and its suggestion would set the order to
192 mL/h: 4.57 mg/kg/min on the cycle's 70 kg, above the maximum (168 mL/h). The card and the
cycle disagreed for the same data. Likewise, on a new cycle, a weight recorded later today than the
order (after the infusion would start) is never the cycle's dosing weight.

The card now uses the order's cycle's dosing weight and says which: the ongoing cycle it
continues (its number and start), or a new cycle starting now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.api.cds_hooks.cards import check_order, max_rate_card
from fhirtis.api.cds_hooks.service import evaluate, extractor_for
from fhirtis.fhir.bundle import PatientResources, read_patient_bundle
from fhirtis.fhir.orders import read_ivig_order
from fhirtis.pipeline.offline import Options, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.api.test_cds_hooks import SIGN, call, card_with, cards_of, cds, full_prefetch, ivig_order
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, patient, qty

Json = dict[str, Any]
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
W70 = obs("w70", "29463-7", 70, "kg", "2024-05-08T09:00:00Z", system=LOINC)  # two days before
W80_MORNING = obs("w80", "29463-7", 80, "kg", "2024-05-10T08:00:00Z", system=LOINC)
W80_EVENING = obs("w80", "29463-7", 80, "kg", "2024-05-10T18:00:00Z", system=LOINC)
YESTERDAY = administration(
    "ma1",
    "2024-05-09T09:00:00Z",
    "2024-05-09T13:00:00Z",
    dose=qty(350, "mL"),
    rate=qty(150, "mL/h"),
)
# the order given now, as the record of its infusion will read (300 mL/h of 10%)
GIVEN_NOW = administration(
    "ma2",
    "2024-05-10T12:00:00Z",
    "2024-05-10T13:10:00Z",
    dose=qty(350, "mL"),
    rate=qty(300, "mL/h"),
)


def _resources(*resources: Json) -> PatientResources:
    return read_patient_bundle(orjson.dumps(bundle(patient(), medication(), *resources)))


def _order() -> Json:
    return {
        "resourceType": "MedicationRequest",
        "id": "rx1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/octa"},
        "dosageInstruction": [{"doseAndRate": [{"rateQuantity": qty(300, "mL/h")}]}],
    }


def _card(*resources: Json) -> Json:
    data = _resources(*resources)
    result = evaluate(data, Settings(), NOW)
    order = read_ivig_order(
        extractor_for(Settings()), "MedicationRequest/rx1", _order(), data.resolve
    )
    assert order is not None
    limit = result.evaluation.thrombosis.max_rate_now
    check = check_order(order, limit, result.order_weight.weight)
    return max_rate_card(check, limit, result.order_weight, result.now)


def _cycle_weight_once_given(*resources: Json) -> Decimal | None:
    """The dosing weight the pipeline computes for the cycle holding the order's infusion."""
    result = evaluate_patient_resources(
        _resources(*resources, GIVEN_NOW), Settings(), Options(as_of=NOW)
    )
    cycles = result.evaluation.exposure.cycles
    (cycle,) = [
        c for c in cycles if any("ma2" in a.administration.source for a in c.administrations)
    ]
    return cycle.dosing_weight.kg


def test_an_order_continuing_a_cycle_uses_the_cycles_dosing_weight() -> None:
    data = (W70, YESTERDAY, W80_MORNING)
    assert _cycle_weight_once_given(*data) == Decimal(70)
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.weight.kg == Decimal(70)
    assert result.order_weight.weight.weight_source == "Observation/w70"
    assert result.order_weight.cycle is not None and result.order_weight.cycle.index == 1
    card = _card(*data)
    detail = card["detail"]
    assert "- Dosing weight of cycle 1 (started 2024-05-09), which this order continues: 70 kg" in (
        detail
    )
    assert "`Observation/w70`" in detail and "w80" not in detail
    # 300 mL/h × 100 mg/mL / (60 × 70 kg) = 7.14 mg/kg/min (not 6.25 on 80 kg); the maximum
    # 4 mg/kg/min × 70 kg × 60 / 100 mg/mL = 168 mL/h (not 192 on 80 kg)
    assert "= 7.14 mg/kg/min: above the maximum" in detail
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"


def test_a_new_cycles_dosing_weight_was_recorded_before_it_starts() -> None:
    data = (W70, W80_EVENING)  # 80 kg recorded at 18:00, after the order at noon
    assert _cycle_weight_once_given(*data) == Decimal(70)
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.weight.kg == Decimal(70)
    assert result.order_weight.cycle is None
    card = _card(*data)
    assert "- Dosing weight of a new cycle starting now (2024-05-10): 70 kg" in card["detail"]
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"


def test_a_cycle_more_than_seven_days_ago_is_not_continued() -> None:
    old = administration(
        "ma0", "2024-05-02T09:00:00Z", "2024-05-02T13:00:00Z", dose=qty(350, "mL")
    )  # 8 days before: the order starts a new cycle, on this morning's weight
    data = (W70, old, W80_MORNING)
    assert _cycle_weight_once_given(*data) == Decimal(80)
    result = evaluate(_resources(*data), Settings(), NOW)
    assert result.order_weight.cycle is None
    assert result.order_weight.weight.kg == Decimal(80)


# -- the same through the service (order-sign), on the day the test runs ------------------------

TODAY = datetime.now(UTC).date()


@pytest.fixture
def _noon_today(monkeypatch: pytest.MonkeyPatch) -> None:
    noon = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    monkeypatch.setattr("fhirtis.api.cds_hooks.service._now", lambda: noon)


@pytest.mark.usefixtures("_noon_today")
async def test_the_services_card_checks_the_order_on_its_cycles_weight() -> None:
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    resources = [
        patient(),
        medication(),
        obs("w70", "29463-7", 70, "kg", (TODAY - timedelta(days=2)).isoformat(), system=LOINC),
        administration(
            "ma1",
            f"{yesterday}T09:00:00Z",
            f"{yesterday}T13:00:00Z",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        ),
        obs("w80", "29463-7", 80, "kg", f"{TODAY.isoformat()}T08:00:00Z", system=LOINC),
    ]
    body = call([ivig_order(rate=qty(300, "mL/h"))], full_prefetch(resources))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    card = card_with(cards, "Max IVIG rate")
    assert card["summary"] == "Max IVIG rate 4 mg/kg/min = 168 mL/h for 70 kg of 100 mg/mL"
    assert (
        f"- Dosing weight of cycle 1 (started {yesterday}), which this order continues"
        in (card["detail"])
    )
    assert "= 7.14 mg/kg/min: above the maximum" in card["detail"]
    # the suggestion sets the order to the maximum on the cycle's weight
    exceeded = card_with(cards, "exceeds")
    assert "(168 mL/h)" in exceeded["summary"]
