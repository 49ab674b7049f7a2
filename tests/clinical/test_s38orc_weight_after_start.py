"""A weight recorded later on a cycle's start day than the cycle's start is not its dosing weight.

Clinical spec §4: the dosing weight is "the latest body weight (LOINC 29463-7) within 30 days
before the cycle starts". A cycle starts at its first administration's start. A weight taken at
15:00 on a cycle that started at 09:00 (after the first bag ran: 350 mL of fluid later) is after
the cycle starts, yet it was the cycle's dosing weight: 80 kg instead of the 70 kg measured two
days before, 1.75 g/kg and a false off-target warning instead of 2 g/kg, and every rate of the
cycle in mg/kg/min on it. A weight recorded before the start on that day, or on that day with no
time (it may have been taken before), still counts, as before (audit s38orc, regression oracle).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import BodyWeight, PatientFacts
from fhirtis.clinical.weight import PlausibleBody, dosing_weight_from
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder

Json = dict[str, Any]


def _cycle_one(extra_weight_when: str) -> tuple[Decimal | None, Decimal | None, list[str]]:
    b: Json = responder()  # 70 kg on 2024-01-06; cycle 1 starts 2024-01-08T09:00:00+01:00
    b["entry"].append(
        {"resource": obs("w-day1", "29463-7", 80, "kg", extra_weight_when, system=LOINC)}
    )
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(b)), Settings())
    cycle = result.evaluation.exposure.cycles[0]
    return cycle.dosing_weight.kg, cycle.g_per_kg, [n.code for n in cycle.notes]


def test_weight_later_on_the_start_day_is_not_the_dosing_weight() -> None:
    kg, g_per_kg, notes = _cycle_one("2024-01-08T15:00:00+01:00")
    assert kg == Decimal(70)
    assert g_per_kg == Decimal(2)
    assert "dose-off-target" not in notes


def test_weight_later_on_the_start_day_in_another_offset() -> None:
    # 08:30Z is 09:30+01:00: after the 09:00+01:00 start, though its UTC clock reads earlier
    kg, _, _ = _cycle_one("2024-01-08T08:30:00Z")
    assert kg == Decimal(70)


@pytest.mark.parametrize("when", ["2024-01-08T07:30:00+01:00", "2024-01-08T09:00:00+01:00"])
def test_weight_before_or_at_the_start_counts(when: str) -> None:
    kg, g_per_kg, _ = _cycle_one(when)
    assert kg == Decimal(80)
    assert g_per_kg == Decimal("1.75")


def test_date_only_weight_on_the_start_day_still_counts() -> None:
    kg, _, _ = _cycle_one("2024-01-08")
    assert kg == Decimal(80)


def test_dosing_weight_from_without_a_start_instant_reads_the_day() -> None:
    body = PlausibleBody.of(
        [
            BodyWeight("Observation/a", datetime(2024, 1, 6, tzinfo=UTC), Decimal(70)),
            BodyWeight(
                "Observation/b", datetime(2024, 1, 8, 15, tzinfo=UTC), Decimal(80), timed=True
            ),
        ],
        [],
        Settings().policy,
    )
    patient = PatientFacts()
    on = datetime(2024, 1, 8, tzinfo=UTC).date()
    assert dosing_weight_from(on, body, patient).kg == Decimal(80)
    start = datetime(2024, 1, 8, 9, tzinfo=UTC)
    assert dosing_weight_from(on, body, patient, start=start).kg == Decimal(70)
