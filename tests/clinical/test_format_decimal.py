"""``format_decimal``'s fast path (issue 13, one core) gives what the general path gives;
``format_beside`` tells a value from the limit it is compared with."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fhirtis.clinical.decimals import (
    _format_decimal_general,
    beside,
    beside_any,
    format_beside,
    format_decimal,
    quantize,
)


@given(st.integers(-(10**40), 10**40), st.integers(-45, 30))
@example(1, -1)  # 0.1
@example(125, -1)  # 12.5
@example(5, -3)  # 0.005: half-even to 0.00
@example(15, -3)  # 0.015: half-even to 0.02
@example(0, -7)  # 0E-7
@example(0, 3)  # 0E+3
@example(15, 2)  # 1.5E+3
@example(10**25 - 1, -3)  # adjusted 21, 25 digits
@example(10**27 - 1, -2)  # adjusted 24: the fast path's last exponent, 27 digits to 2 places
@example(10**28 - 1, -3)  # adjusted 24, 28 digits rounded to 27 (carry: 10^25)
@example(10**28 - 1, -2)  # adjusted 25: the general path
@example(10**30 + 7, -5)  # more than 28 digits
@example(-(10**27) + 1, -2)
def test_format_decimal_is_the_general_path(coefficient: int, exponent: int) -> None:
    value = Decimal(f"{coefficient}E{exponent}")  # exact (scaleb would round to 28 digits)
    assert format_decimal(value) == _format_decimal_general(value)
    negative_zero = Decimal(f"-0E{exponent}")
    assert format_decimal(negative_zero) == _format_decimal_general(negative_zero)


def test_format_decimal_of_values_outside_the_fast_path() -> None:
    for text, shown in (
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("NaN", "NaN"),
        ("1E+30", "1000000000000000000000000000000"),
        ("123456789012345678901234567.891", "123456789012345678901234567.89"),
    ):
        assert format_decimal(Decimal(text)) == shown == _format_decimal_general(Decimal(text))
    assert format_decimal(Decimal("0.0833333333333333333333333333")) == "0.08"
    assert format_decimal(Decimal("2.50")) == "2.5"


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        ("4", "4", "4"),
        ("4.001", "4", "4.001"),
        ("4.00001", "4", "4.0001"),  # up, away from the limit
        ("3.999", "4", "3.999"),
        ("3.99999", "4", "3.9999"),  # down, away from the limit
        ("3.2", "3.3", "3.2"),  # 2 places tell them apart
        ("3.304", "3.3", "3.304"),
        # as the value written beside it (beside: half-even unless that shows the limit), so
        # that an Observation's value and its note agree: they read 1.7999 and 1.7998
        ("1.79989", "1.8", "1.7999"),
        ("4.00404", "4", "4.004"),
        ("4.00405", "4", "4.004"),  # half-even
    ],
)
def test_format_beside_never_shows_a_value_equal_to_a_limit_it_differs_from(
    value: str, limit: str, shown: str
) -> None:
    assert format_beside(Decimal(value), Decimal(limit)) == shown


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100), places=8),
    st.sampled_from([Decimal(4), Decimal("3.3"), Decimal("2.5")]),
)
@example(Decimal("4.00004"), Decimal(4))
@example(Decimal("3.29996"), Decimal("3.3"))
def test_a_value_written_beside_a_limit_is_equal_to_it_only_when_it_is(
    value: Decimal, limit: Decimal
) -> None:
    """:func:`beside`: 4 places; a value that differs from the limit is never written equal to
    it, and it is within one unit of the 4th place of the value."""
    written = beside(value, limit)
    assert (written == limit) is (value == limit)
    assert abs(written - value) <= Decimal("0.0001")
    assert written.as_tuple().exponent >= -4


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("4.00004", "4.0001"),  # beside 4, up
        ("3.99996", "3.9999"),  # beside 4, down
        ("3.30004", "3.3001"),  # beside 3.3
        ("4", "4"),  # equal to a limit: as it is
        ("2.54321", "2.5432"),  # near no limit: half-even
        ("4.00005", "4.0001"),  # half-even would give 4.0000
    ],
)
def test_beside_any_keeps_a_value_off_every_limit(value: str, shown: str) -> None:
    assert beside_any(Decimal(value), (Decimal(4), Decimal("3.3"))) == Decimal(shown)


@given(st.integers(-(10**30), 10**30), st.integers(-30, 10))
@example(400004, -5)  # 4.00004
@example(10**25, 0)  # beyond the fast path
def test_beside_any_fast_path_is_the_general_one(coefficient: int, exponent: int) -> None:
    """``beside_any``'s one quantize in the shared context (values below 10^20) gives what the
    general ``quantize`` gives, beside the limits or not."""
    value = Decimal(coefficient).scaleb(exponent)
    limits = (Decimal(4), Decimal("3.3"), quantize(value, 4, ROUND_UP))  # one it rounds onto
    shown = quantize(value, 4, ROUND_HALF_EVEN)
    expected = next((beside(value, lim) for lim in limits if shown == lim), shown)
    assert beside_any(value, limits) == expected
