"""A long-followed patient: work per administration must not grow with the whole record.

An ICU record weighs its patient every hour (thousands of weights), ten years of monthly IVIG
are a thousand and more administrations, and a problem list that codes hypertension at every
visit holds hundreds of Conditions. Each administration infused above the lower label limit
(3.3 mg/kg/min) is judged against its own risk profile (clinical spec §5.2), whose obesity
factor reads the latest weight, height and BMI (§5.1), and each cycle reads its dosing weight
(§4). These tests count the work with shims (no timing): reading the latest weight must not
read every weight, and citing N Conditions for one factor must not compare each with all the
others.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, SupportsIndex

import pytest

import fhirtis.clinical.patient as patient_module
from fhirtis.clinical.facts import BodyWeight, PatientFacts, RiskEvidence, RiskFactorKind
from fhirtis.clinical.notes import Note, excluded
from fhirtis.clinical.patient import PatientEvaluation, evaluate_patient
from fhirtis.clinical.thrombosis import RiskInputs, risk_profile
from fhirtis.clinical.weight import (
    PlausibleBody,
    dated,
    latest_in_order,
    latest_on_or_before,
    passed_over,
    sorted_dated,
)
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import as_of_for, extractor_for
from fhirtis.settings import Settings

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
PID = "long1"
REF = f"Patient/{PID}"


def _q(value: float | int, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


FIRST = datetime(2015, 1, 1, 9, 0, tzinfo=UTC)


def _hourly(n: int) -> list[tuple[datetime, float]]:
    """``n`` hourly weights around 70 kg from two days before the first cycle."""
    rng = random.Random(36)
    start = FIRST - timedelta(days=2)
    return [(start + timedelta(hours=i), round(70 + rng.uniform(-1, 1), 1)) for i in range(n)]


def _bundle(weights: list[tuple[datetime, float]], cycles: int, bags: int) -> bytes:
    """``weights`` (time, kg), then monthly cycles of ``bags`` administrations of a 10% product
    at 147 mL/h (3.5 mg/kg/min: above 3.3, within 4, so each one is judged)."""
    import orjson  # noqa: PLC0415

    res: list[Json] = [
        {"resourceType": "Patient", "id": PID, "birthDate": "1970-03-01", "gender": "female"},
        {
            "resourceType": "Condition",
            "id": "dm",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "396230008"}]},
            "subject": {"reference": REF},
            "onsetDateTime": "2014-06-01",
        },
        {
            "resourceType": "Medication",
            "id": "med",
            "code": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
                "text": "IVIG 10%",
            },
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": "human normal immunoglobulin"},
                    "strength": {"numerator": _q(10, "g"), "denominator": _q(100, "mL")},
                }
            ],
        },
    ]
    for i, (when, kg) in enumerate(weights):
        res.append(
            {
                "resourceType": "Observation",
                "id": f"w{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": REF},
                "effectiveDateTime": when.isoformat(),
                "valueQuantity": _q(kg, "kg"),
            }
        )
    for c in range(cycles):
        for k in range(bags):
            start = FIRST + timedelta(days=28 * c + k)
            res.append(
                {
                    "resourceType": "MedicationAdministration",
                    "id": f"ma{c}-{k}",
                    "status": "completed",
                    "medicationReference": {"reference": "Medication/med"},
                    "subject": {"reference": REF},
                    "effectivePeriod": {
                        "start": start.isoformat(),
                        "end": (start + timedelta(hours=4)).isoformat(),
                    },
                    "dosage": {"dose": _q(350, "mL"), "rateQuantity": _q(147, "mL/h")},
                }
            )
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in res],
        }
    )


def _evaluate(record: bytes) -> PatientEvaluation:
    settings = Settings()
    bundle = read_patient_bundle(record)
    data = extractor_for(settings).extract(bundle.patient_ref, bundle.resources, bundle.resolve)
    return evaluate_patient(data.facts(), settings.policy, as_of=as_of_for(data))


def _implausible_named(evaluation: PatientEvaluation) -> list[list[str]]:
    """Per cycle, the sources of the weights its dosing weight names as implausible."""
    return [
        [n.source or "" for n in c.dosing_weight.notes if n.code == "weight-implausible"]
        for c in evaluation.exposure.cycles
    ]


class _CountingList(list[Any]):
    """A list that counts the items read from it, by iteration or by index."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.reads = 0

    def __iter__(self) -> Any:
        for item in super().__iter__():
            self.reads += 1
            yield item

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        self.reads += 1
        return super().__getitem__(index)


