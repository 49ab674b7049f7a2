"""FHIR R4 primitive types, parsed strictly (the regexes are the specification's)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any, NoReturn

_DATE_TIME = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
_NO_ZONE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")
_NO_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?")


def _why_not(value: str) -> str:
    """What is wrong with a text that is not a FHIR dateTime, where a common mistake says."""
    if _NO_ZONE.fullmatch(value):
        return (
            "not a FHIR dateTime: a time with no time zone (R4: with hours and minutes, a time "
            "zone SHALL be given; the instant is unknown without it)"
        )
    if _NO_SECONDS.fullmatch(value):
        return "not a FHIR dateTime: the seconds are missing (R4 requires hh:mm:ss)"
    return "not a FHIR dateTime"


_ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
ID_FULLMATCH = _ID.fullmatch  # bound once: is_id runs twice per resource


class PrimitiveError(ValueError):
    pass


def json_array(value: object) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one: for reading an element that FHIR
    makes an array leniently (absent, null, or malformed JSON of another type: nothing to read
    there; the element's strict readers, where there are any, say why)."""
    return value if isinstance(value, list) else []


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_FULLMATCH(value) is not None


def parse_date_time(value: object) -> tuple[datetime, bool]:
    """A FHIR dateTime/instant as an aware datetime, and whether it was only a date.

    A date without a time is taken as the start of that day in UTC (flagged). A partial date
    (year, or year-month) is refused: fhirtis needs at least the day.
    """
    if not isinstance(value, str):
        raise PrimitiveError("not a FHIR dateTime")
    return parse_date_time_text(value)


@lru_cache(maxsize=16384)
def parse_date_time_text(value: str) -> tuple[datetime, bool]:
    """:func:`parse_date_time` of a string, once per distinct text (a patient's records share
    their dates; the results are immutable). Errors are not cached: they are raised again."""
    if not _DATE_TIME.fullmatch(value):
        raise PrimitiveError(_why_not(value))
    if len(value) == 10:
        try:
            d = date.fromisoformat(value)  # the regex lets 2023-02-29 and 2024-04-31 through
        except ValueError as exc:
            raise PrimitiveError(f"not a valid date ({exc})") from None
        if not FIRST_YEAR <= d.year <= LAST_YEAR:
            _refuse_year(d.year)
        return datetime(d.year, d.month, d.day, tzinfo=UTC), True
    if len(value) < 10:
        raise PrimitiveError("a partial date (year or year-month); the day is needed")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PrimitiveError(f"not a valid dateTime ({exc})") from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:  # inlined: once per time read
        _refuse_year(parsed.year)
    zone = parsed.tzinfo
    if zone is not None:
        shared = _ZONES.setdefault(zone, zone)
        if shared is not zone:
            parsed = parsed.replace(tzinfo=shared)
    return parsed, False


FIRST_YEAR, LAST_YEAR = 2, 9998
"""The years a date or time fhirtis reads may have. The calendar's end years (0001, 9999: the
"no end" placeholder 9999-12-31 among them) are refused: their day's last instant, their UTC
time or a window after them (a TEE's 14 days) lies outside the dates Python can represent, and no
clinical record is dated there."""


def _refuse_year(year: int) -> NoReturn:
    raise PrimitiveError(
        f"year {year:04d} is at the end of the calendar: no clinical date (an open-end "
        "placeholder such as 9999-12-31 is no date)"
    )


