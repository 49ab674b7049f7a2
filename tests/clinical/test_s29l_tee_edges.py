"""Clinical spec §5.3 "early", suspects and the window at day and zone boundaries (s29 audit)."""

from __future__ import annotations

from datetime import timedelta, timezone

from fhirtis.clinical.facts import FhirTime, TeeEvent, TeeKind
from fhirtis.clinical.policy import Policy
from tests.clinical.test_thrombosis import _infusion, assess, at, cycle

T = FhirTime.of
PLUS1 = timezone(timedelta(hours=1))


def test_date_only_onset_mid_cycle_suspects_and_early() -> None:
    # daily 09:00 starts, no end: day 2 is early throughout (00:00-09:00 within 24 h of the
    # day-1 start, inclusive at 09:00; after 09:00 after the day-2 start); the day-3
    # administration cannot have started before any instant of day 2: not a suspect
    ev = TeeEvent(TeeKind.MI, "Condition/mi", FhirTime(at(2).date()))
    (a,) = assess(cycle(0), events=[ev]).associated_events
    assert a.suspects == tuple(f"MedicationAdministration/{d}" for d in range(3))
    assert a.early is True


def test_early_edge_across_time_zones() -> None:
    # the end is day 0 17:00 UTC; day 1 18:00+01:00 is exactly 24 h later
    end24 = at(1, hour=17).astimezone(PLUS1)
    on = TeeEvent(TeeKind.MI, "Condition/on", T(end24))
    after = TeeEvent(TeeKind.MI, "Condition/after", T(end24 + timedelta(seconds=1)))
    a = assess([_infusion(0, 9, 0, 17)], events=[on, after])
    assert {e.event.source: e.early for e in a.associated_events} == {
        "Condition/on": True,
        "Condition/after": False,
    }


def test_onset_at_the_first_start_instant_is_not_associated() -> None:
    # "started before the onset": an administration starting at that instant did not
    ev = TeeEvent(TeeKind.DVT, "Condition/same", T(at(0)))
    a = assess(cycle(0), events=[ev])
    assert a.associated_events == ()
    later = TeeEvent(TeeKind.DVT, "Condition/later", T(at(0) + timedelta(seconds=1)))
    (b,) = assess(cycle(0), events=[later]).associated_events
    assert b.suspects == ("MedicationAdministration/0",) and b.early is True


def test_window_days_policy_edge_with_a_date_only_onset() -> None:
    # window to 7 days after the last administration (day 3): day 10 in, day 11 out
    pol = Policy(tee_window_days=7)
    d10 = TeeEvent(TeeKind.PE, "Condition/d10", FhirTime(at(10).date()))
    d11 = TeeEvent(TeeKind.PE, "Condition/d11", FhirTime(at(11).date()))
    a = assess(cycle(0), events=[d10, d11], policy=pol)
    assert [e.event.source for e in a.associated_events] == ["Condition/d10"]
    assert a.associated_events[0].early is False
    assert a.unassociated_events == (d11,)
