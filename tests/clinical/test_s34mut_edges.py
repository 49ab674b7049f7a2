"""Audit s34mut: mutation survivors at two inclusive edges.

- §2.3: juvenile when the age at dermatomyositis onset is < 18, otherwise adult. An onset on the
  18th birthday is adult *by the onset age*: the result must not claim that the age is unknown.
- §4/§5.2: the label maximum of 4 mg/kg/min expressed in an order's units for a 70 kg patient
  and a 10 % product (the inverse of the worked example mg/kg/min = mL/h × mg/mL / (60 × kg)):
  168 mL/h, 16.8 g/h, 2.4 mL/kg/h.
- §5.3: an onset "no more than 24 hours after [an administration's] end (its start when no end is
  recorded)" is early: exactly 24 h is early after that administration itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fhirtis.clinical.facts import FhirTime
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.population import decide_population
from fhirtis.clinical.rates import RateKind, max_rate_in, rate_mg_kg_min
from fhirtis.clinical.thrombosis import early_after

P = Policy()
T = FhirTime.of


def test_onset_on_the_18th_birthday_is_adult_by_onset_age_with_no_unknown_age_note() -> None:
    d = decide_population(P, birth_date=date(2000, 6, 15), dm_onset=date(2018, 6, 15))
    assert d.population is Population.ADULT
    assert d.reason == "onset-age"
    assert not any(n.code == "onset-age-unknown" for n in d.notes)


def test_onset_exactly_24_hours_after_the_end_is_early_after_that_administration() -> None:
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    end = start + timedelta(hours=4)
    assert early_after(T(end + timedelta(hours=24)), T(start), T(end), P) is True
    assert early_after(T(end + timedelta(hours=24, minutes=1)), T(start), T(end), P) is False
    # no end recorded: measured from the start
    assert early_after(T(start + timedelta(hours=24)), T(start), None, P) is True


def test_label_maximum_in_an_orders_units() -> None:
    four, kg, mg_per_ml = Decimal(4), Decimal(70), Decimal(100)
    assert max_rate_in(RateKind.VOLUME, four, kg, mg_per_ml) == Decimal(168)  # mL/h
    assert max_rate_in(RateKind.MASS, four, kg, None) == Decimal("16.8")  # g/h
    assert max_rate_in(RateKind.VOLUME_PER_KG, four, None, mg_per_ml) == Decimal("2.4")  # mL/kg/h
    # and back: 16.8 g/h = 16 800 mg/h → 4 mg/kg/min
    assert rate_mg_kg_min(RateKind.MASS, Decimal(16800), None, kg) == four
