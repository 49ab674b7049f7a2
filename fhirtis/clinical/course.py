"""A patient's response course: baseline, TIS at each follow-up, deterioration and responder
status over time — the core set measure half of the clinical spec (§1–§3) put together."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from fhirtis.clinical.assessments import (
    Assessment,
    BaselineChoice,
    choose_baseline,
    comparable,
    group_assessments,
)
from fhirtis.clinical.deterioration import (
    Confirmation,
    DeteriorationResult,
    assess_deterioration,
    confirm,
    is_responder,
)
from fhirtis.clinical.facts import MeasureValue
from fhirtis.clinical.frozen import record
from fhirtis.clinical.measures import EnzymeChoice, choose_enzyme
from fhirtis.clinical.notes import Note
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import TisResult, compute_tis


@record
class FollowUp:
    assessment: Assessment
    tis: TisResult
    deterioration: DeteriorationResult
    confirmed_deterioration: bool | None  # confirmed at or before this assessment
    responder: bool | None


@record
class Course:
    population: Population
    assessments: tuple[Assessment, ...]
    baseline: Assessment | None
    baseline_choice: BaselineChoice
    enzyme: EnzymeChoice | None
    followups: tuple[FollowUp, ...]
    confirmation: Confirmation
    notes: tuple[Note, ...]
    policy: dict[str, str]

    @property
    def confirmed_deterioration_on(self) -> date | None:
        return self.confirmation.confirmed_on


def evaluate_course(
    values: Iterable[MeasureValue],
    population: Population,
    policy: Policy,
    *,
    first_ivig: date | None,
    baseline_day: date | None = None,
) -> Course:
    grouping = group_assessments(values, policy)
    notes = list(grouping.notes)
    choice = choose_baseline(grouping.assessments, policy, first_ivig, baseline_day)
    notes.extend(choice.notes)
    if choice.index is None:
        return Course(
            population,
            grouping.assessments,
            None,
            choice,
            None,
            (),
            confirm(()),
            tuple(notes),
            policy.as_record(),
        )
    baseline = grouping.assessments[choice.index]
    enzyme = choose_enzyme(baseline.enzymes, policy) if baseline.enzymes else None
    later = grouping.assessments[choice.index + 1 :]
    baseline_values = baseline.for_tis()
    # without enzymes at baseline compute_tis would choose (none) afresh for every follow-up
    tis_enzyme = enzyme if enzyme is not None else choose_enzyme(baseline.enzymes, policy)
    # every value of the grouping passed check_value (group_assessments drops the others)
    chosen = enzyme.instrument if enzyme is not None else None
    pairs = [comparable(baseline, a, chosen) for a in later]
    tis_results = [
        compute_tis(
            b.for_tis() if b is not baseline else baseline_values,
            a.for_tis(),
            population,
            policy,
            tis_enzyme,
            checked=True,
        )
        for b, a in pairs
    ]
    deteriorations = [
        assess_deterioration(a.day, b.values, a.values, policy, checked=True) for b, a in pairs
    ]
    confirmation = confirm(deteriorations)
    followups = tuple(
        FollowUp(a, t, d, confirmed, is_responder(t, confirmed))
        for a, t, d, (_, confirmed) in zip(
            later, tis_results, deteriorations, confirmation.status, strict=True
        )
    )
    return Course(
        population,
        grouping.assessments,
        baseline,
        choice,
        enzyme,
        followups,
        confirmation,
        tuple(notes),
        policy.as_record(),
    )
