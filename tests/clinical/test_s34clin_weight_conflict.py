"""Two body weights recorded at the same time that disagree (session s34, independent oracle).

The dosing weight is "the latest body weight" (clinical spec §4). Two plausible weights at the
same time (two date-only weights on one day, a device and a manual entry) are equally latest:
which one is used decided the cycle's g/kg and mg/kg/min, and the code picked one by the
order of their sources, silently. The spec's rule is "never guess silently" (its preamble;
§2.5 does the same for core set measures: "If the candidates disagree, say so in the result's
warnings"): the cycle now says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fhirtis.clinical.facts import BodyWeight, FhirTime, IvigAdministration, PatientFacts, Sex
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.weight import dosing_weight

D = Decimal
DAY0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
MALE = PatientFacts(sex=Sex.MALE)
WHEN = DAY0 - timedelta(days=1)


def _codes(weights: list[BodyWeight]) -> tuple[Decimal | None, list[str]]:
    dw = dosing_weight(DAY0.date(), weights, [], MALE, Policy())
    return dw.kg, [n.code for n in dw.notes]


def test_same_time_weights_that_disagree_are_warned() -> None:
    kg, codes = _codes(
        [BodyWeight("Observation/a", WHEN, D("52.6")), BodyWeight("Observation/b", WHEN, D("47.3"))]
    )
    assert kg in {D("52.6"), D("47.3")}
    assert "weight-conflict" in codes


def test_the_warning_reaches_the_cycle() -> None:
    exposure = compute_exposure(
        [IvigAdministration("MedicationAdministration/1", FhirTime.of(DAY0), dose_g=D(100))],
        [
            BodyWeight("Observation/a", WHEN, D("52.6")),
            BodyWeight("Observation/b", WHEN, D("47.3")),
        ],
        [],
        MALE,
        Policy(),
    )
    assert "weight-conflict" in {n.code for n in exposure.all_notes()}


def test_same_time_weights_that_agree_are_not_warned() -> None:
    kg, codes = _codes(
        [BodyWeight("Observation/a", WHEN, D("70")), BodyWeight("Observation/b", WHEN, D("70.0"))]
    )
    assert kg == D(70)
    assert "weight-conflict" not in codes


def test_a_later_weight_is_simply_the_latest() -> None:
    kg, codes = _codes(
        [
            BodyWeight("Observation/a", WHEN - timedelta(hours=1), D("52.6")),
            BodyWeight("Observation/b", WHEN, D("47.3")),
        ]
    )
    assert kg == D("47.3")
    assert "weight-conflict" not in codes


def test_an_implausible_twin_is_excluded_not_a_conflict() -> None:
    kg, codes = _codes(
        [BodyWeight("Observation/a", WHEN, D("70")), BodyWeight("Observation/b", WHEN, D("700"))]
    )
    assert kg == D(70)
    assert "weight-conflict" not in codes
    assert "weight-implausible" in codes
