"""Session 27 (s27d) audit of the clinical specification (DOMAIN.md, revision 2): edges worked
by hand from the specification alone, then checked against fhirtis.

The first tests take FHIR in (bundles built with the case builder of
tests/data/s24b_cases/make_cases.py) through the whole offline pipeline, where a unit
conversion sits between the recorded value and the threshold (a VAS in mm, a rate per kg). The
last two compare fhirtis with a literal, independent reading of a rule over a seeded sample of
cases on and beside its edges (§3 deterioration; §5.3 "early" for a date-only onset)."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from fhirtis.clinical.deterioration import assess_deterioration
from fhirtis.clinical.facts import (
    BodyWeight,
    FhirTime,
    IvigAdministration,
    PatientFacts,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.thrombosis import associate_events
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.clinical.helpers import av
from tests.test_s24b_clinical_edges import M  # the s24b case builder (make_cases.py)

D = Decimal
P = Policy()
UCUM = "http://unitsofmeasure.org"


def _evaluate(case: Any) -> dict[str, Any]:
    raw = json.dumps(case.bundle()).encode()
    result = evaluate_patient_resources(read_patient_bundle(raw, "case.json"), Settings())
    loaded: dict[str, Any] = json.loads(
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    )
    return loaded


def _adult(prefix: str) -> Any:
    case = M.Case(prefix, "male", "1970-01-01")
    case.dermatomyositis("2023-06-01")
    return case


def _in_mm(observation: dict[str, Any]) -> dict[str, Any]:
    observation["valueQuantity"].update(unit="mm", code="mm")
    return observation


def _findings(s: dict[str, Any]) -> list[tuple[Decimal, Decimal]]:
    return [
        (D(str(f["rate"])), D(str(f["limit"])))
        for f in sorted(s["thrombosis"]["rate_findings"], key=lambda f: f["administration"])
    ]


# --- §1 (VAS 0–100 mm → ÷10), §5.1 (PGA ≥ 7 cm), §5.2 (3.3 with a risk factor) ---------------


@pytest.mark.parametrize(("pga_mm", "inflamed"), [(70, True), (69.9, False)])
def test_inflammation_from_a_pga_recorded_in_mm_at_the_7_cm_edge(
    pga_mm: float, inflamed: bool
) -> None:
    # 70 mm = 7 cm ≥ 7: poorly controlled inflammation, limit 3.3; 69.9 mm = 6.99 cm: none, 4.
    # Rates of a 10 % product (100 mg/mL) at 70 kg: 138.6 mL/h × 100 / 4200 = 3.3 exactly (not
    # above 3.3); 139 mL/h → 13900 / 4200 = 3.3095… (above 3.3, below 4).
    case = _adult("s27d-mm")
    case.weight(70, "2024-01-08T08:00:00+01:00")
    _in_mm(case.measure("pga", pga_mm, "2024-01-08T08:45:00+01:00"))
    med = case.medication()
    case.ivig(med, "2024-01-08T10:00:00+01:00", "2024-01-08T14:00:00+01:00", 70, 138.6)
    case.ivig(med, "2024-01-09T10:00:00+01:00", "2024-01-09T14:00:00+01:00", 70, 139)
    s = _evaluate(case)
    assert ("inflammation" in s["thrombosis"]["risk_factors"]) is inflamed
    if inflamed:
        assert D(str(s["thrombosis"]["max_rate_now"])) == D("3.3")
        ((rate, limit),) = _findings(s)
        assert (rate.quantize(D("0.0001")), limit) == (D("3.3095"), D("3.3"))
    else:
        assert D(str(s["thrombosis"]["max_rate_now"])) == D(4)
        assert _findings(s) == []


# --- §3 confirmed deterioration, VAS in mm --------------------------------------------------------


def test_confirmed_deterioration_with_the_vas_in_mm_and_responder_after_it() -> None:
    # baseline PGA 30 mm (3 cm), MMT-8/150 100. Weeks 4 and 8: PGA 50 mm (5 cm: worse by exactly
    # 2 cm) and MMT-8 80 (worse by 20/100 = exactly 20 %, relative): clause 1 at both, so
    # deterioration is confirmed at week 8 (the second). Week 12: PGA 20 mm (improved 10 % of
    # the range → 7.5) and MMT-8 120 (+20/150 = 13.3 % → 20): TIS 27.5 ≥ 20, but no responder,
    # the deterioration having been confirmed before it. The others never change (0 each).
    case = _adult("s27d-det")
    case.weight(70, "2024-01-08T08:00:00+01:00")
    visits = [("2024-01-08", 30, 100), ("2024-02-05", 50, 80), ("2024-03-04", 50, 80)]
    visits.append(("2024-04-01", 20, 120))
    for day, pga_mm, mmt in visits:
        when = f"{day}T08:45:00+01:00"
        _in_mm(case.measure("pga", pga_mm, when))
        case.measure("mmt8-150", mmt, when)
        _in_mm(case.measure("ptga", 30, when))
        case.measure("haq-di", 1, when)
        _in_mm(case.measure("extramuscular", 20, when))
        case.enzyme("ck", 500, f"{day}T08:20:00+01:00", 200)
    med = case.medication()
    case.ivig(med, "2024-01-08T10:00:00+01:00", "2024-01-08T14:00:00+01:00", 140, 100)
    s = _evaluate(case)
    assert s["baseline"] == "2024-01-08"
    assert s["confirmed_deterioration"] == "2024-03-04"
    got = [
        (a["date"], a["deterioration"], a["confirmed_deterioration"], a["responder"], a["tis"])
        for a in s["assessments"]
    ]
    assert got == [
        ("2024-02-05", True, False, False, 0),
        ("2024-03-04", True, True, False, 0),
        ("2024-04-01", False, True, False, 27.5),
    ]


# --- §4 a rate already per kg needs no weight; §5.2 4 mg/kg/min ---------------------------------


@pytest.mark.parametrize(
    ("rate", "unit", "above"),
    [
        (0.04, "mL/kg/min", False),  # 0.04 × 100 mg/mL = 4: not above 4
        (0.05, "mL/kg/min", True),  # 5
        (2.4, "mL/kg/h", False),  # 2.4 × 100 / 60 = 4
        (3, "mL/kg/h", True),  # 5
        (5, "mg/kg/min", True),
    ],
)
def test_a_rate_per_kg_is_checked_without_any_body_weight(
    rate: float, unit: str, above: bool
) -> None:
    case = _adult("s27d-perkg")  # no body weight at all
    med = case.medication()
    admin = case.ivig(med, "2024-01-08T10:00:00+01:00", "2024-01-08T14:00:00+01:00", 70, 100)
    admin["dosage"]["rateQuantity"] = {"value": rate, "unit": unit, "system": UCUM, "code": unit}
    s = _evaluate(case)
    (cycle,) = s["ivig"]["cycles"]
    assert cycle["g_per_kg"] is None  # grams known, but no weight for g/kg
    expected = {"mL/kg/min": D(str(rate)) * 100, "mL/kg/h": D(str(rate)) * 100 / 60}
    assert D(str(cycle["max_rate_mg_kg_min"])) == expected.get(unit, D(str(rate)))
    assert bool(_findings(s)) is above


# --- §3 deterioration against a literal reading, on and beside every edge -------------------------

_RANGE = {"pga": 10, "ptga": 10, "mmt8_150": 150, "haq": 3, "extramuscular": 10}
_GRID = {
    "pga": ["0", "1", "2", "2.5", "3", "3.9", "4", "4.99", "5", "6.5", "7", "10"],
    "ptga": ["0", "1", "2", "2.6", "3", "3.9", "3.91", "5", "6.5", "10"],
    "mmt8_150": ["0", "50", "70", "79", "80", "81", "100", "120", "150"],
    "haq": ["0", "0.5", "0.65", "0.9", "1", "1.29", "1.3", "1.5", "3"],
    "extramuscular": ["0", "1", "1.99", "2", "3", "3.99", "4", "5", "10"],
}


def _literal(base: dict[str, str], follow: dict[str, str]) -> tuple[bool, bool, bool]:
    """§3 as written: clause 1 PGA worse ≥ 2 cm and MMT-8 worse ≥ 20 %; clause 2 extramuscular
    worse ≥ 2 cm; clause 3 three of the five worse ≥ 30 %; percent relative to the baseline,
    or to the range where the baseline is 0."""

    def worse(key: str) -> tuple[Fraction, Fraction]:
        b, f = Fraction(base[key]), Fraction(follow[key])
        amount = b - f if key == "mmt8_150" else f - b
        return amount, amount * 100 / (b if b != 0 else _RANGE[key])

    c1 = worse("pga")[0] >= 2 and worse("mmt8_150")[1] >= 20
    c2 = worse("extramuscular")[0] >= 2
    c3 = sum(1 for key in _RANGE if worse(key)[1] >= 30) >= 3
    return c1, c2, c3


def test_deterioration_matches_the_literal_rule_on_a_grid_of_edges() -> None:
    rng = random.Random(20261206)
    seen = {True: 0, False: 0}
    for _ in range(3000):
        base = {k: rng.choice(v) for k, v in _GRID.items()}
        follow = {k: rng.choice(v) for k, v in _GRID.items()}
        r = assess_deterioration(date(2024, 1, 1), av(**base).values, av(**follow).values, P)
        c1, c2, c3 = _literal(base, follow)
        assert (r.clauses["pga+mmt8"], r.clauses["extramuscular"], r.clauses["any-3-of-5"]) == (
            c1,
            c2,
            c3,
        ), (base, follow)
        assert r.deteriorated is (c1 or c2 or c3)
        seen[c1 or c2 or c3] += 1
    assert min(seen.values()) > 300  # both outcomes are well represented


# --- §5.3 "early" for a date-only onset, against a literal reading ------------------------------

_ZONE = timezone(timedelta(hours=1))
_DAY0 = datetime(2024, 3, 10, tzinfo=_ZONE)


def _literal_early(day: date, admins: list[IvigAdministration]) -> bool | None:
    """§5.3: an instant is early when it is after an administration's start and no more than 24
    h after its end (its start without one); a date-only onset is early only if every instant
    of its day qualifies, not early only if none does, else unknown. The instants sampled are
    every quarter hour of the day, one second and seven and a half minutes after each, and the
    day's last microsecond (every administration time here is on a quarter hour)."""

    def qualifies(t: datetime) -> bool:
        for a in admins:
            assert a.start.instant is not None
            start = a.start.instant
            end = a.end.instant if a.end is not None and a.end.instant is not None else start
            if start < t <= end + timedelta(hours=24):
                return True
        return False

    first = datetime(day.year, day.month, day.day, tzinfo=_ZONE)
    instants = [first + timedelta(days=1) - timedelta(microseconds=1)]
    for quarter in range(96):
        t = first + timedelta(minutes=15 * quarter)
        instants += [t, t + timedelta(seconds=1), t + timedelta(minutes=7, seconds=30)]
    hits = [qualifies(t) for t in instants]
    return True if all(hits) else (False if not any(hits) else None)


