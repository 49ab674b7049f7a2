"""``PatientData.latest`` and ``records_zone``: the one place that says what "the latest
record" and "the records' calendar" are (the offline "as of" and the CDS service's "now" read
them; each kept its own copy of the rule before).

``latest`` counted a date-only day to its end in UTC while the evaluation's "as of" counted it
to its end on the records' calendar; the two now agree, and ``as_of_for`` is ``latest``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fhirtis.fhir.extract.common import PatientData
from fhirtis.pipeline.offline import as_of_for, extractor_for
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs, patient

SYDNEY = timezone(timedelta(hours=10))


def _read(*resources: dict[str, Any]) -> PatientData:
    listed = [(f"{r['resourceType']}/{r['id']}", r) for r in (patient(), *resources)]
    return extractor_for(Settings()).extract("Patient/p1", listed, dict(listed))


def test_a_date_only_day_ends_on_the_records_calendar() -> None:
    data = _read(
        obs("pga11", "pga", 8, "cm", "2024-05-11T08:00:00+10:00"),
        obs("w12", "29463-7", 70, "kg", "2024-05-12", system=LOINC),
    )
    assert data.records_zone is not None
    assert data.records_zone.utcoffset(None) == timedelta(hours=10)
    # the 12th's last instant in Sydney, not in UTC (10:00+10:00 on the 13th)
    assert data.latest is not None
    assert data.latest.astimezone(SYDNEY).date().isoformat() == "2024-05-12"
    assert data.latest.astimezone(SYDNEY).hour == 23
    assert as_of_for(data) == data.latest


def test_without_a_time_of_day_the_records_calendar_is_utc() -> None:
    data = _read(obs("w12", "29463-7", 70, "kg", "2024-05-12", system=LOINC))
    assert data.records_zone is None
    assert data.latest is not None
    assert data.latest.astimezone(UTC).date().isoformat() == "2024-05-12"
    assert as_of_for(data) == data.latest


def test_without_records_as_of_is_the_start_of_today() -> None:
    data = _read()
    assert data.latest is None and data.records_zone is None
    today = datetime.now(UTC)
    assert as_of_for(data) == datetime(today.year, today.month, today.day, tzinfo=UTC)
