"""The shortcuts of the s26 compute work give what the general paths give."""

from __future__ import annotations

import itertools
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.decimals import beside, quantize
from fhirtis.clinical.deterioration import _or


def _beside_general(value: Decimal, limit: Decimal, places: int = 4) -> Decimal:
    shown = quantize(value, places, ROUND_HALF_EVEN)
    if shown != limit or value == limit:
        return shown
    return quantize(value, places, ROUND_UP if value > limit else ROUND_DOWN)


@given(
    st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("1e12"), places=7),
    st.sampled_from([Decimal(4), Decimal("3.3"), Decimal("0.0001"), Decimal(10)]),
)
def test_beside_is_the_general_rounding(value: Decimal, limit: Decimal) -> None:
    assert str(beside(value, limit)) == str(_beside_general(value, limit))
    near = limit + Decimal("0.00004")
    assert str(beside(near, limit)) == str(_beside_general(near, limit))


def test_or_is_three_valued_any() -> None:
    def general(items: list[bool | None]) -> bool | None:
        if any(v is True for v in items):
            return True
        if all(v is False for v in items):
            return False
        return None

    for n in range(4):
        for values in itertools.product((True, False, None), repeat=n):
            assert _or(values) is general(list(values))
