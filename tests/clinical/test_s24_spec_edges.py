"""Hand-worked edge cases of the clinical specification (DOMAIN.md §1–§5), session 24.

Every expected number below was worked by hand from the specification, not taken from the
code's output; the arithmetic is in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fhirtis.api.evaluate import parse_parameters
from fhirtis.clinical.course import evaluate_course
from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    Sex,
)
from fhirtis.clinical.ivig import compute_exposure
from fhirtis.clinical.patient import PatientFactsBundle, evaluate_patient
from fhirtis.clinical.policy import DosingWeightBasis, Policy, Population
from fhirtis.clinical.tis import Category, compute_tis
from tests.clinical.helpers import av, mv

D = Decimal
P = Policy()
ADULT, JUV = Population.ADULT, Population.JUVENILE


# --- §2.1/§2.2 bands: one edge of each band of each instrument --------------------------------


@pytest.mark.parametrize(
    ("key", "base", "follow", "score"),
    [
        # PtGA VAS 0–10: percent = (b − f) / 10 × 100
        ("ptga", "6", "5.5", "0"),  # 5 %
        ("ptga", "6", "5.49", "2.5"),  # 5.1 %
        ("ptga", "6", "4.5", "2.5"),  # 15 %
        ("ptga", "6", "4.49", "5"),  # 15.1 %
        ("ptga", "6", "3.5", "5"),  # 25 %
        ("ptga", "6", "3.49", "7.5"),  # 25.1 %
        ("ptga", "6", "2", "7.5"),  # 40 %
        ("ptga", "6", "1.99", "10"),  # 40.1 %
        # HAQ-DI 0–3: percent = (b − f) / 3 × 100; 5 % = 0.15, 15 % = 0.45, 25 % = 0.75, 40 % = 1.2
        ("haq", "2", "1.85", "0"),
        ("haq", "2", "1.84", "5"),
        ("haq", "2", "1.55", "5"),
        ("haq", "2", "1.54", "7.5"),
        ("haq", "2", "1.25", "7.5"),
        ("haq", "2", "1.24", "7.5"),
        ("haq", "2", "0.8", "7.5"),
        ("haq", "2", "0.79", "10"),
        ("chaq", "2", "0.8", "7.5"),
        ("chaq", "2", "0.79", "10"),
        # extramuscular VAS
        ("extramuscular", "6", "5.5", "0"),
        ("extramuscular", "6", "5.49", "7.5"),
        ("extramuscular", "6", "4.5", "7.5"),
        ("extramuscular", "6", "4.49", "12.5"),
        ("extramuscular", "6", "3.5", "12.5"),
        ("extramuscular", "6", "3.49", "15"),
        ("extramuscular", "6", "2", "15"),
        ("extramuscular", "6", "1.99", "20"),
        # DAS 0–20 (juvenile alternative for extramuscular): percent = (b − f) / 20 × 100
        ("das", "10", "9", "0"),  # 5 %
        ("das", "10", "8.9", "7.5"),  # 5.5 %
        ("das", "10", "7", "7.5"),  # 15 %
        ("das", "10", "6.9", "12.5"),  # 15.5 %
        ("das", "10", "5", "12.5"),  # 25 %
        ("das", "10", "2", "15"),  # 40 %
        ("das", "10", "1.9", "20"),  # 40.5 %
        # MMT-8 0–80: percent = (f − b) / 80 × 100; 2 % = 1.6, 10 % = 8, 20 % = 16, 30 % = 24
        ("mmt8-80", "50", "51.6", "0"),
        ("mmt8-80", "50", "51.7", "10"),
        ("mmt8-80", "50", "58", "10"),
        ("mmt8-80", "50", "58.1", "20"),
        ("mmt8-80", "50", "66", "20"),
        ("mmt8-80", "50", "66.1", "27.5"),
        ("mmt8-80", "50", "74", "27.5"),
        ("mmt8-80", "50", "74.1", "32.5"),
        # MMT-8 0–150: 2 % = 3, 10 % = 15, 20 % = 30, 30 % = 45
        ("mmt8-150", "100", "103", "0"),
        ("mmt8-150", "100", "104", "10"),
        ("mmt8-150", "100", "115", "10"),
        ("mmt8-150", "100", "116", "20"),
        ("mmt8-150", "100", "130", "20"),
        ("mmt8-150", "100", "131", "27.5"),
        ("mmt8-150", "100", "145", "27.5"),
        ("mmt8-150", "100", "146", "32.5"),
        # CMAS 0–52: 2 % = 1.04, 10 % = 5.2, 20 % = 10.4, 30 % = 15.6
        ("cmas", "30", "31.04", "0"),
        ("cmas", "30", "31.05", "10"),
        ("cmas", "30", "35.2", "10"),
        ("cmas", "30", "35.3", "20"),
        ("cmas", "30", "40.4", "20"),
        ("cmas", "30", "40.5", "27.5"),
        ("cmas", "30", "45.6", "27.5"),
        ("cmas", "30", "45.7", "32.5"),
        # PGA on a Likert 0–4: percent = (b − f) / 4 × 100
        ("pga-likert", "3", "3", "0"),
        ("pga-likert", "3", "2", "15"),  # 25 %
        ("pga-likert", "4", "2", "20"),  # 50 %
        ("pga-likert", "4", "3", "15"),  # 25 %
        ("pga-likert", "2", "4", "0"),  # worse: −50 % scores 0
    ],
)
def test_band_edge_per_instrument(key: str, base: str, follow: str, score: str) -> None:
    name = key.replace("-", "_")
    r = compute_tis(av(**{name: base}), av(**{name: follow}), ADULT, P)
    measure = {"das": Measure.EXTRAMUSCULAR, "cmas": Measure.MMT8, "pga-likert": Measure.PGA}
    m = r.measure(measure.get(key) or next(x.measure for x in r.measures if x.score is not None))
    assert m.score == D(score)


@pytest.mark.parametrize(
    ("base", "follow", "score"),
    [
        # relative: (b − f) / b × 100 of CK, baseline 1000
        ("1000", "950", "0"),  # 5 %
        ("1000", "949", "2.5"),  # 5.1 %
        ("1000", "850", "2.5"),  # 15 %
        ("1000", "849", "5"),  # 15.1 %
        ("1000", "750", "5"),  # 25 %
        ("1000", "749", "7.5"),  # 25.1 %
        ("1000", "600", "7.5"),  # 40 %
        ("1000", "100", "7.5"),  # 90 %: the enzyme's top level is 7.5
        ("1000", "2000", "0"),  # worse
        # a CK normal at baseline (≤ ULN 200) is scored as any other (enzyme_normal_baseline=score)
        ("150", "120", "5"),  # 20 %
    ],
)
def test_enzyme_relative_band_edges(base: str, follow: str, score: str) -> None:
    r = compute_tis(av(ck=(base, 200)), av(ck=(follow, 200)), ADULT, P)
    assert r.measure(Measure.ENZYME).score == D(score)


@pytest.mark.parametrize(
    ("follow", "adult", "juvenile"),
    [
        # TIS = PGA 20 (6 → 1.99, 40.1 %) + the others below; all six measured
        ({}, "minimal", "none"),  # 20: adult ≥ 20; juvenile < 30
        ({"ptga": "5.49"}, "minimal", "none"),  # 22.5
        ({"mmt8_80": "58"}, "minimal", "minimal"),  # 20 + 10 = 30: juvenile ≥ 30
        ({"mmt8_80": "66"}, "moderate", "minimal"),  # 20 + 20 = 40
        ({"mmt8_80": "66", "ck": ("750", 200)}, "moderate", "moderate"),  # 40 + 5 = 45
        ({"mmt8_80": "74.1", "ptga": "5.49", "ck": ("949", 200)}, "moderate", "moderate"),
        # 20 + 32.5 + 2.5 + 2.5 = 57.5
        ({"mmt8_80": "74.1", "ptga": "3.49"}, "major", "moderate"),  # 20 + 32.5 + 7.5 = 60
        # 60 + 7.5 (extramuscular 6 → 5.49) = 67.5: juvenile still moderate (< 70)
        ({"mmt8_80": "74.1", "ptga": "3.49", "extramuscular": "5.49"}, "major", "moderate"),
    ],
)
def test_category_at_the_thresholds(follow: dict[str, object], adult: str, juvenile: str) -> None:
    base = {"pga": "6", "ptga": "6", "mmt8_80": "50", "haq": "2", "extramuscular": "6"}
    fol = {"pga": "1.99", "ptga": "6", "mmt8_80": "50", "haq": "2", "extramuscular": "6"}
    fol.update({k: v for k, v in follow.items() if k != "ck"})  # type: ignore[misc]
    ck_follow = follow.get("ck", ("1000", 200))
    b = av(ck=("1000", 200), **base)
    f = av(ck=ck_follow, **fol)  # type: ignore[arg-type]
    assert compute_tis(b, f, ADULT, P).category == Category(adult)
    assert compute_tis(b, f, JUV, P).category == Category(juvenile)


def test_juvenile_major_at_exactly_70() -> None:
    # PGA 20 + MMT-8 32.5 + extramuscular 15 (6 → 2, 40 %) + CK 2.5 (1000 → 949) = 70
    b = av(pga="6", ptga="6", mmt8_80="50", haq="2", extramuscular="6", ck=("1000", 200))
    f = av(pga="1.99", ptga="6", mmt8_80="74.1", haq="2", extramuscular="2", ck=("949", 200))
    r = compute_tis(b, f, JUV, P)
    assert r.tis == D(70)
    assert r.category is Category.MAJOR
    # one step below (CK 950: 5 % → 0): 67.5, moderate
    f2 = av(pga="1.99", ptga="6", mmt8_80="74.1", haq="2", extramuscular="2", ck=("950", 200))
    assert compute_tis(b, f2, JUV, P).category is Category.MODERATE


# --- §1 instruments: alternatives recorded together at every visit --------------------------


def _course(values: list[object], population: Population = JUV):  # type: ignore[no-untyped-def]
    return evaluate_course(values, population, P, first_ivig=date(2024, 1, 2))  # type: ignore[arg-type]


B, F = date(2024, 1, 1), date(2024, 3, 1)


@pytest.mark.parametrize("swap", [False, True])
def test_cmas_and_mmt8_both_recorded_at_each_visit_are_compared_like_with_like(
    swap: bool,
) -> None:
    # A JDM visit records both MMT-8 (0–80) and CMAS (0–52). Each instrument is compared with
    # itself: MMT-8 50 → 60 = 10/80 = 12.5 % → 20; CMAS 30 → 40 = 10/52 = 19.2 % → 20. Whichever
    # is used, the measure is never missing, and which one does not depend on resource ids.
    names = ("a", "z") if swap else ("z", "a")
    values = [
        mv("pga", 6, B),
        mv("mmt8-80", 50, B, source=f"Observation/{names[0]}-mmt"),
        mv("cmas", 30, B, source=f"Observation/{names[1]}-cmas"),
        mv("pga", 3, F),
        mv("mmt8-80", 60, F, source=f"Observation/{names[1]}-mmt2"),
        mv("cmas", 40, F, source=f"Observation/{names[0]}-cmas2"),
    ]
    course = _course(values)
    m = course.followups[0].tis.measure(Measure.MMT8)
    assert m.reason is None
    assert m.score == D(20)
    # MMT-8 is the core set measure; CMAS its juvenile alternative: MMT-8 is used when both are
    assert m.instrument is not None and m.instrument.value == "mmt8-80"
    # two instruments on one day are not conflicting values of one instrument
    assert not [n for n in course.notes if n.code in ("conflicting-values", "superseded")]


def test_das_and_extramuscular_vas_both_recorded_use_the_comparable_one() -> None:
    # baseline: VAS 6 and DAS 10; follow-up: DAS 6 only → DAS 10 → 6 = 4/20 = 20 % → 12.5
    values = [
        mv("pga", 6, B),
        mv("extramuscular", 6, B),
        mv("das", 10, B),
        mv("pga", 3, F),
        mv("das", 6, F),
    ]
    m = _course(values).followups[0].tis.measure(Measure.EXTRAMUSCULAR)
    assert m.reason is None
    assert m.score == D("12.5")


@pytest.mark.parametrize("prefix", ["0", "z"])
def test_pga_vas_and_likert_both_recorded_compare_vas_with_vas(prefix: str) -> None:
    # PGA VAS 6 → 3 = 30 % → 17.5 (the Likert 3 → 3 would score 0), whatever the ids
    values = [
        mv("pga", 6, B),
        mv("pga-likert", 3, B, source=f"Observation/{prefix}-likert"),
        mv("pga", 3, F),
        mv("pga-likert", 3, F, source=f"Observation/{prefix}-likert2"),
    ]
    m = _course(values, ADULT).followups[0].tis.measure(Measure.PGA)
    assert m.score == D("17.5")


def test_deterioration_clause2_uses_the_vas_when_das_is_recorded_too() -> None:
    # extramuscular VAS 2 → 4 (+2 cm: clause 2 true) with a DAS 5 → 5 recorded beside it
    values = [
        mv("pga", 3, B),
        mv("extramuscular", 2, B),
        mv("das", 5, B, source="Observation/z-das"),
        mv("pga", 3, F),
        mv("extramuscular", 4, F),
        mv("das", 5, F, source="Observation/z-das2"),
    ]
    d = _course(values).followups[0].deterioration
    assert d.clauses["extramuscular"] is True


def test_chq_phs_at_one_assessment_only_gives_way_to_the_lab_enzyme() -> None:
    # CK 1000 → 800 at both (20 % → 5); CHQ-PhS only at baseline: the CK pair is comparable
    values = [
        mv("pga", 6, B),
        mv("ck", 1000, B, uln=200),
        mv("pga", 6, F),
        mv("ck", 800, F, uln=200),
    ]
    chq = MeasureValue(
        Measure.ENZYME, Instrument.CHQ_PHS, D(40), B, "Observation/chq", ResultStatus.FINAL
    )
    m = _course([*values, chq]).followups[0].tis.measure(Measure.ENZYME)
    assert m.reason is None
    assert m.score == D(5)


# --- §4 IVIG ---------------------------------------------------------------------------------

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _admin(day: int, **kw: object) -> IvigAdministration:
    return IvigAdministration(
        source=f"MedicationAdministration/{day}",
        start=FhirTime.of(T0 + timedelta(days=day)),
        **kw,  # type: ignore[arg-type]
    )


def _weight(kg: str, day: int = -1) -> BodyWeight:
    return BodyWeight(f"Observation/w{day}", T0 + timedelta(days=day), D(kg))


@pytest.mark.parametrize(
    ("grams_each", "warned"),
    [
        ("35", False),  # 140 g / 70 kg = 2 g/kg
        ("38.5", False),  # 154 / 70 = 2.2: exactly 10 % off, not more
        ("38.51", True),  # 154.04 / 70 = 2.2006 …
        ("31.5", False),  # 126 / 70 = 1.8: exactly 10 % off
        ("31.49", True),
    ],
)
def test_dose_tolerance_edge(grams_each: str, warned: bool) -> None:
    admins = [_admin(i, dose_g=D(grams_each)) for i in range(4)]
    e = compute_exposure(admins, [_weight("70")], [], PatientFacts(), P)
    codes = {n.code for n in e.all_notes()}
    assert ("dose-off-target" in codes) is warned


def test_rates_in_every_unit_hand_worked() -> None:
    # 70 kg. 300 mL/h of 100 mg/mL: 300 × 100 / (60 × 70) = 7.142857…; 21 g/h: 21000 / 4200 = 5;
    # 2.4 mL/kg/h of 100 mg/mL: 2.4 × 100 / 60 = 4; 240 mg/kg/h: 240 / 60 = 4 (no weight needed)
    admins = [
        _admin(0, dose_g=D(35), rate_ml_per_h=D(300), concentration_mg_per_ml=D(100)),
        _admin(1, dose_g=D(35), rate_mg_per_h=D(21000)),
        _admin(2, dose_g=D(35), rate_ml_per_kg_per_h=D("2.4"), concentration_mg_per_ml=D(100)),
        _admin(3, dose_g=D(35), rate_mg_per_kg_per_h=D(240)),
    ]
    e = compute_exposure(admins, [_weight("70")], [], PatientFacts(), P)
    rates = [a.rate_mg_kg_min for a in e.administrations]
    assert rates[0] is not None and abs(rates[0] - D(30000) / D(4200)) < D("1e-20")
    assert rates[1:] == [D(5), D(4), D(4)]


def test_adjusted_weight_worked_example() -> None:
    # male 175 cm, 100 kg: ideal 50 + 2.3 × (175/2.54 − 60) = 70.4646…; adjusted 82.2787…;
    # 4 × 41.14 g = 164.56 g → 2 g/kg to 2 decimals
    pol = Policy(dosing_weight=DosingWeightBasis.ADJUSTED)
    admins = [_admin(i, dose_g=D("41.14")) for i in range(4)]
    e = compute_exposure(
        admins,
        [_weight("100")],
        [BodyHeight("Observation/h", T0 - timedelta(days=10), D(175))],
        PatientFacts(sex=Sex.MALE),
        pol,
    )
    kg = e.cycles[0].dosing_weight.kg
    assert kg is not None and abs(kg - D("82.27874015748031496062992126")) < D("1e-20")
    gpk = e.cycles[0].g_per_kg
    assert gpk is not None and abs(gpk - 2) < D("0.0001")


def test_cumulative_g_per_kg_each_cycle_on_its_own_weight() -> None:
    # cycle 1: 140 g at 70 kg = 2 g/kg; cycle 2 (day 28): 160 g at 80 kg = 2 g/kg → 4 g/kg, 300 g
    admins = [_admin(i, dose_g=D(35)) for i in range(4)] + [
        _admin(28 + i, dose_g=D(40)) for i in range(4)
    ]
    e = compute_exposure(admins, [_weight("70", -1), _weight("80", 27)], [], PatientFacts(), P)
    assert e.cumulative_grams == D(300)
    assert e.cumulative_g_per_kg == D(4)
    assert e.cycle_count == 2


@pytest.mark.parametrize("weights", [[], [("60", -90)]])
def test_ideal_basis_needs_no_actual_weight_and_says_nothing_false(
    weights: list[tuple[str, int]],
) -> None:
    # female, 152.4 cm (60 in): Devine ideal = 45.5 kg exactly. 4 × 30 g = 120 g → 120 / 45.5 =
    # 2.6373… g/kg; 100 mL/h of 100 mg/mL → 10000 / (60 × 45.5) = 3.6630… mg/kg/min. The actual
    # weight is not used: a missing one does not make the dosing weight "unknown", and an old
    # one is not "used" with a stale-weight warning.
    pol = Policy(dosing_weight=DosingWeightBasis.IDEAL)
    admins = [
        _admin(i, dose_g=D(30), rate_ml_per_h=D(100), concentration_mg_per_ml=D(100))
        for i in range(4)
    ]
    e = compute_exposure(
        admins,
        [_weight(kg, day) for kg, day in weights],
        [BodyHeight("Observation/h", T0 - timedelta(days=3), D("152.4"))],
        PatientFacts(sex=Sex.FEMALE),
        pol,
    )
    c = e.cycles[0]
    assert c.dosing_weight.kg == D("45.5")
    assert c.g_per_kg == D(120) / D("45.5")
    rate = c.max_rate_mg_kg_min
    assert rate is not None and abs(rate - D(10000) / (60 * D("45.5"))) < D("1e-25")
    codes = {n.code for n in e.all_notes()}
    assert "weight-missing" not in codes
    assert "stale-weight" not in codes
    assert not c.dosing_weight.stale


# --- [choice]s: named settings, settable as reported -----------------------------------------


def test_a_reported_policy_block_sets_the_same_policy() -> None:
    # a result reports lists comma-separated ("ck,aldolase,ldh,ast,alt", "0.5,350"); the same
    # text, given back (a $myositis-evaluate valueString, a calculator "policy" object), sets them
    custom = Policy(
        enzyme_tie_order=("ldh", "ck", "aldolase", "ast", "alt"),
        weight_plausible_kg=(D(1), D(300)),
        cycle_gap_days=10,
    )
    record = custom.as_record()
    assert record["enzyme_tie_order"] == "ldh,ck,aldolase,ast,alt"
    assert Policy.model_validate(record) == custom
    assert Policy.model_validate(Policy().as_record()) == Policy()


@pytest.mark.parametrize(
    "order",
    [
        ("CK", "aldolase", "ldh", "ast", "alt"),  # read as ck: names are case-insensitive
        " ldh , ck,aldolase,ast,alt",
    ],
)
def test_enzyme_tie_order_names_are_read_as_the_enzymes(order: object) -> None:
    policy = Policy.model_validate({"enzyme_tie_order": order})
    assert set(policy.enzyme_tie_order) == {"ck", "aldolase", "ldh", "ast", "alt"}


@pytest.mark.parametrize(
    "order",
    [
        ("cpk", "aldolase", "ldh", "ast", "alt"),  # not an enzyme of the spec
        ("ck", "ck", "ldh", "ast", "alt"),  # one twice, aldolase never
        ("ck",),  # the others' order left unsaid
    ],
)
def test_enzyme_tie_order_must_order_the_five_enzymes(order: tuple[str, ...]) -> None:
    # clinical spec Settings: "any order of ck, aldolase, ldh, ast, alt"; a typo would otherwise
    # silently move an enzyme to the end of the order
    with pytest.raises(ValueError, match="enzyme_tie_order"):
        Policy(enzyme_tie_order=order)


def test_a_plausible_range_must_be_low_to_high() -> None:
    with pytest.raises(ValueError, match="weight_plausible_kg"):
        Policy(weight_plausible_kg=(D(350), D("0.5")))


def test_a_list_choice_is_settable_by_an_operation_parameter() -> None:
    # clinical spec Settings: every choice is settable per request "as a parameter of
    # $myositis-evaluate with the same name"; a FHIR parameter carries one value, a string
    params = parse_parameters(
        [("enzyme_tie_order", "ldh,ck,aldolase,ast,alt"), ("weight_plausible_kg", "1,300")]
    )
    policy = params.policy_over(Policy())
    assert policy.enzyme_tie_order == ("ldh", "ck", "aldolase", "ast", "alt")
    assert policy.weight_plausible_kg == (D(1), D(300))


def test_a_juvenile_patient_with_every_alternative_recorded_end_to_end() -> None:
    """A JDM patient (onset at 9 years: juvenile, §2.3) whose visits record MMT-8 and CMAS, the
    extramuscular VAS and DAS, CHAQ, and two enzymes. Hand-worked, baseline 2024-01-01 (the
    day before the first IVIG) → follow-up 2024-04-01:
    PGA 6 → 3: 30 % → 17.5; PtGA 5 → 4: 10 % → 2.5; MMT-8/80 50 → 62: 15 % → 20 (the CMAS
    30 → 38, 15.4 %, is not the one used); CHAQ 1.5 → 1.2: 10 % → 5; extramuscular VAS 4 → 3:
    10 % → 7.5 (not DAS 10 → 6); CK (2000 / 200 = 10 × ULN, above aldolase 20 / 8 = 2.5 ×)
    2000 → 1000: 50 % → 7.5. TIS = 60: juvenile moderate (≥ 45, < 70)."""
    b, f = date(2024, 1, 1), date(2024, 4, 1)
    measures = [
        mv("pga", 6, b),
        mv("ptga", 5, b),
        mv("mmt8-80", 50, b),
        mv("cmas", 30, b),
        mv("chaq", "1.5", b),
        mv("extramuscular", 4, b),
        mv("das", 10, b),
        mv("ck", 2000, b, uln=200),
        mv("aldolase", 20, b, uln=8),
        mv("pga", 3, f),
        mv("ptga", 4, f),
        mv("mmt8-80", 62, f),
        mv("cmas", 38, f),
        mv("chaq", "1.2", f),
        mv("extramuscular", 3, f),
        mv("das", 6, f),
        mv("ck", 1000, f),
        mv("aldolase", 10, f),
    ]
    start = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    admins = [
        IvigAdministration(
            source=f"MedicationAdministration/{i}",
            start=FhirTime.of(start + timedelta(days=i)),
            dose_g=D(20),
        )
        for i in range(4)
    ]
    facts = PatientFactsBundle(
        patient=PatientFacts(birth_date=date(2012, 5, 1), sex=Sex.FEMALE),
        patient_source="Patient/jdm",
        measures=measures,
        administrations=admins,
        weights=[BodyWeight("Observation/w", start - timedelta(days=1), D(40))],
        dm_onset=date(2022, 1, 1),
    )
    e = evaluate_patient(facts, P, as_of=datetime(2024, 4, 2, tzinfo=UTC))
    assert e.population.population is JUV
    tis = e.course.followups[0].tis
    assert [(m.measure.value, m.score) for m in tis.measures] == [
        ("pga", D("17.5")),
        ("ptga", D("2.5")),
        ("mmt8", D(20)),
        ("haq", D(5)),
        ("enzyme", D("7.5")),
        ("extramuscular", D("7.5")),
    ]
    assert tis.tis == D(60)
    assert tis.category is Category.MODERATE
    assert e.exposure.cycles[0].g_per_kg == D(2)  # 80 g / 40 kg
    # derivedFrom may cite every value of the two assessments, both instruments included
    assert "Observation/cmas-2024-01-01" in e.course.baseline.sources  # type: ignore[union-attr]


def test_a_volume_rate_per_kg_without_a_concentration_says_so() -> None:
    # 2.4 mL/kg/h of a product whose concentration is unknown: the rate in mg/kg/min is unknown
    # because of the concentration (clinical spec §4: "Unknown concentration … with that
    # reason"), not because no rate was recorded
    a = _admin(0, dose_g=D(35), rate_ml_per_kg_per_h=D("2.4"))
    e = compute_exposure([a], [_weight("70")], [], PatientFacts(), P)
    assert e.administrations[0].rate_mg_kg_min is None
    codes = {n.code for n in e.administrations[0].notes}
    assert "rate-concentration-unknown" in codes
    assert "rate-unknown" not in codes


@pytest.mark.parametrize("field", ["rate_mg_per_kg_per_h", "rate_ml_per_kg_per_h"])
def test_a_zero_rate_per_kg_is_excluded_with_a_note(field: str) -> None:
    # clinical spec §4 (implementation decisions): zero or negative rates are excluded with a note
    a = _admin(0, dose_g=D(35), concentration_mg_per_ml=D(100), **{field: D(0)})
    e = compute_exposure([a], [_weight("70")], [], PatientFacts(), P)
    assert e.administrations[0].rate_mg_kg_min is None
    assert "rate-implausible" in {n.code for n in e.administrations[0].notes}