def test_date_only_onset_early_matches_the_literal_rule() -> None:
    rng = random.Random(27)
    weight = [BodyWeight("Observation/w", _DAY0 - timedelta(days=5), D(70))]
    outcomes: dict[bool | None, int] = {True: 0, False: 0, None: 0}
    for _ in range(600):
        admins = []
        for i in range(rng.randint(1, 3)):
            start = _DAY0 + timedelta(
                days=rng.randint(-2, 1), hours=rng.choice([0, 6, 10, 14, 23]), minutes=15 * i
            )
            end = start + timedelta(hours=rng.choice([0, 2, 4, 10])) if rng.random() < 0.7 else None
            admins.append(
                IvigAdministration(
                    source=f"MedicationAdministration/{i}",
                    start=FhirTime.of(start),
                    end=None if end is None else FhirTime.of(end),
                    dose_g=D(10),
                )
            )
        day = (_DAY0 + timedelta(days=rng.randint(-1, 2))).date()
        exposure = compute_exposure(admins, weight, [], PatientFacts(), P)
        event = TeeEvent(TeeKind.DVT, "Condition/dvt", FhirTime.of(day))
        associated, _, _ = associate_events([event], exposure, P)
        if not associated:
            continue
        expected = _literal_early(day, admins)
        assert associated[0].early is expected, (day, [(a.start, a.end) for a in admins])
        outcomes[expected] += 1
    assert min(outcomes.values()) > 20  # all three answers are exercised
