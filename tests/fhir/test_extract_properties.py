"""Property tests of reading IVIG and thromboembolic-event times (issue 10, hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fhirtis.clinical.facts import FhirTime
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.thrombosis import early_after
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
P = Policy()

# -- (1) the immunoglobulin's strength, whatever the order of the ingredients -----------------


def _strength(grams: Decimal, per_ml: int) -> Json:
    return {
        "numerator": {"value": float(grams), "unit": "g", "system": UCUM, "code": "g"},
        "denominator": {"value": per_ml, "unit": "mL", "system": UCUM, "code": "mL"},
    }


OTHER = st.builds(
    lambda name, active, grams: {
        "itemCodeableConcept": {"text": name},
        "isActive": active,
        **({"strength": _strength(Decimal(grams) / 10, 100)} if grams is not None else {}),
    },
    st.sampled_from(["glycine", "dextrose", "sorbitol", "water for injection"]),
    st.booleans(),
    st.none() | st.integers(1, 200),  # 0.1 … 20 g / 100 mL
)
IG_GRAMS_PER_100_ML = st.sampled_from([5, 10, 20])  # 5%, 10% and 20% products


def _administration(ingredients: list[Json], dose_ml: int) -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"text": "immune globulin intravenous (human)"},
                "ingredient": ingredients,
            }
        ],
        "status": "completed",
        "medicationReference": {"reference": "#med"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-09-09T14:00:00Z", "end": "2025-09-09T19:50:00Z"},
        "dosage": {
            "route": {"text": "IV"},
            "dose": {"value": dose_ml, "unit": "mL", "system": UCUM, "code": "mL"},
        },
    }


def _read(ingredients: list[Json], dose_ml: int) -> tuple[Decimal | None, Decimal | None]:
    data = Extractor(terminology()).extract(
        "Patient/p1", [("ma", _administration(ingredients, dose_ml))], {}
    )
    (a,) = data.administrations
    grams = (
        None
        if a.dose_ml is None or a.concentration_mg_per_ml is None
        else (a.dose_ml * a.concentration_mg_per_ml / 1000)
    )
    return grams, a.concentration_mg_per_ml


@settings(max_examples=60, deadline=None)
@given(
    ig=IG_GRAMS_PER_100_ML,
    others=st.lists(OTHER, min_size=0, max_size=3),
    dose_ml=st.integers(50, 1500),
    data=st.data(),
)
def test_grams_never_depend_on_ingredient_order(
    ig: int, others: list[Json], dose_ml: int, data: st.DataObject
) -> None:
    immunoglobulin = {
        "itemCodeableConcept": {"text": "immune globulin (human)"},
        "isActive": True,
        "strength": _strength(Decimal(ig), 100),
    }
    listed = [immunoglobulin, *others]
    order = data.draw(st.permutations(listed), label="order")
    first = _read(listed, dose_ml)
    assert first == _read(order, dose_ml)
    # and it is the immunoglobulin's strength: ig g / 100 mL = 10 × ig mg/mL
    assert first == (Decimal(dose_ml) * ig * 10 / 1000, Decimal(ig * 10))


# -- (2) a date-only onset is early only when its whole day is --------------------------------

ZONES = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
ONSET = date(2025, 3, 5)


@st.composite
def administrations(draw: st.DrawFn) -> tuple[FhirTime, FhirTime | None]:
    """An administration starting within two days before the onset day, in any zone, its end
    (if any) in another zone."""
    start_zone, end_zone = draw(ZONES), draw(ZONES)
    start = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 3 * 1440)))
    start = start.astimezone(start_zone)
    if draw(st.booleans()):
        return FhirTime.of(start), None
    end = (start + timedelta(minutes=draw(st.integers(0, 30 * 60)))).astimezone(end_zone)
    return FhirTime.of(start), FhirTime.of(end)


def _whole_day_within(start: FhirTime, end: FhirTime | None) -> bool:
    """Every instant of the onset day (read in the time zone of the administration's last
    recorded time, as the clinical core reads a date-only time) lies in [start, end + 24 h]."""
    last = end if end is not None else start
    assert last.instant is not None and start.instant is not None
    zone = last.instant.tzinfo
    first_instant = datetime.combine(ONSET, time(0), zone)
    last_instant = first_instant + timedelta(days=1) - timedelta(microseconds=1)
    limit = last.instant + timedelta(hours=P.tee_early_hours)
    # strictly after the start (§5.3: the administration "started before the onset"); no more
    # than the early hours after the end
    return start.instant < first_instant and last_instant <= limit


EXPLICIT = [
    (
        FhirTime.of(datetime(2025, 3, 4, 23, tzinfo=UTC)),
        FhirTime.of(datetime(2025, 3, 5, 1, tzinfo=UTC)),
    ),
    (
        FhirTime.of(datetime(2025, 3, 5, 9, tzinfo=timezone(timedelta(hours=14)))),
        FhirTime.of(datetime(2025, 3, 5, 11, tzinfo=timezone(timedelta(hours=14)))),
    ),
]
"""The whole day is early (UTC), and the same infusion read in UTC+14 (not all of it)."""


@settings(max_examples=300, deadline=None)
@given(admins=st.lists(administrations(), min_size=1, max_size=4))
@example(admins=EXPLICIT)
@example(
    admins=[(FhirTime.of(datetime(2025, 3, 5, 0, tzinfo=timezone(timedelta(hours=10.5)))), None)]
)
def test_date_only_onset_is_early_only_when_the_whole_day_is(
    admins: list[tuple[FhirTime, FhirTime | None]],
) -> None:
    onset = FhirTime(ONSET)
    answers = [early_after(onset, start, end, P) for start, end in admins]
    if admins == EXPLICIT:
        assert answers[:2] == [True, None]  # the explicit example: the property is not vacuous
    whole = [_whole_day_within(start, end) for start, end in admins]
    for answer, within in zip(answers, whole, strict=True):
        assert (answer is True) == within  # early exactly when the whole day is in the window
    # the event is early (associate_events: some administration surely early) only then
    assert any(a is True for a in answers) == any(whole)
