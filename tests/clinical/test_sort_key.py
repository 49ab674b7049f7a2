"""FhirTime.sort_key keeps a fixed-offset instant as it is (aware datetimes compare as UTC) and
converts any other zone: the order and the ties are those of the UTC conversion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.facts import _MIN_UTC, FhirTime

_ZONES = [
    UTC,
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5, minutes=-30)),
    timezone(timedelta(hours=1)),  # an equal offset, another object
    "America/New_York",  # a fold: 2024-11-03 01:00-02:00 twice
    "Europe/Berlin",
]


@st.composite
def _fhir_time(draw: st.DrawFn) -> Any:
    day = date(2024, 11, 2) + timedelta(days=draw(st.integers(0, 2)))
    if draw(st.integers(0, 4)) == 0:
        return FhirTime(day)
    zone = draw(st.sampled_from(_ZONES))
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    minute = draw(st.integers(0, 47)) * 30
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    instant = naive.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
    return FhirTime(instant.date(), instant)


@given(_fhir_time(), _fhir_time())
def test_sort_key_orders_and_ties_as_the_utc_conversion(a: Any, b: Any) -> None:
    def reference(t: Any) -> tuple[date, datetime]:
        return (t.day, t.instant.astimezone(UTC) if t.instant is not None else _MIN_UTC)

    ka, kb, ra, rb = a.sort_key(), b.sort_key(), reference(a), reference(b)
    assert (ka < kb, ka == kb, ka > kb) == (ra < rb, ra == rb, ra > rb)
    assert ka == ra


def test_sort_key_at_the_ends_of_the_range_converts_as_before() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(OverflowError):
        FhirTime(early.date(), early).sort_key()


def test_sort_key_in_a_zone_with_a_fold_orders_by_utc() -> None:
    """01:30 EDT (the first 01:30) is before 01:10 EST (the second hour 01:00-02:00)."""
    zone = ZoneInfo("America/New_York")
    first = datetime(2024, 11, 3, 1, 30, tzinfo=zone, fold=0)
    second = datetime(2024, 11, 3, 1, 10, tzinfo=zone, fold=1)
    assert FhirTime(first.date(), first).sort_key() < FhirTime(second.date(), second).sort_key()
