"""enzyme_normal_baseline = no_credit when the baseline enzyme has no ULN (clinical spec §2.1, §1).

Found by a differential oracle (session s32). Under ``no_credit`` an enzyme normal at baseline
(≤ ULN) scores 0, otherwise its relative change is scored. Without a ULN (a lone enzyme is chosen
even without one, §1) nobody can tell which: CK 150 → 50 U/L scores 0 if the laboratory's ULN
is 170 and 7.5 if it is 140. The spec's rule "where data does not allow a rule to run, the
result says so" makes the enzyme missing (the TIS partial, scoring 0 to 7.5), as fhirtis already
does for ``enzyme_change = above_uln`` without a ULN; it used to score 7.5 and report a plain TIS.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from fhirtis.clinical.facts import Measure
from fhirtis.clinical.policy import EnzymeNormalBaseline, Policy, Population
from fhirtis.clinical.tis import compute_tis
from fhirtis.pipeline.calculator import calculate, parse_input
from tests.clinical.helpers import av

NO_CREDIT = Policy(enzyme_normal_baseline=EnzymeNormalBaseline.NO_CREDIT)
ADULT = Population.ADULT
STILL = {"pga": 6, "ptga": 7, "mmt8_150": 100, "haq": "1.5", "extramuscular": 4}


def test_no_credit_without_uln_is_missing_not_scored() -> None:
    # CK 150 → 50 U/L, no ULN: (150 − 50) / 150 = 66.7 % would score 7.5, but the enzyme may
    # have been normal at baseline (any ULN ≥ 150), which no_credit scores 0.
    base = av(**STILL, ck=(150, None))  # type: ignore[arg-type]
    follow = av(**STILL, ck=(50, None))  # type: ignore[arg-type]
    result = compute_tis(base, follow, ADULT, NO_CREDIT)
    enzyme = result.measure(Measure.ENZYME)
    assert enzyme.missing
    assert enzyme.reason is not None and enzyme.reason.code == "enzyme-uln-unknown"
    assert "no_credit" in enzyme.reason.message
    assert result.partial and result.tis is None
    # the other five measures are unchanged (0 each): the TIS is [0, 7.5], never a plain 7.5
    assert (result.lower, result.upper) == (Decimal(0), Decimal("7.5"))


def test_no_credit_without_uln_baseline_zero_is_normal_whatever_the_uln() -> None:
    # a baseline of 0 U/L is at or below every usable ULN (> 0): no_credit scores it 0
    base = av(**STILL, ck=(0, None))  # type: ignore[arg-type]
    follow = av(**STILL, ck=(0, None))  # type: ignore[arg-type]
    enzyme = compute_tis(base, follow, ADULT, NO_CREDIT).measure(Measure.ENZYME)
    assert enzyme.score == 0 and enzyme.percent_improvement == Fraction(0)


def test_no_credit_with_uln_unchanged() -> None:
    # with a ULN the rule runs as before: 150 ≤ 200 → 0; 300 > 200 → (300 − 50) / 300 = 83 % → 7.5
    normal = compute_tis(av(ck=(150, 200)), av(ck=(50, 200)), ADULT, NO_CREDIT)
    assert normal.measure(Measure.ENZYME).score == 0
    high = compute_tis(av(ck=(300, 200)), av(ck=(50, 200)), ADULT, NO_CREDIT)
    assert high.measure(Measure.ENZYME).score == Decimal("7.5")


def test_default_policy_without_uln_still_scores() -> None:
    # enzyme_normal_baseline = score (the default) needs no ULN: 66.7 % → 7.5 (§1)
    enzyme = compute_tis(av(ck=(150, None)), av(ck=(50, None)), ADULT, Policy())
    assert enzyme.measure(Measure.ENZYME).score == Decimal("7.5")


def test_calculator_no_credit_without_uln_is_partial() -> None:
    doc = parse_input(
        '{"population": "adult",'
        ' "baseline": {"pga": 6, "ptga": 7, "mmt8": 100, "haq": 1.5, "extramuscular": 4,'
        '              "enzyme": {"name": "ck", "value": 150}},'
        ' "followup": {"pga": 3, "ptga": 5, "mmt8": 130, "haq": 1.2, "extramuscular": 3,'
        '              "enzyme": {"name": "ck", "value": 50}},'
        ' "mmt8_max": 150, "policy": {"enzyme_normal_baseline": "no_credit"}}'
    )
    result = calculate(doc)
    # worked example A's five other scores: 17.5 + 5 + 20 + 5 + 7.5 = 55; enzyme 0 to 7.5
    assert result.tis is None
    assert (result.lower, result.upper) == (Decimal(55), Decimal("62.5"))
    assert result.category is None  # moderate or major
