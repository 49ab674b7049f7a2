"""Evaluate one patient: resources → facts → results → derived resources → write plan.

The offline half (this module's :func:`evaluate_patient_resources`) is pure; reading from and
writing to a FHIR server is ``fhirtis.io``'s business and joins here through the same steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from fhirtis.clinical.facts import Instrument
from fhirtis.clinical.patient import PatientEvaluation, evaluate_patient
from fhirtis.clinical.policy import Policy, Population
from fhirtis.fhir.bundle import PatientResources, read_patient_bundle
from fhirtis.fhir.codes import AnsweredOracle, Terminology, load_concept_map, terminology
from fhirtis.fhir.derive import Derived, derive_resources
from fhirtis.fhir.extract import Extractor, ExtractSettings, PatientData, hierarchy_questions
from fhirtis.fhir.needs import unread_risks
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.plan import WritePlan, plan_writes
from fhirtis.io import TerminologyClient
from fhirtis.settings import Settings

Json = dict[str, Any]
Answers = Mapping[tuple[str, str, str], bool | None]

TERMINOLOGY_CACHE_LIMIT = 65_536
"""Answers kept per terminology server before they are forgotten (every distinct code the
shipped expansions lack adds one per SNOMED CT hierarchy: a long-running service or registry
run would otherwise keep every code it was ever shown)."""


class _KeptAnswers(dict[tuple[str, str, str], bool]):
    """Definite ``$subsumes`` answers of one server, emptied when a new answer would make more
    than :data:`TERMINOLOGY_CACHE_LIMIT` (a forgotten answer is asked again)."""

    def __setitem__(self, key: tuple[str, str, str], value: bool) -> None:
        if key not in self and len(self) >= TERMINOLOGY_CACHE_LIMIT:
            self.clear()
        super().__setitem__(key, value)


# definite $subsumes answers per terminology server, shared by the patients of a process
_TERMINOLOGY_CACHES: dict[str, _KeptAnswers] = {}


@dataclass(frozen=True)
class Options:
    """Per-run choices a caller may make (the CLI's flags, an operation's parameters)."""

    population: Population | None = None
    baseline_day: date | None = None
    as_of: datetime | None = None


@dataclass
class PatientResult:
    patient_ref: str
    data: PatientData
    evaluation: PatientEvaluation
    derived: list[Derived]
    issues: list[Issue] = field(default_factory=list)
    # the resource types the server returned only in part (a search said matches were
    # withheld, or ended before its Bundle.total): earlier output is not withdrawn
    read_in_part: tuple[str, ...] = ()

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan:
        sources = sorted(self.data.used.values())
        return plan_writes(
            self.derived, sources, self.evaluation.as_of, existing, labels=self.data.labels
        )


@cache
def _terminology_for(concept_map: Path | None) -> Terminology:
    base = terminology()
    return base.with_concept_map(load_concept_map(concept_map)) if concept_map else base


def extractor_for(settings: Settings, answers: Answers | None = None) -> Extractor:
    """The extractor for these settings; with ``answers`` (from :func:`ask_terminology`), codes
    the shipped expansions do not list are classified by them."""
    ulns: dict[Instrument, Decimal] = {Instrument(k): v for k, v in settings.default_uln.items()}
    t = _terminology_for(settings.concept_map)
    if answers is not None:
        t = t.with_oracle(AnsweredOracle(answers))
    return Extractor(t, ExtractSettings(default_uln_u_per_l=ulns))


async def ask_terminology(resources: PatientResources, settings: Settings) -> Answers | None:
    """Pre-classification: the subsumption questions this patient's codes leave open, asked of
    the configured terminology server concurrently (cached per server). ``None`` without one.
    The extraction itself stays pure: it reads the answers through an ``AnsweredOracle``."""
    config = settings.terminology
    if config is None:
        return None
    questions = hierarchy_questions(_terminology_for(settings.concept_map), resources.resources)
    if not questions:
        return {}
    cache = _TERMINOLOGY_CACHES.setdefault(config.base_url, _KeptAnswers())
    async with TerminologyClient(config, cache=cache) as client:
        return await client.answer_all(questions)


def as_of_for(data: PatientData) -> datetime:
    """ "Now" for the current risk factors: the latest clinical time in the data, so that the
    same data always gives the same results. Without any, the start of today (UTC).

    A date-only record counts up to the end of its day on the records' calendar
    (:attr:`~fhirtis.fhir.extract.common.PatientData.latest`). A patient recorded deceased
    (``deceasedDateTime``) without any such record is evaluated as of the death, not today: the
    patient ages no further (a child who died is never of advanced age, clinical spec §5.1).
    One recorded deceased with no date (``deceasedBoolean``) and no such record is evaluated as
    of today, but of an unknown age: advanced age is not assessable (``death_undated``)."""
    latest = data.latest
    if latest is not None:
        return latest
    died = data.deceased_on
    if died is not None:
        return died.span(None)[1]
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def evaluate_patient_resources(
    resources: PatientResources,
    settings: Settings,
    options: Options | None = None,
    extractor: Extractor | None = None,
    answers: Answers | None = None,
) -> PatientResult:
    """``answers``: the terminology server's, from :func:`ask_terminology` (ignored when an
    ``extractor`` is given)."""
    options = options or Options()
    extractor = extractor or extractor_for(settings, answers)
    data = extractor.extract(resources.patient_ref, resources.resources, resources.resolve)
    # A read path that could not fetch a Medication has reported it (code not-found at
    # "medicationReference"): the extractor's report of the same administration is not repeated.
    fetched_not = {
        i.resource
        for i in resources.issues
        if i.code == "not-found" and i.expression == "medicationReference"
    }
    data.issues[:] = [
        i
        for i in data.issues
        if not (
            i.code == "not-found"
            and i.resource in fetched_not
            and (i.expression or "").endswith(".medicationReference")
        )
    ]
    data.issues[:0] = resources.issues
    data.unread_risks[:] = unread_risks(resources.read_in_part)
    if data.deceased and data.deceased_on is None and data.latest is None:
        # no date of death and no dated record: the age "now" is unknown, not today's
        data.patient = replace(data.patient, death_undated=True)
    facts = data.facts()
    policy: Policy = settings.policy
    evaluation = evaluate_patient(
        facts,
        policy,
        as_of=options.as_of or as_of_for(data),
        population=options.population,
        baseline_day=options.baseline_day,
    )
    derived = derive_resources(
        evaluation, data.patient_ref, data.labels, patient_source=data.patient_source
    )
    return PatientResult(
        data.patient_ref,
        data,
        evaluation,
        derived,
        list(data.issues),
        tuple(resources.read_in_part),
    )


def evaluate_bundle_file(
    path: Path, settings: Settings, options: Options | None = None
) -> PatientResult:
    """One patient's Bundle file. Raises InputError when the file is not one patient's Bundle."""
    return evaluate_bundle_bytes(path.read_bytes(), path.name, settings, options)


def evaluate_bundle_bytes(
    raw: bytes, where: str, settings: Settings, options: Options | None = None
) -> PatientResult:
    """One patient's Bundle as read (``where``: its name in messages). Raises InputError when it
    is not one patient's Bundle."""
    resources = read_patient_bundle(raw, where)
    answers = asyncio.run(ask_terminology(resources, settings)) if settings.terminology else None
    return evaluate_patient_resources(resources, settings, options, answers=answers)
