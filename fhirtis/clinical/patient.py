"""One patient, all of the clinical spec: population, response course, IVIG exposure, thrombosis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from fhirtis.clinical.course import Course, evaluate_course
from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    RiskEvidence,
    TeeEvent,
)
from fhirtis.clinical.frozen import record
from fhirtis.clinical.ivig import Exposure, compute_exposure
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.population import MyositisDiagnosis, PopulationDecision, decide_population
from fhirtis.clinical.thrombosis import (
    ThrombosisAssessment,
    UnassessedRiskFactor,
    assess_thrombosis,
)
from fhirtis.clinical.weight import PlausibleBody

# module constants: reading a member off its class costs more in Python 3.11
_PGA, _MMT8 = Measure.PGA, Measure.MMT8


@record
class PatientFactsBundle:
    """Everything known of one patient, as facts (what ``fhirtis.fhir.extract`` produces)."""

    patient: PatientFacts
    patient_source: str
    measures: Sequence[MeasureValue] = ()
    administrations: Sequence[IvigAdministration] = ()
    weights: Sequence[BodyWeight] = ()
    heights: Sequence[BodyHeight] = ()
    bmis: Sequence[BodyMassIndex] = ()
    evidence: Sequence[RiskEvidence] = ()
    events: Sequence[TeeEvent] = ()
    jdm_coded: bool = False
    pm_coded: bool = False  # a polymyositis diagnosis (adult criteria: clinical spec §2.3)
    dm_onset: date | None = None
    dm_onset_age: int | None = None  # completed years, of an onset recorded as an age
    # the earliest onset recorded to the year or month only: its first and last possible day
    dm_onset_partial: tuple[date, date] | None = None
    # the earliest recordedDate of a dermatomyositis diagnosis recorded with no onset (the onset
    # was on or before it)
    dm_recorded_by: date | None = None
    # the myositis diagnoses read, with the verification status each was recorded with
    diagnoses: Sequence[MyositisDiagnosis] = ()
    # risk factors whose records were read only in part (a search answered in part), with why
    unread_risks: Sequence[UnassessedRiskFactor] = ()


@record
class PatientEvaluation:
    population: PopulationDecision
    course: Course
    exposure: Exposure
    thrombosis: ThrombosisAssessment
    as_of: datetime
    policy: Policy


def earliest_onset(
    full: date | None, partial: tuple[date, date] | None
) -> tuple[date | None, date | None]:
    """The earliest dermatomyositis onset (clinical spec §2.3) of the onsets recorded to the day
    (``full``, the earliest) and those recorded to the year or month (``partial``): its first
    possible day and, when it is not known to the day, its last (else None)."""
    if partial is None:
        return full, None
    first, last = partial
    if full is not None:
        first, last = min(first, full), min(last, full)
    return first, (None if last == first else last)


def evaluate_patient(
    facts: PatientFactsBundle,
    policy: Policy,
    *,
    as_of: datetime,
    population: Population | None = None,
    baseline_day: date | None = None,
) -> PatientEvaluation:
    """Evaluate one patient. ``as_of`` is the time "now" means for the current risk factors
    and the applicable maximum rate; pass a time derived from the data (not the wall clock)
    to keep results reproducible."""
    onset, onset_latest = earliest_onset(facts.dm_onset, facts.dm_onset_partial)
    decision = decide_population(
        policy,
        jdm_coded=facts.jdm_coded,
        pm_coded=facts.pm_coded,
        birth_date=facts.patient.birth_date,
        birth_date_latest=facts.patient.birth_date_latest,
        dm_onset=onset,
        dm_onset_latest=onset_latest,
        dm_onset_age=facts.dm_onset_age,
        dm_recorded_by=facts.dm_recorded_by,
        override=population,
        diagnoses=facts.diagnoses,
    )
    # the plausible weights and heights, checked once for the exposure and the thrombosis
    body = PlausibleBody.of(facts.weights, facts.heights, policy)
    exposure = compute_exposure(
        facts.administrations, facts.weights, facts.heights, facts.patient, policy, body
    )
    first_ivig = exposure.cycles[0].start.day if exposure.cycles else None
    course = evaluate_course(
        facts.measures,
        decision.population,
        policy,
        first_ivig=first_ivig,
        baseline_day=baseline_day,
    )
    thrombosis = assess_thrombosis(
        patient=facts.patient,
        patient_source=facts.patient_source,
        evidence=facts.evidence,
        weights=facts.weights,
        heights=facts.heights,
        bmis=facts.bmis,
        pga=[m for m in facts.measures if m.measure is _PGA],
        mmt8=[m for m in facts.measures if m.measure is _MMT8],
        exposure=exposure,
        events=facts.events,
        as_of=as_of,
        policy=policy,
        body=body,
        unread=facts.unread_risks,
    )
    return PatientEvaluation(decision, course, exposure, thrombosis, as_of, policy)
