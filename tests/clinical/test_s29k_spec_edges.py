"""Audit s29k: the band edges of clinical spec §2.2 reached end to end from decimal values as
FHIR sends them ("40.0", "39.99"), on every bounded instrument of §1, plus the enzyme (§2.1),
partial bounds that touch a threshold (§2.3, §2.4) and deterioration edges (§3) that the other
test files reach only through Fractions or whole numbers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from fhirtis.clinical.deterioration import assess_deterioration, is_responder
from fhirtis.clinical.facts import Measure
from fhirtis.clinical.policy import (
    EnzymeChange,
    EnzymeNormalBaseline,
    Policy,
    Population,
    WorseningBasis,
)
from fhirtis.clinical.tis import Category, compute_tis
from tests.clinical.helpers import av

P = Policy()
ADULT, JUV = Population.ADULT, Population.JUVENILE
# A complete adult assessment that does not change (every measure scores 0) unless overridden.
STILL: dict[str, object] = dict(
    pga="5.0", ptga="5.0", mmt8_80="40", haq="1.500", ck=("1000.0", "200"), extramuscular="5.0"
)

# (av key, measure, baseline, follow-up, score): the baseline is at the worse end of the scale
# and the follow-up sits on a band edge (§2.2: upper edge included) or 0.01 (0.001 for HAQ)
# past it, written with the trailing digits a FHIR valueQuantity carries.
BOUNDED = [
    # PGA, VAS 0–10 cm, lower is better: 10 → 9.5 is 5 %, 8.5 is 15 %, 7.5 is 25 %, 6.0 is 40 %.
    ("pga", Measure.PGA, "10.0", "9.50", "0"),
    ("pga", Measure.PGA, "10.0", "9.49", "7.5"),
    ("pga", Measure.PGA, "10.0", "8.50", "7.5"),
    ("pga", Measure.PGA, "10.0", "8.49", "15"),
    ("pga", Measure.PGA, "10.0", "7.50", "15"),
    ("pga", Measure.PGA, "10.0", "7.49", "17.5"),
    ("pga", Measure.PGA, "10.0", "6.00", "17.5"),
    ("pga", Measure.PGA, "10.0", "5.99", "20"),
    ("ptga", Measure.PTGA, "10.0", "9.50", "0"),
    ("ptga", Measure.PTGA, "10.0", "9.49", "2.5"),
    ("ptga", Measure.PTGA, "10.0", "8.49", "5"),
    ("ptga", Measure.PTGA, "10.0", "7.49", "7.5"),
    ("ptga", Measure.PTGA, "10.0", "6.00", "7.5"),
    ("ptga", Measure.PTGA, "10.0", "5.99", "10"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "9.50", "0"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "9.49", "7.5"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "8.49", "12.5"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "7.49", "15"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "6.00", "15"),
    ("extramuscular", Measure.EXTRAMUSCULAR, "10.0", "5.99", "20"),
    # HAQ-DI 0–3: 0.15 is 5 %, 0.45 is 15 %, 0.75 is 25 %, 1.2 is 40 % (the repeated 7.5).
    ("haq", Measure.HAQ, "3.000", "2.850", "0"),
    ("haq", Measure.HAQ, "3.000", "2.849", "5"),
    ("haq", Measure.HAQ, "3.000", "2.550", "5"),
    ("haq", Measure.HAQ, "3.000", "2.549", "7.5"),
    ("haq", Measure.HAQ, "3.000", "2.249", "7.5"),
    ("haq", Measure.HAQ, "3.000", "1.800", "7.5"),
    ("haq", Measure.HAQ, "3.000", "1.799", "10"),
    ("chaq", Measure.HAQ, "3.000", "2.850", "0"),
    ("chaq", Measure.HAQ, "3.000", "2.849", "5"),
    # PGA on the Likert 0–4 scale: 0.2 is 5 %.
    ("pga_likert", Measure.PGA, "4", "3.80", "0"),
    ("pga_likert", Measure.PGA, "4", "3.79", "7.5"),
    # DAS 0–20 for extramuscular (lower is better): 1.0 is 5 %, 8.0 is 40 %.
    ("das", Measure.EXTRAMUSCULAR, "20", "19.0", "0"),
    ("das", Measure.EXTRAMUSCULAR, "20", "18.99", "7.5"),
    ("das", Measure.EXTRAMUSCULAR, "20", "12.0", "15"),
    ("das", Measure.EXTRAMUSCULAR, "20", "11.99", "20"),
    # MMT-8 0–80, higher is better: 1.6 is 2 %, 8 is 10 %, 16 is 20 %, 24 is 30 %.
    ("mmt8_80", Measure.MMT8, "0", "1.60", "0"),
    ("mmt8_80", Measure.MMT8, "0", "1.61", "10"),
    ("mmt8_80", Measure.MMT8, "0", "8.0", "10"),
    ("mmt8_80", Measure.MMT8, "0", "8.01", "20"),
    ("mmt8_80", Measure.MMT8, "0", "16.0", "20"),
    ("mmt8_80", Measure.MMT8, "0", "16.01", "27.5"),
    ("mmt8_80", Measure.MMT8, "0", "24.0", "27.5"),
    ("mmt8_80", Measure.MMT8, "0", "24.01", "32.5"),
    # MMT-8 0–150: 3 is 2 %, 15 is 10 %, 30 is 20 %, 45 is 30 %.
    ("mmt8_150", Measure.MMT8, "100", "103.0", "0"),
    ("mmt8_150", Measure.MMT8, "100", "103.01", "10"),
    ("mmt8_150", Measure.MMT8, "100", "115.0", "10"),
    ("mmt8_150", Measure.MMT8, "100", "115.01", "20"),
    ("mmt8_150", Measure.MMT8, "100", "130.0", "20"),
    ("mmt8_150", Measure.MMT8, "100", "130.01", "27.5"),
    ("mmt8_150", Measure.MMT8, "100", "145.0", "27.5"),
    ("mmt8_150", Measure.MMT8, "100", "145.01", "32.5"),
    # CMAS 0–52 (juvenile alternative, higher is better): 1.04 is 2 %, 15.6 is 30 %.
    ("cmas", Measure.MMT8, "0", "1.04", "0"),
    ("cmas", Measure.MMT8, "0", "1.05", "10"),
    ("cmas", Measure.MMT8, "0", "5.20", "10"),
    ("cmas", Measure.MMT8, "0", "5.21", "20"),
    ("cmas", Measure.MMT8, "0", "15.60", "27.5"),
    ("cmas", Measure.MMT8, "0", "15.61", "32.5"),
    # Worse in the better direction scores 0, never a negative score (§2.1).
    ("mmt8_150", Measure.MMT8, "100", "99.99", "0"),
    ("pga", Measure.PGA, "0.0", "10.0", "0"),
]


def _replace(values: dict[str, object], key: str, value: object) -> dict[str, object]:
    out = dict(values)
    if key.startswith("mmt8") or key == "cmas":
        out.pop("mmt8_80")
    elif key == "chaq":
        out.pop("haq")
    elif key == "pga_likert":
        out.pop("pga")
    elif key == "das":
        out.pop("extramuscular")
    out[key] = value
    return out


@pytest.mark.parametrize(("key", "measure", "baseline", "followup", "score"), BOUNDED)
def test_bounded_band_edges_from_fhir_decimals(
    key: str, measure: Measure, baseline: str, followup: str, score: str
) -> None:
    base = av(**_replace(STILL, key, baseline))  # type: ignore[arg-type]
    follow = av(**_replace(STILL, key, followup))  # type: ignore[arg-type]
    r = compute_tis(base, follow, ADULT, P)
    assert not r.partial
    assert r.measure(measure).score == Decimal(score)
    assert r.tis == Decimal(score)  # every other measure unchanged: 0


# CK 1000.0 (ULN 200): 950 is 5 %, 850 is 15 %, 750 is 25 %, 600 is 40 % (relative, §2.1).
@pytest.mark.parametrize(
    ("followup", "score"),
    [
        ("950.00", "0"),
        ("949.99", "2.5"),
        ("850.00", "2.5"),
        ("849.99", "5"),
        ("750.00", "5"),
        ("749.99", "7.5"),
        ("600.00", "7.5"),
        ("599.99", "7.5"),
        ("1000.01", "0"),
    ],
)
def test_enzyme_band_edges_from_fhir_decimals(followup: str, score: str) -> None:
    follow = av(**{**STILL, "ck": (followup, "200")})  # type: ignore[arg-type]
    r = compute_tis(av(**STILL), follow, ADULT, P)  # type: ignore[arg-type]
    assert r.measure(Measure.ENZYME).score == Decimal(score)


@pytest.mark.parametrize(
    ("baseline", "uln", "normal"),
    [("200.0", "200", True), ("200", "200.00", True), ("200.01", "200", False)],
)
def test_enzyme_normal_at_baseline_is_at_or_below_the_uln(
    baseline: str, uln: str, normal: bool
) -> None:
    """§2.1: "normal at baseline (≤ ULN)": equal, however written, is normal; 0.01 above is not."""
    base = av(**{**STILL, "ck": (baseline, uln)})  # type: ignore[arg-type]
    follow = av(**{**STILL, "ck": ("100", uln)})  # type: ignore[arg-type]
    no_credit = Policy(enzyme_normal_baseline=EnzymeNormalBaseline.NO_CREDIT)
    assert compute_tis(base, follow, ADULT, P).measure(Measure.ENZYME).score == Decimal("7.5")
    scored = compute_tis(base, follow, ADULT, no_credit).measure(Measure.ENZYME)
    assert scored.score == (Decimal(0) if normal else Decimal("7.5"))
    above = compute_tis(base, follow, ADULT, Policy(enzyme_change=EnzymeChange.ABOVE_ULN))
    enzyme = above.measure(Measure.ENZYME)
    if normal:
        assert enzyme.missing and enzyme.reason is not None
        assert enzyme.reason.code == "enzyme-change-undefined"
    else:
        assert enzyme.score == Decimal("7.5")  # (200.01 − 100) / 0.01: far above 40 %


def test_partial_upper_bound_exactly_on_a_threshold() -> None:
    """§2.3/§2.4: an upper bound equal to a threshold reaches it (≥), so the category is open
    (worked example A with PGA 6 → 4 and no enzyme at follow-up)."""
    a_base = dict(pga=6, ptga=7, mmt8_150=100, haq="1.5", ck=(3000, 200), extramuscular=4)
    a_follow = dict(pga=3, ptga=5, mmt8_150=130, haq="1.2", ck=(1200, 200), extramuscular=3)
    # PGA 6 → 4 (20 %: 15) instead of 17.5, and no enzyme at follow-up: lower 52.5, upper 60.
    follow = {**a_follow, "pga": 4}
    del follow["ck"]
    r = compute_tis(av(**a_base), av(**follow), ADULT, P)  # type: ignore[arg-type]
    assert (r.lower, r.upper) == (Decimal("52.5"), Decimal("60"))
    assert r.category is None
    assert r.possible_categories == (Category.MODERATE, Category.MAJOR)
    assert r.tis is None
    # The juvenile thresholds put both ends (52.5, 60) in moderate (≥ 45, < 70): a category.
    j = compute_tis(av(**a_base), av(**follow), JUV, P)  # type: ignore[arg-type]
    assert j.category is Category.MODERATE and j.tis is None


def test_responder_when_the_partial_upper_bound_is_exactly_the_minimal_threshold() -> None:
    """§3: responder needs TIS ≥ minimal; an upper bound of exactly 20 leaves it open."""
    base = dict(pga="5.0", ptga="5.0", mmt8_80=40, haq="1.5", extramuscular="5.0")
    # PGA 5 → 3.5 (15 %: 7.5), MMT 40 → 44 (5 %: 10); enzyme missing at both (max 7.5).
    follow = {**base, "pga": "3.5", "mmt8_80": 44}
    r = compute_tis(av(**base), av(**follow), ADULT, P)  # type: ignore[arg-type]
    assert (r.lower, r.upper) == (Decimal("17.5"), Decimal("25"))
    assert is_responder(r, False) is None
    # PtGA 5 → 4.5 (5 %: 0) changes nothing; PtGA 5 → 4.49 (5.1 %: 2.5) makes lower 20.
    r2 = compute_tis(av(**base), av(**{**follow, "ptga": "4.49"}), ADULT, P)  # type: ignore[arg-type]
    assert r2.lower == Decimal(20)
    assert is_responder(r2, False) is True
    assert is_responder(r2, True) is False


DET_BASE: dict[str, object] = dict(
    pga="3.0", ptga="3.0", mmt8_150="100.0", haq="0", extramuscular="3.0"
)


def _det(**changes: object) -> dict[str, bool | None]:
    follow = {**DET_BASE, **changes}
    r = assess_deterioration(
        date(2024, 3, 1),
        av(**DET_BASE).values,  # type: ignore[arg-type]
        av(**follow).values,  # type: ignore[arg-type]
        P,
    )
    return dict(r.clauses)


@pytest.mark.parametrize(
    ("changes", "clauses"),
    [
        # clause 1: PGA +2.00 cm and MMT-8 100 → 80.0 (20 % relative) on the 0–150 scale
        ({"pga": "5.00", "mmt8_150": "80.0"}, (True, False, False)),
        ({"pga": "5.00", "mmt8_150": "80.01"}, (False, False, False)),
        ({"pga": "4.99", "mmt8_150": "80.0"}, (False, False, False)),
        # clause 2 on decimals as sent
        ({"extramuscular": "5.00"}, (False, True, False)),
        ({"extramuscular": "4.99"}, (False, False, False)),
        # clause 3 with a HAQ baseline of 0 (range basis: 0.9 / 3 = 30 %), PtGA 3 → 3.9 (30 %),
        # MMT 100 → 70 (30 %)
        ({"haq": "0.900", "ptga": "3.90", "mmt8_150": "70.0"}, (False, False, True)),
        ({"haq": "0.899", "ptga": "3.90", "mmt8_150": "70.0"}, (False, False, False)),
        ({"haq": "0.900", "ptga": "3.89", "mmt8_150": "70.0"}, (False, False, False)),
    ],
)
def test_deterioration_edges_from_fhir_decimals(
    changes: dict[str, object], clauses: tuple[bool, bool, bool]
) -> None:
    got = _det(**changes)
    assert (got["pga+mmt8"], got["extramuscular"], got["any-3-of-5"]) == clauses


def test_cmas_worsening_by_20_percent_joins_pga_in_clause_1() -> None:
    """§3 clause 1 with the juvenile CMAS in place of MMT-8 (higher is better): 40 → 32 is
    20 % relative, 32.01 is not."""
    base = dict(pga="3.0", ptga="3.0", cmas="40", chaq="1.0", extramuscular="3.0")
    for cmas, expected in (("32", True), ("32.01", False)):
        follow = {**base, "pga": "5.0", "cmas": cmas}
        r = assess_deterioration(
            date(2024, 3, 1),
            av(**base).values,
            av(**follow).values,
            P,
        )
        assert r.clauses["pga+mmt8"] is expected
        assert r.worsening[Measure.MMT8].basis is WorseningBasis.RELATIVE