def test_the_latest_weight_is_found_without_reading_every_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n_weights, cycles, bags = 1500, 12, 4  # 48 administrations, each judged at its start
    counted: list[_CountingList] = []
    real_of = PlausibleBody.of

    class _Shim:
        @staticmethod
        def of(*args: Any) -> PlausibleBody:
            body = real_of(*args)
            weights = _CountingList(body.weights)
            counted.append(weights)
            return PlausibleBody(
                weights, body.weight_notes, body.heights, body.height_notes, body.weight_conflicts
            )

    monkeypatch.setattr(patient_module, "PlausibleBody", _Shim)
    evaluation = _evaluate(_bundle(_hourly(n_weights), cycles, bags))

    assert len(evaluation.exposure.cycles) == cycles
    assert all(c.dosing_weight.kg is not None for c in evaluation.exposure.cycles)
    (weights,) = counted
    assert len(weights) == n_weights
    # a lookup per cycle and per administration judged: read by bisection, a few dozen
    # weights each; a scan of them all per lookup reads 60 x 1,500 = 90,000
    assert weights.reads <= 2 * n_weights


def test_citing_many_conditions_for_one_factor_is_linear() -> None:
    comparisons = 0

    class _Source(str):
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            nonlocal comparisons
            comparisons += 1
            return str.__eq__(self, other)

    n = 600  # hypertension coded at every visit of a long follow-up
    sources = [_Source(f"Condition/htn{i}/_history/1") for i in range(n)]
    evidence = tuple(
        RiskEvidence(RiskFactorKind.CARDIOVASCULAR, s, start=date(2010, 1, 1), display="HTN")
        for s in sources
    )
    inputs = RiskInputs(
        patient=PatientFacts(birth_date=date(1970, 3, 1)),
        patient_source="Patient/p/_history/1",
        evidence=evidence,
    )
    profile = risk_profile(datetime(2020, 1, 1, 9, tzinfo=UTC), inputs)

    (factor,) = [f for f in profile.factors if f.kind is RiskFactorKind.CARDIOVASCULAR]
    assert list(factor.evidence) == sorted(sources)  # each once, in source order
    # each source checked against a set, not against every source cited before it
    # (n(n-1)/2 = 179,700 comparisons)
    assert comparisons <= 2 * n


def test_each_source_is_cited_once() -> None:
    evidence = tuple(
        RiskEvidence(RiskFactorKind.CARDIOVASCULAR, s, start=date(2010, 1, 1))
        for s in ("Condition/b", "Condition/a", "Condition/b", "Condition/c", "Condition/a")
    )
    inputs = RiskInputs(
        patient=PatientFacts(birth_date=date(1970, 3, 1)),
        patient_source="Patient/p",
        evidence=evidence,
    )
    (factor,) = risk_profile(datetime(2020, 1, 1, tzinfo=UTC), inputs).factors
    assert factor.evidence == ("Condition/a", "Condition/b", "Condition/c")


def test_bisection_picks_what_the_scan_picks() -> None:
    """Ties (one time, one source: the contained results of one DiagnosticReport), offsets
    that move the instant across a date, days without a weight: the first of the equal latest,
    as the scan (and max) picks, on every day."""
    rng = random.Random(2026)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    facts = []
    for i in range(400):
        when = base + timedelta(hours=rng.randrange(0, 24 * 40, 3))
        source = f"DiagnosticReport/r{rng.randrange(5)}" if rng.random() < 0.3 else f"w{i}"
        facts.append(BodyWeight(source, when, Decimal(rng.randrange(60, 80))))
    ordered = sorted_dated(facts)
    unordered = dated(facts)
    for offset in range(-2, 43):
        on = (base + timedelta(days=offset)).date()
        assert latest_in_order(ordered, on) is latest_on_or_before(unordered, on)


