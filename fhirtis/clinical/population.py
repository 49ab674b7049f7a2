"""Adult or juvenile criteria (clinical spec §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fhirtis.clinical.frozen import record
from fhirtis.clinical.notes import Note, missing, warning
from fhirtis.clinical.policy import Policy, Population


@record
class PopulationDecision:
    population: Population
    reason: str  # "override", "jdm-coded", "onset-age", "polymyositis", "adult-default"
    notes: tuple[Note, ...] = ()


@record
class MyositisDiagnosis:
    """A myositis diagnosis read from a Condition: ``kind`` ``jdm`` (juvenile dermatomyositis),
    ``dm`` (dermatomyositis) or ``pm`` (polymyositis); ``unconfirmed`` the verification status
    below confirmed it was recorded with (``provisional``, ``differential``, ``unconfirmed``;
    an ICD-10-GM certainty "V", suspected, is ``provisional``), None when it is confirmed or
    says nothing of it."""

    source: str
    kind: str
    unconfirmed: str | None = None


# what the population decision rests on, by its reason: the diagnoses of these kinds
_RESTS_ON: dict[str, tuple[tuple[str, ...], str]] = {
    "jdm-coded": (("jdm",), "a juvenile dermatomyositis diagnosis"),
    "onset-age": (("dm",), "the age at onset of a dermatomyositis diagnosis"),
    "polymyositis": (("pm",), "a polymyositis diagnosis"),
}


def _unconfirmed_note(
    decision: PopulationDecision, diagnoses: Sequence[MyositisDiagnosis]
) -> PopulationDecision:
    """``decision`` with a warning when every diagnosis it rests on is recorded as suspected
    (provisional, differential, unconfirmed): the criteria are chosen on it (a Condition codes
    it, clinical spec §2.3), and the result says so (the spec's "never guess silently")."""
    rests = _RESTS_ON.get(decision.reason)
    if rests is None:
        return decision
    kinds, what = rests
    basis = [d for d in diagnoses if d.kind in kinds]
    if not basis or any(d.unconfirmed is None for d in basis):
        return decision
    statuses = " or ".join(sorted({d.unconfirmed for d in basis if d.unconfirmed}))
    note = warning(
        "diagnosis-unconfirmed",
        f"{decision.population.value} criteria chosen on {what} recorded as {statuses}, not "
        "confirmed; a confirmed or refuted diagnosis, or a population given by the caller, "
        "may change them",
        basis[0].source,
    )
    return PopulationDecision(decision.population, decision.reason, (*decision.notes, note))


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_bounds(
    birth_date: date, birth_date_latest: date | None, on: date, on_latest: date | None = None
) -> tuple[int, int]:
    """(youngest, oldest) completed years of age on ``on`` of someone born on ``birth_date``,
    or at some day from ``birth_date`` to ``birth_date_latest`` (a birth date recorded to the
    year or month only); equal for a birth date recorded in full. ``on_latest``: ``on`` is
    itself known only to lie between ``on`` and ``on_latest`` (an onset recorded to the year or
    month). Never below 0."""
    oldest = age_in_years(birth_date, on if on_latest is None else on_latest)
    youngest = age_in_years(birth_date if birth_date_latest is None else birth_date_latest, on)
    return max(youngest, 0), max(oldest, 0)


def age_text(youngest: int, oldest: int) -> str:
    """ "70" or, for bounds, "64–65" (a birth date recorded to the year or month only)."""
    return str(youngest) if youngest == oldest else f"{youngest}–{oldest}"


def decide_population(
    policy: Policy,
    *,
    jdm_coded: bool = False,
    pm_coded: bool = False,
    birth_date: date | None = None,
    dm_onset: date | None = None,
    override: Population | None = None,
    birth_date_latest: date | None = None,
    dm_onset_age: int | None = None,
    dm_onset_latest: date | None = None,
    diagnoses: Sequence[MyositisDiagnosis] = (),
    dm_recorded_by: date | None = None,
) -> PopulationDecision:
    """Juvenile when a Condition codes juvenile DM or the age at DM onset is below
    ``policy.juvenile_onset_age``; otherwise adult. A caller's override wins. A birth date
    recorded to the year or month only (``birth_date`` to ``birth_date_latest``) decides when
    every day it may be gives the same answer; otherwise the age is unknown, as without one.
    ``dm_onset_age``: completed years at an onset recorded as an age (``onsetAge``); with a
    dated onset too, the earlier onset (the lower age) decides. ``dm_onset_latest``: the onset
    is recorded to the year or month only and lies between ``dm_onset`` and this day; like a
    partial birth date, it decides when every day it may be gives the same answer. ``pm_coded``:
    a polymyositis diagnosis; with no dermatomyositis onset to decide by, the adult criteria (for
    adult dermatomyositis and polymyositis; the juvenile ones are for juvenile dermatomyositis)
    apply without a note asking for an onset the decision does not need. ``diagnoses``: the
    myositis diagnoses read; when all those the decision rests on are recorded as suspected
    (provisional, differential, unconfirmed), a warning says so. ``dm_recorded_by``: the
    earliest day a dermatomyositis diagnosis with no onset was recorded (``recordedDate``); a
    condition has begun by the time it is recorded, so the earliest onset is on or before that
    day: when the patient was younger than ``policy.juvenile_onset_age`` on every day it may
    be, the age at onset is below it (juvenile, whatever the other onsets say: the earliest
    decides); otherwise it decides nothing, as an onset not recorded."""
    if override is not None:
        return PopulationDecision(override, "override")
    return _unconfirmed_note(
        _decide(
            policy,
            jdm_coded=jdm_coded,
            pm_coded=pm_coded,
            birth_date=birth_date,
            dm_onset=dm_onset,
            birth_date_latest=birth_date_latest,
            dm_onset_age=dm_onset_age,
            dm_onset_latest=dm_onset_latest,
            dm_recorded_by=dm_recorded_by,
        ),
        diagnoses,
    )


def _decide(
    policy: Policy,
    *,
    jdm_coded: bool,
    pm_coded: bool,
    birth_date: date | None,
    dm_onset: date | None,
    birth_date_latest: date | None,
    dm_onset_age: int | None,
    dm_onset_latest: date | None,
    dm_recorded_by: date | None = None,
) -> PopulationDecision:
    """:func:`decide_population` without an override, before the note on suspected diagnoses."""
    if jdm_coded:
        return PopulationDecision(Population.JUVENILE, "jdm-coded")
    if birth_date is not None and dm_recorded_by is not None and dm_recorded_by >= birth_date:
        # the onset was on or before the day the diagnosis was recorded: at most this old
        oldest = age_in_years(birth_date, dm_recorded_by)
        if oldest < policy.juvenile_onset_age:
            return PopulationDecision(Population.JUVENILE, "onset-age")
    why = "birth date or onset missing"
    bounds: tuple[int, int] | None = None
    if birth_date is not None and dm_onset is not None:
        bounds = age_bounds(birth_date, birth_date_latest, dm_onset, dm_onset_latest)
    if dm_onset_age is not None:
        bounds = (
            (dm_onset_age, dm_onset_age)
            if bounds is None
            else (min(bounds[0], dm_onset_age), min(bounds[1], dm_onset_age))
        )
    if bounds is None and pm_coded:
        return PopulationDecision(Population.ADULT, "polymyositis")
    if bounds is not None:
        youngest, oldest = bounds
        if oldest < policy.juvenile_onset_age:
            return PopulationDecision(Population.JUVENILE, "onset-age")
        if youngest >= policy.juvenile_onset_age:
            return PopulationDecision(Population.ADULT, "onset-age")
        recorded = (("birth date", birth_date_latest), ("onset", dm_onset_latest))
        partial = " and ".join(name for name, latest in recorded if latest is not None)
        ages = age_text(youngest, oldest)
        why = f"{partial or 'birth date'} not recorded in full: {ages} years at onset"
    note = missing(
        "onset-age-unknown",
        f"age at dermatomyositis onset unknown ({why}); adult criteria used",
    )
    return PopulationDecision(Population.ADULT, "adult-default", (note,))
