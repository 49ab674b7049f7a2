"""Adult or juvenile criteria (clinical spec §2.3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhirtis.clinical.frozen import fast_frozen_init
from fhirtis.clinical.notes import Note, missing
from fhirtis.clinical.policy import Policy, Population


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class PopulationDecision:
    population: Population
    reason: str  # "override", "jdm-coded", "onset-age", "adult-default"
    notes: tuple[Note, ...] = ()


def age_in_years(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


def decide_population(
    policy: Policy,
    *,
    jdm_coded: bool = False,
    birth_date: date | None = None,
    dm_onset: date | None = None,
    override: Population | None = None,
) -> PopulationDecision:
    """Juvenile when a Condition codes juvenile DM or the age at DM onset is below
    ``policy.juvenile_onset_age``; otherwise adult. A caller's override wins."""
    if override is not None:
        return PopulationDecision(override, "override")
    if jdm_coded:
        return PopulationDecision(Population.JUVENILE, "jdm-coded")
    if birth_date is not None and dm_onset is not None:
        if age_in_years(birth_date, dm_onset) < policy.juvenile_onset_age:
            return PopulationDecision(Population.JUVENILE, "onset-age")
        return PopulationDecision(Population.ADULT, "onset-age")
    note = missing(
        "onset-age-unknown",
        "age at dermatomyositis onset unknown (birth date or onset missing); adult criteria used",
    )
    return PopulationDecision(Population.ADULT, "adult-default", (note,))
