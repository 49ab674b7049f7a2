"""FHIR R4 dateTime as fhirtis reads it: strictly, and saying what is wrong with a text it
refuses (an integrator fixes the feed from that message)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fhirtis.fhir.primitives import PrimitiveError, instant_or_none, parse_date_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-04T09:00:00Z", datetime(2024, 3, 4, 9, tzinfo=UTC)),
        ("2024-03-04T09:00:00.000+01:00", datetime(2024, 3, 4, 8, tzinfo=UTC)),
        (
            "2024-03-04T09:00:00.123456789-05:00",
            datetime(2024, 3, 4, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
        ),
    ],
)
def test_instants(text: str, expected: datetime) -> None:
    assert parse_date_time(text) == (expected, False)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # R4 datatypes: "If hours and minutes are specified, a time zone SHALL be populated"
        ("2024-03-04T09:00:00", "no time zone"),
        ("2024-03-04T09:00:00.5", "no time zone"),
        ("2024-03-04T09:00Z", "seconds"),  # the seconds are required
        ("2024-03-04T09:00:00+0100", "not a FHIR dateTime"),
        ("2024-03-04 09:00:00Z", "not a FHIR dateTime"),
        ("2024-03", "a partial date"),
    ],
)
def test_refused_texts_say_why(text: str, says: str) -> None:
    with pytest.raises(PrimitiveError) as info:
        parse_date_time(text)
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (" 2024-03-01T10:00:00.123+02:00 ", datetime(2024, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)),
        ("2024-03-01", None),  # a date: no instant
        ("2024-03-01T10:00:00", None),  # no zone
        ("2024-03-01 10:00:00Z", None),  # not FHIR's form
        ("yesterday", None),
        (1709287200, None),
        (None, None),
    ],
)
def test_instant_or_none(value: object, expected: datetime | None) -> None:
    """One reading of an instant (meta.lastUpdated, Provenance.recorded, transactionTime) for
    the pull, the write settlement and the Group export, which each had their own."""
    assert instant_or_none(value) == expected
