"""TIS against clinical spec §2 and §8: worked examples, every band edge, exactness, partials."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from fhirtis.clinical.facts import Instrument, Measure
from fhirtis.clinical.policy import (
    EnzymeChange,
    EnzymeNormalBaseline,
    Policy,
    Population,
)
from fhirtis.clinical.tis import (
    LEVEL_SCORES,
    Category,
    category_for,
    compute_tis,
    level_score,
)
from tests.clinical.helpers import D, av

P = Policy()
ADULT, JUV = Population.ADULT, Population.JUVENILE

A_BASE = av(pga=6, ptga=7, mmt8_150=100, haq="1.5", extramuscular=4, ck=(3000, 200))
A_FOLLOW = av(pga=3, ptga=5, mmt8_150=130, haq="1.2", extramuscular=3, ck=(1200, 200))


def test_worked_example_a_adult_major() -> None:
    r = compute_tis(A_BASE, A_FOLLOW, ADULT, P)
    expected = {
        Measure.PGA: (30, "17.5"),
        Measure.PTGA: (20, "5"),
        Measure.MMT8: (20, "20"),
        Measure.HAQ: (10, "5"),
        Measure.ENZYME: (60, "7.5"),
        Measure.EXTRAMUSCULAR: (10, "7.5"),
    }
    for measure, (pct, score) in expected.items():
        m = r.measure(measure)
        assert m.percent_improvement == Fraction(pct), measure
        assert m.score == D(score), measure
    assert r.tis == D("62.5")
    assert r.category is Category.MAJOR
    assert not r.partial


def test_worked_example_b_none() -> None:
    base = av(pga=5, ptga=5, mmt8_80=60, haq=1, ck=(500, 200), extramuscular=2)
    follow = av(pga="4.5", ptga=5, mmt8_80=62, haq=1, ck=(450, 200), extramuscular=2)
    r = compute_tis(base, follow, ADULT, P)
    assert r.measure(Measure.PGA).percent_improvement == 5
    assert r.measure(Measure.PGA).score == 0
    assert r.measure(Measure.MMT8).percent_improvement == Fraction(5, 2)
    assert r.measure(Measure.MMT8).score == 10
    assert r.measure(Measure.ENZYME).percent_improvement == 10
    assert r.measure(Measure.ENZYME).score == D("2.5")
    assert r.tis == D("12.5")
    assert r.category is Category.NONE


def test_worked_example_c_juvenile_moderate() -> None:
    r = compute_tis(A_BASE, A_FOLLOW, JUV, P)
    assert r.tis == D("62.5")
    assert r.category is Category.MODERATE


def test_worked_example_d_float_trap() -> None:
    # 2.2 - 0.7 in binary floats is 1.5000000000000002 → 15.000000000000002 %: the wrong band.
    assert (2.2 - 0.7) / 10 * 100 > 15
    base = av(pga="2.2", ptga=5, mmt8_150=100, haq=1, ck=(500, 200), extramuscular=2)
    follow = av(pga="0.7", ptga=5, mmt8_150=100, haq=1, ck=(500, 200), extramuscular=2)
    r = compute_tis(base, follow, ADULT, P)
    assert r.measure(Measure.PGA).percent_improvement == 15
    assert r.measure(Measure.PGA).score == D("7.5")
    assert r.tis == D("7.5")
    assert r.category is Category.NONE


def test_worked_example_e_partial_haq_missing() -> None:
    follow = av(pga=3, ptga=5, mmt8_150=130, extramuscular=3, ck=(1200, 200))
    r = compute_tis(A_BASE, follow, ADULT, P)
    assert r.partial
    assert r.tis is None
    assert (r.lower, r.upper) == (D("57.5"), D("67.5"))
    assert r.category is None
    assert r.possible_categories == (Category.MODERATE, Category.MAJOR)
    assert r.missing_measures == (Measure.HAQ,)
    haq = r.measure(Measure.HAQ)
    assert haq.reason is not None and haq.reason.code == "missing-followup"


# --- every band edge of every measure: exactly on the edge, and just above ---------------

EDGES = (5, 15, 25, 40)
MMT_EDGES = (2, 10, 20, 30)


def _pair(key: str, percent: Decimal) -> tuple[str, str]:
    """Baseline and follow-up values giving exactly ``percent`` improvement."""
    if key in {"pga", "ptga", "extramuscular"}:
        return "10", str(D(10) - percent / 10)
    if key == "haq":
        return "3", str(D(3) - percent * 3 / 100)
    if key == "mmt8-150":
        return "0", str(percent * 150 / 100)
    if key == "mmt8-80":
        return "0", str(percent * 80 / 100)
    if key == "ck":
        return "1000", str(D(1000) - percent * 10)
    raise AssertionError(key)


MEASURE_OF = {
    "pga": Measure.PGA,
    "ptga": Measure.PTGA,
    "extramuscular": Measure.EXTRAMUSCULAR,
    "haq": Measure.HAQ,
    "mmt8-150": Measure.MMT8,
    "mmt8-80": Measure.MMT8,
    "ck": Measure.ENZYME,
}

EDGE_CASES = [
    (key, edge, i)
    for key in MEASURE_OF
    for i, edge in enumerate(MMT_EDGES if key.startswith("mmt8") else EDGES)
]


@pytest.mark.parametrize(("key", "edge", "band"), EDGE_CASES)
def test_band_edges(key: str, edge: int, band: int) -> None:
    measure = MEASURE_OF[key]
    scores = LEVEL_SCORES[measure]
    for percent, expected in ((D(edge), scores[band]), (D(edge) + D("0.001"), scores[band + 1])):
        b, f = _pair(key, percent)
        kw_key = key.replace("-", "_")
        base = av(**{kw_key: (b, 1) if key == "ck" else b})
        follow = av(**{kw_key: (f, 1) if key == "ck" else f})
        r = compute_tis(base, follow, ADULT, P)
        m = r.measure(measure)
        assert m.percent_improvement == Fraction(percent), (key, percent)
        assert m.score == expected, (key, percent)


def test_level_score_worsening_and_zero() -> None:
    for measure in Measure:
        assert level_score(measure, Fraction(-50)) == 0
        assert level_score(measure, Fraction(0)) == 0
        assert level_score(measure, Fraction(100)) == LEVEL_SCORES[measure][-1]


def test_worsening_scores_zero_and_nothing_is_subtracted() -> None:
    base = av(pga=2, ptga=2, mmt8_80=70, haq=1, extramuscular=2, ck=(300, 200))
    follow = av(pga=9, ptga=9, mmt8_80=10, haq=3, extramuscular=9, ck=(3000, 200))
    r = compute_tis(base, follow, ADULT, P)
    assert r.tis == 0
    assert all(m.score == 0 for m in r.measures)
    assert r.measure(Measure.PGA).percent_improvement == -70


@pytest.mark.parametrize(
    ("tis", "adult", "juvenile"),
    [
        ("0", "none", "none"),
        ("17.5", "none", "none"),
        ("20", "minimal", "none"),
        ("27.5", "minimal", "none"),
        ("30", "minimal", "minimal"),
        ("37.5", "minimal", "minimal"),
        ("40", "moderate", "minimal"),
        ("42.5", "moderate", "minimal"),
        ("45", "moderate", "moderate"),
        ("57.5", "moderate", "moderate"),
        ("60", "major", "moderate"),
        ("67.5", "major", "moderate"),
        ("70", "major", "major"),
        ("100", "major", "major"),
    ],
)
def test_category_thresholds(tis: str, adult: str, juvenile: str) -> None:
    assert category_for(D(tis), ADULT).value == adult
    assert category_for(D(tis), JUV).value == juvenile


def test_partial_with_determinable_category() -> None:
    # Everything improves maximally but PtGA is missing: [90, 100] is major either way.
    base = av(pga=10, mmt8_80=0, haq=3, extramuscular=10, ck=(1000, 100))
    follow = av(pga=0, ptga=0, mmt8_80=80, haq=0, extramuscular=0, ck=(100, 100))
    r = compute_tis(base, follow, ADULT, P)
    assert (r.lower, r.upper) == (D(90), D(100))
    assert r.category is Category.MAJOR
    assert r.tis is None
    assert r.measure(Measure.PTGA).reason is not None
    assert r.measure(Measure.PTGA).reason.code == "missing-baseline"


def test_instrument_mismatch_is_missing() -> None:
    base = av(pga=5, mmt8_80=60)
    follow = av(pga=4, mmt8_150=130)
    r = compute_tis(base, follow, ADULT, P)
    m = r.measure(Measure.MMT8)
    assert m.score is None
    assert m.reason is not None and m.reason.code == "instrument-mismatch"
    vas_likert = compute_tis(av(pga=5), av(pga_likert=2), ADULT, P).measure(Measure.PGA)
    assert vas_likert.reason is not None and vas_likert.reason.code == "instrument-mismatch"


def test_out_of_range_value_is_excluded() -> None:
    r = compute_tis(av(pga=5, mmt8_80=60), av(pga=4, mmt8_80=90), ADULT, P)
    m = r.measure(Measure.MMT8)
    assert m.score is None
    assert m.reason is not None and m.reason.code == "out-of-range"


def test_most_abnormal_enzyme_chosen_at_baseline_and_never_switched() -> None:
    # Aldolase 3×ULN beats CK 2×ULN; at follow-up aldolase is missing → enzyme missing,
    # even though CK is there.
    base = av(pga=5, ck=(400, 200), aldolase=(24, 8))
    follow = av(pga=5, ck=(100, 200))
    r = compute_tis(base, follow, ADULT, P)
    m = r.measure(Measure.ENZYME)
    assert m.instrument is Instrument.ALDOLASE
    assert m.score is None
    assert m.reason is not None and m.reason.code == "missing-followup"


def test_enzyme_tie_order() -> None:
    base = av(ck=(400, 200), ldh=(500, 250), alt=(80, 40))
    follow = av(ck=(200, 200), ldh=(500, 250), alt=(40, 40))
    r = compute_tis(base, follow, ADULT, P)
    assert r.measure(Measure.ENZYME).instrument is Instrument.CK
    reordered = Policy(enzyme_tie_order=("alt", "ldh", "ck", "aldolase", "ast"))
    r2 = compute_tis(base, follow, ADULT, reordered)
    assert r2.measure(Measure.ENZYME).instrument is Instrument.ALT
    assert r2.policy["enzyme_tie_order"] == "alt,ldh,ck,aldolase,ast"


def test_enzyme_normal_baseline_choices() -> None:
    base, follow = av(ck=(150, 200)), av(ck=(75, 200))
    scored = compute_tis(base, follow, ADULT, P).measure(Measure.ENZYME)
    assert scored.percent_improvement == 50
    assert scored.score == D("7.5")
    no_credit = Policy(enzyme_normal_baseline=EnzymeNormalBaseline.NO_CREDIT)
    assert compute_tis(base, follow, ADULT, no_credit).measure(Measure.ENZYME).score == 0


def test_enzyme_above_uln_formula() -> None:
    policy = Policy(enzyme_change=EnzymeChange.ABOVE_ULN)
    # (3000 − 1200) / (3000 − 200) = 64.28… % → > 40 → 7.5; and (1000−950)/(1000−200)=6.25 %
    r = compute_tis(av(ck=(3000, 200)), av(ck=(1200, 200)), ADULT, policy)
    assert r.measure(Measure.ENZYME).percent_improvement == Fraction(1800 * 100, 2800)
    r2 = compute_tis(av(ck=(1000, 200)), av(ck=(950, 200)), ADULT, policy)
    assert r2.measure(Measure.ENZYME).percent_improvement == Fraction(25, 4)
    assert r2.measure(Measure.ENZYME).score == D("2.5")
    normal = compute_tis(av(ck=(150, 200)), av(ck=(100, 200)), ADULT, policy)
    assert normal.measure(Measure.ENZYME).reason is not None
    assert normal.measure(Measure.ENZYME).reason.code == "enzyme-change-undefined"
    assert r.policy["enzyme_change"] == "above_uln"


def test_juvenile_alternatives_cmas_das() -> None:
    base = av(pga=5, ptga=5, cmas=26, chaq="1.5", das=10, ck=(1000, 200))
    follow = av(pga=2, ptga=3, cmas=39, chaq="0.75", das=5, ck=(500, 200))
    r = compute_tis(base, follow, JUV, P)
    assert r.measure(Measure.MMT8).percent_improvement == 25  # 13/52
    assert r.measure(Measure.MMT8).score == D("27.5")
    assert r.measure(Measure.EXTRAMUSCULAR).percent_improvement == 25  # 5/20
    assert r.measure(Measure.EXTRAMUSCULAR).score == D("12.5")
    assert r.measure(Measure.HAQ).percent_improvement == 25
    # 17.5 + 5 (20%) + 27.5 + 7.5 + 7.5 (50%) + 12.5 = 77.5
    assert r.tis == D("77.5")
    assert r.category is Category.MAJOR
