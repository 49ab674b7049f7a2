"""The report counts one thromboembolism once whatever UTC offset its onset is written in.

Audit s37: ``fhirtis report`` merged event records "of one kind and one onset" by the onset's
TEXT (with the cycles and earliness). Summary records written before fhirtis merged one clot's
records itself (s36), or by a site that writes times in UTC beside the EHR's local times, list
one DVT as ``2024-03-01T10:00:00+01:00`` and as ``2024-03-01T09:00:00Z``: one instant, two
texts, so the report counted two events (200 per 100 cycles for one DVT in one cycle). The
clinical rule (fhirtis.clinical.thrombosis.one_event_per_clot) compares instants, and dates
where a record gives no time: the report now does the same."""

from __future__ import annotations

from typing import Any

from fhirtis.registry.report import build_report
from tests.test_cohort_report import record, visit

Json = dict[str, Any]


def _with_events(*onsets: tuple[str, str, bool | None]) -> Json:
    r = record("p1", [visit(8, 50)], rates=[3.0])
    r["thrombosis"]["associated_events"] = [
        {
            "event": f"Condition/c{k}",
            "kind": kind,
            "onset": onset,
            "early": early,
            "cycles": [1],
            "suspects": [],
        }
        for k, (kind, onset, early) in enumerate(onsets)
    ]
    return r


DVT = "deep-vein-thrombosis"


def test_one_instant_in_two_offsets_is_one_event() -> None:
    report = build_report(
        [
            _with_events(
                (DVT, "2024-03-01T10:00:00+01:00", True), (DVT, "2024-03-01T09:00:00Z", True)
            )
        ]
    )
    assert report.tee.events == 1
    assert report.tee.per_100_cycles == 100
    assert report.rows[0].associated_tee == 1
    assert any("same kind and onset" in w for w in report.warnings), report.warnings


def test_two_date_only_records_of_one_day_are_one_event() -> None:
    report = build_report([_with_events((DVT, "2024-03-01", None), (DVT, "2024-03-01", None))])
    assert report.tee.events == 1


def test_a_date_only_record_on_the_day_of_a_timed_one_is_that_event() -> None:
    """As fhirtis itself merges them: the timed record places the event (earliness)."""
    report = build_report(
        [_with_events((DVT, "2024-03-01", None), (DVT, "2024-03-01T10:00:00+01:00", True))]
    )
    assert report.tee.events == 1
    assert report.tee.early_events == 1 and report.tee.early_unknown_events == 0


def test_other_instants_days_and_kinds_stay_distinct() -> None:
    """Control: one day, two times (a crescendo of TIAs); another day; another kind."""
    report = build_report(
        [
            _with_events(
                (DVT, "2024-03-01T10:00:00+01:00", True),
                (DVT, "2024-03-01T10:00:00Z", True),
                (DVT, "2024-03-02", None),
                ("pulmonary-embolism", "2024-03-01T09:00:00Z", True),
            )
        ]
    )
    assert report.tee.events == 4
    assert not any("same kind and onset" in w for w in report.warnings)


def test_records_naming_other_cycles_stay_apart() -> None:
    """Control, as before: records of one onset naming other cycles are not merged."""
    r = _with_events((DVT, "2024-03-01", True), (DVT, "2024-03-01", False))
    r["ivig"]["cycles"].append(dict(r["ivig"]["cycles"][0], index=2))
    r["ivig"]["cycle_count"] = 2
    r["thrombosis"]["associated_events"][1]["cycles"] = [1, 2]
    assert build_report([r]).tee.events == 2
