"""A cycle's end when an administration's start and end are recorded in different offsets.

Implementation decisions (§4, §5): a cycle "ends at the latest end of its administrations (an
administration without an end counts with its start)", and "an end recorded before its start is
ignored (measured from the start)"; ``Cycle.end`` ignores it as "early" does. The end was
compared with the start by calendar date first: an end at 00:30+05:45 on the 11th (18:45Z on
the 10th), before a start at 20:00Z on the 10th, was taken as the cycle's end, and the
ivig-cycle-dose Observation was written with an effectivePeriod ending before it starts (R4
per-1); and an end at 20:00Z on the 10th, after a start at 00:30+05:45 on the 11th (18:45Z on
the 10th), was dropped.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from fhirtis.clinical.ivig import Cycle
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)


def _evaluate(start: str, end: str) -> PatientResult:
    resources = [
        patient(),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-05-01", system=LOINC),
        administration("a1", start, end, dose=qty(70, "g"), rate=qty(100, "mL/h")),
    ]
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


def _cycle(start: str, end: str) -> Cycle:
    [cycle] = _evaluate(start, end).evaluation.exposure.cycles
    return cycle


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_an_end_before_the_start_is_ignored_whatever_its_offset() -> None:
    cycle = _cycle("2024-05-10T20:00:00Z", "2024-05-11T00:30:00+05:45")
    assert cycle.end == cycle.start
    assert cycle.end.instant == _instant("2024-05-10T20:00:00+00:00")


def test_an_end_after_the_start_is_kept_whatever_its_offset() -> None:
    cycle = _cycle("2024-05-11T00:30:00+05:45", "2024-05-10T20:00:00Z")
    assert cycle.end.instant == _instant("2024-05-10T20:00:00+00:00")
    assert cycle.start.instant is not None
    assert cycle.end.instant > cycle.start.instant


def test_an_infusion_across_the_autumn_dst_change_ends_at_its_end() -> None:
    # US fall-back: 01:30 EDT, then 40 minutes later 01:10 EST
    cycle = _cycle("2024-11-03T01:30:00-04:00", "2024-11-03T01:10:00-05:00")
    assert cycle.end.instant == _instant("2024-11-03T06:10:00+00:00")


def test_the_derived_period_never_ends_before_it_starts() -> None:
    result = _evaluate("2024-05-10T20:00:00Z", "2024-05-11T00:30:00+05:45")
    periods = [
        d.resource["effectivePeriod"]
        for d in result.derived
        if d.resource["resourceType"] == "Observation" and "effectivePeriod" in d.resource
    ]
    assert periods
    for period in periods:
        assert _instant(period["start"]) <= _instant(period["end"])


def test_the_tee_window_still_runs_from_the_start_date_when_the_end_date_is_earlier() -> None:
    # the end (20:00Z on the 10th) is after the start (00:30+05:45 on the 11th, 18:45Z on the
    # 10th) but on an earlier calendar date: the window does not close before the 25th
    resources = [
        patient(),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-05-01", system=LOINC),
        administration(
            "a1",
            "2024-05-11T00:30:00+05:45",
            "2024-05-10T20:00:00Z",
            dose=qty(70, "g"),
            rate=qty(100, "mL/h"),
        ),
        condition("dvt", SCT, "128053003", "2024-05-25"),
    ]
    result = evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )
    [associated] = result.evaluation.thrombosis.associated_events
    assert associated.event.source == "Condition/dvt"