def instant_or_none(value: object) -> datetime | None:
    """A FHIR instant (date, time and zone: ``meta.lastUpdated``, ``Provenance.recorded``, a Bulk
    manifest's ``transactionTime``) as an aware datetime; None for anything else."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        when, _ = parse_date_time_text(value.strip())
    except PrimitiveError:
        return None
    return when if when.tzinfo is not None else None


_ZONES: dict[tzinfo, tzinfo] = {}
"""One ``timezone`` object per UTC offset met (``fromisoformat`` makes a new one per text; UTC is
already one). Two aware datetimes with the same tzinfo *object* compare field by field; with two
equal but distinct ones CPython works out both offsets first, several times slower, and the
extraction and the clinical core compare a patient's times all the time. The zones are equal
(same offset, no name): nothing else changes. Bounded by the offsets there are (-24 h to +24 h,
by the minute at most)."""


def parse_date(value: object) -> date:
    """A FHIR date or dateTime as the calendar date it was recorded on (its own offset)."""
    if isinstance(value, str) and len(value) >= 10:
        when, _ = parse_date_time(value)
        return when.date()
    raise PrimitiveError("not a full FHIR date")


_PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-(0[1-9]|1[0-2]))?")
"""A FHIR date recorded to the year or the month ("1950", "1950-06"): the spec's date regex
without its day part (a year of 0000 is refused: ``date`` has none)."""


def parse_date_bounds(value: object) -> tuple[date, date | None]:
    """A FHIR date as (the date, None), or, recorded to the year or month only, as (its first
    day, its last day). PrimitiveError for anything else."""
    if isinstance(value, str):
        partial = _PARTIAL_DATE.fullmatch(value)
        if partial is None:
            return parse_date(value), None
        year, month = int(partial[1]), int(partial[2]) if partial[2] else None
        if year >= 1:
            if not FIRST_YEAR <= year <= LAST_YEAR:
                _refuse_year(year)
            if month is None:
                return date(year, 1, 1), date(year, 12, 31)
            after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
            return date(year, month, 1), date.fromordinal(after.toordinal() - 1)
    raise PrimitiveError("not a FHIR date")


MAGNITUDE_LIMIT = 10**9
"""No number fhirtis reads comes near this in its unit (a CK of 500,000 U/L is extreme, a dose of
300,000 mg large), nor, other than 0, below its inverse. :func:`parse_decimal` refuses a number
beyond either bound as a data error: such a number is no measurement, and products of such
numbers (a rate from a dose and a concentration, a percent change) would exceed the 28 digits of
the exact decimal arithmetic where the results are written."""
_LARGEST, _SMALLEST = float(MAGNITUDE_LIMIT), 1 / MAGNITUDE_LIMIT
_BEYOND = "beyond the magnitude of any value fhirtis reads (10^-9 to 10^9)"


def parse_decimal(value: object) -> Decimal:
    """A JSON number (or a decimal string from a non-conformant sender) as an exact Decimal.

    orjson gives floats; ``repr`` of a float is the shortest text that reads back to it, which
    is the number as written for every value of up to 15 significant digits. A number beyond
    :data:`MAGNITUDE_LIMIT` is refused.
    """
    if isinstance(value, bool):
        raise PrimitiveError("a boolean is not a decimal")
    if isinstance(value, int):
        if not -MAGNITUDE_LIMIT < value < MAGNITUDE_LIMIT:
            raise PrimitiveError(_BEYOND)
        return Decimal(value)
    if isinstance(value, float):
        found = _FLOAT_DECIMALS.get(value) if type(value) is float else None
        if found is not None:
            return found
        if not math.isfinite(value):
            raise PrimitiveError("not a finite number")
        magnitude = abs(value)
        if magnitude >= _LARGEST or 0 < magnitude < _SMALLEST:
            raise PrimitiveError(_BEYOND)
        exact = Decimal(repr(value))
        if (
            value and type(value) is float
        ):  # 0.0 and -0.0 are one key but two Decimals: zeros are not kept
            if len(_FLOAT_DECIMALS) >= _FLOAT_DECIMALS_LIMIT:
                _FLOAT_DECIMALS.clear()
            _FLOAT_DECIMALS[value] = exact
        return exact
    raise PrimitiveError("not a JSON number")


_FLOAT_DECIMALS: dict[float, Decimal] = {}
""":func:`parse_decimal` of a float, once per distinct value (records share their values; a
Decimal is immutable). Keyed by the float itself (plain floats only, as orjson gives): equal
floats have the same ``repr`` except 0.0 and -0.0, which are never kept; NaN is never kept (it is
refused), so a hit is always the same finite value."""
_FLOAT_DECIMALS_LIMIT = 65_536
FLOAT_DECIMALS: Mapping[float, Decimal] = _FLOAT_DECIMALS
"""The memo of :func:`parse_decimal`, for reading: a value found there is what parse_decimal
gives that float (a reader of the usual number looks it up without the call)."""
