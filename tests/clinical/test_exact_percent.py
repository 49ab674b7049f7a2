"""The exact percent and band look-ups used on the hot path equal the plain Fraction arithmetic
they replace (issue 13: no binary floats, band edges exact)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.decimals import percent_of
from fhirtis.clinical.facts import Measure
from fhirtis.clinical.tis import LEVEL_SCORES, band_edges, level_score

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