def test_each_implausible_weight_is_named_once_not_on_every_later_cycle() -> None:
    """An ICU record: hourly weights with a 700 kg typo every 50 (spec §1: excluded, with the
    reason). Each cycle named every implausible weight recorded before it, so the notes grew as
    cycles × typos (cycle 120 of a ten-year record named the typos of its first year): each is
    now named once, on the first cycle after it."""
    weights = [(when, 700.0 if i % 50 == 1 else kg) for i, (when, kg) in enumerate(_hourly(600))]
    typos = [f"Observation/w{i}" for i in range(600) if i % 50 == 1]
    named = _implausible_named(_evaluate(_bundle(weights, cycles=6, bags=1)))

    # those recorded on or before the first cycle's start date (a weight that day counts)
    assert named[0] == ["Observation/w1", "Observation/w51"]
    assert sorted(s for cycle in named for s in cycle) == sorted(typos)  # each once
    assert named[2:] == [[], [], [], []]  # none since the second cycle (weights end on day 23)


def test_an_implausible_weight_the_dosing_weight_passed_over_is_named_again() -> None:
    """The weight used is the last plausible one (day -1, stale from the second cycle on); the
    700 kg of day 20 would be the latest: each cycle that passed it over says so."""
    weights = [(FIRST - timedelta(days=1), 70.0), (FIRST + timedelta(days=20), 700.0)]
    named = _implausible_named(_evaluate(_bundle(weights, cycles=3, bags=1)))
    assert named == [[], ["Observation/w1"], ["Observation/w1"]]


def test_passed_over_names_from_the_weight_used_or_since_the_previous_cycle() -> None:
    def weight(i: int, day: int) -> BodyWeight:
        return BodyWeight(f"w{i}", datetime(2024, 1, day, 8, tzinfo=UTC), Decimal(70))

    excluded = [(excluded_note(f"w{i}"), weight(i, day)) for i, day in enumerate((2, 5, 9, 12))]
    used = weight(99, 6)

    def sources(notes: list[Note]) -> list[str | None]:
        return [n.source for n in notes]

    on = date(2024, 1, 10)
    assert sources(passed_over(excluded, used, on)) == ["w0", "w1", "w2"]  # no cycle before
    assert sources(passed_over(excluded, used, on, since=date(2024, 1, 3))) == ["w1", "w2"]
    assert sources(passed_over(excluded, used, on, since=date(2024, 1, 8))) == ["w2"]
    # nothing plausible to use: every one up to the date was passed over
    assert sources(passed_over(excluded, None, on, since=date(2024, 1, 8))) == ["w0", "w1", "w2"]
    # one recorded at the time of the weight used is named (it disagrees with it)
    assert sources(passed_over(excluded, weight(98, 9), on, since=date(2024, 1, 9))) == ["w2"]


def excluded_note(source: str) -> Note:
    return excluded("weight-implausible", "implausible; not used", source)


def test_conditions_named_alike_are_said_once_in_the_factor() -> None:
    """Hypertension coded at each of 200 encounters: every finding's reason said "Essential
    hypertension" 200 times (for 1,920 fast administrations, 12 MB of DetectedIssues from a
    1 MB record). Each source is still cited; each distinct detail is said once."""
    evidence = tuple(
        RiskEvidence(
            RiskFactorKind.CARDIOVASCULAR,
            f"Condition/c{i:03d}",
            start=date(2010, 1, 1),
            display="Type 2 diabetes mellitus" if i % 50 == 7 else "Essential hypertension",
        )
        for i in range(200)
    )
    inputs = RiskInputs(
        patient=PatientFacts(birth_date=date(1970, 3, 1)),
        patient_source="Patient/p",
        evidence=evidence,
    )
    (factor,) = risk_profile(datetime(2020, 1, 1, tzinfo=UTC), inputs).factors
    assert len(factor.evidence) == 200
    assert factor.detail == "Essential hypertension; Type 2 diabetes mellitus"  # source order
