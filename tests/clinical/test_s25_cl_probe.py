"""s25 clinical-correctness probe (helper cl): cases worked by hand from /work/shared/DOMAIN.md
(the clinical specification; docs/clinical-specification.md is the repository's copy), aimed at
what the earlier clinical tests leave open. Each expected value is worked in the comment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from fhirtis.clinical.assessments import group_assessments
from fhirtis.clinical.course import evaluate_course
from fhirtis.clinical.facts import (
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    Sex,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.ivig import Exposure, compute_exposure
from fhirtis.clinical.policy import EnzymeChange, Policy, Population
from fhirtis.clinical.thrombosis import associate_events, early_after

from .helpers import D, mv

P = Policy()
D0 = date(2024, 1, 10)


def _pga(value: str, source: str, status: ResultStatus, issued: datetime) -> MeasureValue:
    return MeasureValue(Measure.PGA, Instrument.VAS, D(value), D0, source, status, issued)


# --- §2.5 several values of one measure on one day -------------------------------------------


def test_a_final_and_a_preliminary_that_disagree_are_said() -> None:
    # §2.5: final over preliminary, "then the latest issued. If the candidates disagree, say so
    # in the result's warnings." The candidates are every usable value of the day, not only
    # those of the winning tier: a final 6 and a preliminary 9 disagree, 6 is used, and a
    # warning says so (the superseded preliminary alone is an "excluded" note, not a warning).
    values = [
        _pga("6", "O/final", ResultStatus.FINAL, datetime(2024, 1, 10, 9, tzinfo=UTC)),
        _pga("9", "O/prelim", ResultStatus.PRELIMINARY, datetime(2024, 1, 10, 15, tzinfo=UTC)),
    ]
    g = group_assessments(values, P)
    assert g.assessments[0].values[Measure.PGA].source == "O/final"
    warnings = [n for n in g.notes if n.code == "conflicting-values"]
    assert [(n.severity.value, n.source) for n in warnings] == [("warning", "O/final")]


def test_a_final_and_a_preliminary_that_agree_are_not_said() -> None:
    values = [
        _pga("6", "O/final", ResultStatus.FINAL, datetime(2024, 1, 10, 9, tzinfo=UTC)),
        _pga("6.0", "O/prelim", ResultStatus.PRELIMINARY, datetime(2024, 1, 10, 15, tzinfo=UTC)),
    ]
    g = group_assessments(values, P)
    assert not [n for n in g.notes if n.code == "conflicting-values"]
    # the preliminary is still superseded, as before
    assert [(n.code, n.source) for n in g.notes] == [("superseded", "O/prelim")]


# --- §5.3 an onset at the very instant an administration starts --------------------------------

_PATIENT = PatientFacts(birth_date=date(1980, 6, 15), sex=Sex.FEMALE)
_WEIGHT = BodyWeight("Observation/w", datetime(2024, 2, 1, tzinfo=UTC), D(70))


def _cycle(first: datetime, name: str) -> list[IvigAdministration]:
    """Four daily 4-hour infusions from ``first``."""
    return [
        IvigAdministration(
            source=f"MedicationAdministration/{name}-{i}",
            start=FhirTime.of(first + timedelta(days=i)),
            end=FhirTime.of(first + timedelta(days=i, hours=4)),
            dose_g=D(35),
            rate_mg_per_h=D(8400),
        )
        for i in range(4)
    ]


def _two_cycles() -> Exposure:
    # cycle 1: 1–4 March 09:00–13:00 (window to 18 March); cycle 2: 29 March–1 April 10:00–14:00
    admins = _cycle(datetime(2024, 3, 1, 9, tzinfo=UTC), "c1")
    admins += _cycle(datetime(2024, 3, 29, 10, tzinfo=UTC), "c2")
    return compute_exposure(admins, [_WEIGHT], [], _PATIENT, P)


def test_an_onset_at_the_instant_an_administration_starts_is_not_early_after_it() -> None:
    # §5.3: early is "an onset after the start of an administration" and the suspects are the
    # administrations "that started before the onset": one relation, start < onset. An onset at
    # the very instant of a start is neither after it nor preceded by it, so that administration
    # is no suspect and makes the onset no early one (it was reported early "after" an
    # administration it did not name as a suspect).
    start = FhirTime.of(datetime(2024, 3, 29, 10, tzinfo=UTC))
    end = FhirTime.of(datetime(2024, 3, 29, 14, tzinfo=UTC))
    assert early_after(start, start, end, P) is False
    one_minute_later = FhirTime.of(datetime(2024, 3, 29, 10, 1, tzinfo=UTC))
    assert early_after(one_minute_later, start, end, P) is True

    # onset at cycle 2's very first start: nothing of cycle 2 started before it and cycle 1's
    # window closed on 18 March: associated with no cycle (it was associated with cycle 2,
    # "early", with no suspect); an event after IVIG began, outside every window
    event = TeeEvent(TeeKind.MI, "Condition/mi", start)
    assert associate_events([event], _two_cycles(), P) == ((), (), (event,))


def test_an_onset_at_the_second_start_is_early_after_the_first_infusion_only() -> None:
    # onset 30 March 10:00, the instant c2-1 starts: c2-0 (29 March 10:00–14:00) started before
    # it and ended 20 h before it (≤ 24 h): early after c2-0, the one suspect; c2-1 is neither
    onset = FhirTime.of(datetime(2024, 3, 30, 10, tzinfo=UTC))
    event = TeeEvent(TeeKind.MI, "Condition/mi", onset)
    (found,), _, _ = associate_events([event], _two_cycles(), P)
    assert found.suspects == ("MedicationAdministration/c2-0",)
    assert (found.early, found.early_after) == (True, ("MedicationAdministration/c2-0",))
    assert found.hours_after_last_start == D(24)


def test_an_onset_hours_before_a_later_cycle_starts_is_not_associated_with_it() -> None:
    # §5.3: a TEE is associated with a cycle when its onset lies between "the start of a cycle"
    # and 14 days after its last administration; the AdverseEvent names as suspects the
    # cycle's administrations "that started before the onset". A DVT at 08:00 on 29 March, two
    # hours before cycle 2's first infusion (10:00), lies before the start of cycle 2 and 25
    # days after cycle 1's window closed (18 March): no administration can be its suspect. It
    # was associated with cycle 2 with no suspect at all (written as an AdverseEvent with an
    # empty suspectEntity, which the tee-temporally-associated profile requires at least once),
    # while also counting as a history of thrombosis before cycle 2's infusions. As for the
    # first cycle (an onset before the first infusion on its day is history), it is an event
    # after IVIG began, outside every window: unassociated, and history from its onset on.
    event = TeeEvent(
        TeeKind.DVT, "Condition/dvt", FhirTime.of(datetime(2024, 3, 29, 8, tzinfo=UTC))
    )
    associated, history, unassociated = associate_events([event], _two_cycles(), P)
    assert (associated, history, unassociated) == ((), (), (event,))


def test_a_date_only_onset_on_a_later_cycles_first_day_stays_associated() -> None:
    # 29 March with no time: the day holds cycle 2's first infusion (10:00), which may have
    # started before the onset: associated with cycle 2, that infusion the suspect, early unknown
    event = TeeEvent(TeeKind.DVT, "Condition/dvt", FhirTime.of(date(2024, 3, 29)))
    (found,), _, _ = associate_events([event], _two_cycles(), P)
    assert (found.cycle_indexes, found.suspects) == ((2,), ("MedicationAdministration/c2-0",))
    assert found.early is None


def test_an_end_recorded_before_the_start_is_not_the_end_early_is_measured_from() -> None:
    # An infusion recorded 10:00 → 06:00 on 1 March (an end before its start: FHIR's Period
    # invariant per-1 broken). The cycle already ends at its start then (Cycle.end); "early"
    # must read the same: 24 h after "its end (its start when no [usable] end is recorded)" is
    # 2 March 10:00, so an onset at 2 March 08:00 (22 h after the start) is early. It was
    # measured from the impossible 06:00 (limit 2 March 06:00) and said not early.
    start = FhirTime.of(datetime(2024, 3, 1, 10, tzinfo=UTC))
    bad_end = FhirTime.of(datetime(2024, 3, 1, 6, tzinfo=UTC))
    onset = FhirTime.of(datetime(2024, 3, 2, 8, tzinfo=UTC))
    assert early_after(onset, start, bad_end, P) is True
    admin = IvigAdministration(
        source="MedicationAdministration/1", start=start, end=bad_end, dose_g=D(140)
    )
    exposure = compute_exposure([admin], [_WEIGHT], [], _PATIENT, P)
    assert exposure.cycles[0].end == start
    event = TeeEvent(TeeKind.DVT, "Condition/dvt", onset)
    (found,), _, _ = associate_events([event], exposure, P)
    assert (found.early, found.early_after) == (True, ("MedicationAdministration/1",))


# --- §1 an enzyme whose reference range gives a ULN of 0 ------------------------------------


def _ck_course(
    uln: str, policy: Policy = P
) -> tuple[Fraction | None, Decimal | None, str | None, list[tuple[str, str]]]:
    base, follow = date(2024, 1, 8), date(2024, 3, 4)
    values = [
        mv("pga", 6, base),
        mv("pga", 3, follow),
        mv("ck", 3000, base, uln=uln),
        mv("ck", 1200, follow, uln=uln),
    ]
    course = evaluate_course(values, Population.ADULT, policy, first_ivig=base)
    (followup,) = course.followups
    enzyme = followup.tis.measure(Measure.ENZYME)
    codes = [(n.severity.value, n.code) for n in course.notes]
    reason = None if enzyme.reason is None else enzyme.reason.code
    return enzyme.percent_improvement, enzyme.score, reason, codes


def test_a_ck_with_a_uln_of_zero_is_still_a_ck() -> None:
    # §1: a value is excluded when it is outside its instrument's range; CK 3000 and 1200 U/L
    # are not. A reference range whose high is 0 gives no usable ULN, and "when only one enzyme
    # is measured at baseline it is chosen even without a ULN (... the TIS uses the relative
    # change)": (3000 − 1200) / 3000 = 60 % → 7.5, the unusable ULN said. Both CK values were
    # excluded ("bad-uln") and the enzyme measure was missing.
    pct, score, reason, codes = _ck_course("0")
    assert (pct, score, reason) == (Fraction(60), D("7.5"), None)
    assert ("warning", "bad-uln") in codes
    assert ("excluded", "bad-uln") not in codes


def test_a_uln_of_zero_is_no_uln_for_the_above_uln_formula() -> None:
    # enzyme_change = above_uln needs the ULN: with an unusable one (0) it is unknown, and the
    # measure is missing for that reason — never (b − f) / (b − 0), the relative change
    pct, score, reason, _ = _ck_course("0", Policy(enzyme_change=EnzymeChange.ABOVE_ULN))
    assert (pct, score, reason) == (None, None, "enzyme-uln-unknown")


_HOURS = st.sampled_from([0, 1, 5, 20, 24, 30, 24 * 7, 24 * 8, 24 * 20, 24 * 28])


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(_HOURS, min_size=1, max_size=8),
    lengths=st.lists(st.sampled_from([None, 0, 2, 4, 30]), min_size=8, max_size=8),
    onset_minutes=st.integers(min_value=-2000, max_value=60 * 24 * 120),
    date_only=st.booleans(),
)
def test_every_associated_event_has_a_suspect_and_is_early_only_after_suspects(
    gaps: list[int], lengths: list[int | None], onset_minutes: int, date_only: bool
) -> None:
    # §5.3: the AdverseEvent names "the administrations of that cycle that started before the
    # onset" (the tee-temporally-associated profile requires one), and "early" is "after the
    # start of an administration": whatever the times, an associated event has a suspect, and
    # every administration it is early after is one of them
    first = datetime(2024, 1, 1, tzinfo=UTC)
    admins, at = [], first
    for i, gap in enumerate(gaps):
        at += timedelta(hours=gap)
        hours = lengths[i]
        admins.append(
            IvigAdministration(
                source=f"MedicationAdministration/{i}",
                start=FhirTime.of(at),
                end=None if hours is None else FhirTime.of(at + timedelta(hours=hours)),
                dose_g=D(35),
            )
        )
    exposure = compute_exposure(admins, [_WEIGHT], [], _PATIENT, P)
    instant = first + timedelta(minutes=onset_minutes)
    onset = FhirTime.of(instant.date() if date_only else instant)
    for found in associate_events([TeeEvent(TeeKind.DVT, "C/1", onset)], exposure, P)[0]:
        assert found.suspects
        assert set(found.early_after) <= set(found.suspects)
