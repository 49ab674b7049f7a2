"""The exact percent and band look-ups used on the hot path equal the plain Fraction arithmetic
they replace (issue 13: no binary floats, band edges exact)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirtis.clinical.decimals import percent_of
from fhirtis.clinical.facts import Instrument, Measure, MeasureValue
from fhirtis.clinical.measures import ALLOWED, check_value, enzyme_ratio, spec_for
from fhirtis.clinical.policy import EnzymeChange, EnzymeNormalBaseline, Policy
from fhirtis.clinical.tis import LEVEL_SCORES, band_edges, level_score, score_enzyme
from tests.clinical.helpers import DAY

decimals = st.decimals(
    min_value=Decimal("-1e6"), max_value=Decimal("1e6"), allow_nan=False, allow_infinity=False
)


@given(decimals, decimals.filter(lambda d: d != 0))
def test_percent_of_is_the_exact_fraction(part: Decimal, whole: Decimal) -> None:
    assert percent_of(part, whole) == Fraction(part) * 100 / Fraction(whole)


def test_percent_of_zero_whole_is_an_error() -> None:
    with pytest.raises(ZeroDivisionError):
        percent_of(Decimal(1), Decimal("0.0"))


@pytest.mark.parametrize("measure", list(LEVEL_SCORES))
def test_level_score_at_and_beside_each_edge(measure: Measure) -> None:
    scores = LEVEL_SCORES[measure]
    tiny = Fraction(1, 10**30)
    for i, edge in enumerate(band_edges(measure)):
        assert level_score(measure, edge) == scores[i]  # upper edge included
        assert level_score(measure, edge - tiny) == scores[i]
        assert level_score(measure, edge + tiny) == scores[i + 1]  # lower edge excluded
    assert level_score(measure, Fraction(-50)) == scores[0]


positive = st.decimals(
    min_value=Decimal("0.001"), max_value=Decimal("1e6"), allow_nan=False, allow_infinity=False
)
non_negative = st.decimals(
    min_value=Decimal(0), max_value=Decimal("1e6"), allow_nan=False, allow_infinity=False
)


@given(positive | st.just(Decimal(0)), positive)
def test_enzyme_ratio_is_the_exact_fraction(value: Decimal, uln: Decimal) -> None:
    ratio = enzyme_ratio(_enzyme(value, uln))
    assert ratio == Fraction(value) / Fraction(uln)
    assert (ratio.numerator, ratio.denominator) == (
        Fraction(value) / Fraction(uln)
    ).as_integer_ratio()


def _enzyme(value: Decimal, uln: Decimal | None) -> MeasureValue:
    return MeasureValue(Measure.ENZYME, Instrument.CK, value, DAY, "Observation/ck", uln=uln)


def _fraction_percent(
    b: Decimal, f: Decimal, uln: Decimal | None, policy: Policy
) -> Fraction | None:
    """The enzyme percent improvement as plain Fraction arithmetic (clinical spec §2.1)."""
    fb, ff = Fraction(b), Fraction(f)
    fu = None if uln is None else Fraction(uln)
    if policy.enzyme_normal_baseline is EnzymeNormalBaseline.NO_CREDIT:
        if (fu is not None and fb <= fu) or fb == 0:  # 0 is ≤ every usable ULN
            return (fb - ff) * 100 / fb if fb else Fraction(0)
        if fu is None:  # normal or not cannot be told: missing (session s32)
            return None
    if policy.enzyme_change is EnzymeChange.ABOVE_ULN:
        if fu is None or fb <= fu:
            return None
        return (fb - ff) * 100 / (fb - fu)
    return (fb - ff) * 100 / fb if fb else None


@settings(max_examples=400)
@given(
    non_negative,
    non_negative,
    st.none() | positive,
    st.sampled_from(list(EnzymeChange)),
    st.sampled_from(list(EnzymeNormalBaseline)),
)
def test_score_enzyme_percent_is_the_exact_fraction(
    b: Decimal,
    f: Decimal,
    uln: Decimal | None,
    change: EnzymeChange,
    normal: EnzymeNormalBaseline,
) -> None:
    policy = Policy(enzyme_change=change, enzyme_normal_baseline=normal)
    result = score_enzyme(_enzyme(b, uln), _enzyme(f, uln), policy)
    expected = _fraction_percent(b, f, uln, policy)
    assert result.percent_improvement == expected
    if expected is not None:
        assert result.percent_improvement is not None
        pct = result.percent_improvement
        assert (pct.numerator, pct.denominator) == expected.as_integer_ratio()


def test_every_allowed_instrument_has_its_scale_and_no_other() -> None:
    for measure in Measure:
        for instrument in Instrument:
            if instrument in ALLOWED[measure]:
                spec = spec_for(measure, instrument)
                assert (spec.measure, spec.instrument) == (measure, instrument)
            else:
                with pytest.raises(ValueError, match=f"{instrument.value} does not measure"):
                    spec_for(measure, instrument)
                note = check_value(
                    MeasureValue(measure, instrument, Decimal(1), DAY, "Observation/x")
                )
                assert note is not None and note.code == "wrong-instrument"
