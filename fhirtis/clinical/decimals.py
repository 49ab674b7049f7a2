"""Decimal arithmetic shared by the clinical rules: one context, plausibility, display."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Context, Decimal, localcontext
from fractions import Fraction

__all__ = [
    "DECIMAL_CONTEXT",
    "beside",
    "format_beside",
    "format_decimal",
    "is_positive_finite",
    "percent_of",
    "plain",
    "quantize",
]

DECIMAL_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
"""The arithmetic context of the IVIG and thrombosis rules (independent of the caller's)."""


_ZERO = Decimal(0)  # compared with, a Decimal (an int would be converted at every comparison)


def is_positive_finite(value: Decimal | None) -> bool:
    """A quantity that can be real: present, finite and positive."""
    return value is not None and value.is_finite() and value > _ZERO


def percent_of(part: Decimal, whole: Decimal) -> Fraction:
    """``part`` as an exact percent of ``whole``: Fraction(part) × 100 / Fraction(whole), made
    from the two integer ratios with one reduction (ZeroDivisionError when ``whole`` is 0)."""
    pn, pd = part.as_integer_ratio()
    wn, wd = whole.as_integer_ratio()
    return Fraction(pn * 100 * wd, pd * wn)


def plain(value: Decimal) -> str:
    """``value`` without trailing zeros and never in exponent notation ("490", not "4.9E+2")."""
    if not value.is_finite():
        return str(value)
    return f"{value.normalize(Context(prec=max(28, len(value.as_tuple().digits)))):f}"


def quantize(value: Decimal, places: int, rounding: str) -> Decimal:
    """``value`` to ``places`` decimals, with the digits that needs (a huge value, e.g. from a
    weight of 1e300 kg, is never an error)."""
    digits = max(DECIMAL_CONTEXT.prec, value.adjusted() + places + 2)
    with localcontext(Context(prec=digits, rounding=rounding)):
        return value.quantize(Decimal(1).scaleb(-places))


_TWO_PLACES = Decimal("0.01")
_FORMAT_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_FORMAT_FAST_MAX_ADJUSTED = 24
"""Up to this adjusted exponent a value to 2 places has at most 27 digits: no rounding at 28."""


def format_decimal(value: Decimal) -> str:
    """A Decimal for a human message (at most 2 decimals, never in exponent notation); never
    used in arithmetic.

    Fast path (a finite value below 10^25, i.e. every value a message shows): quantize to 2
    places then normalize, both in one 28-digit context made once. It gives what
    :func:`_format_decimal_general` gives: quantizing a value of 2 places or fewer to 2 places
    adds only zeros, which normalizing removes again (``normalize`` depends on the value alone
    when no rounding happens), and the result has at most 27 digits, so neither step rounds
    at 28 (no fresh context is needed for the precision). Checked against the general path by
    the tests."""
    if value.is_finite() and value.adjusted() <= _FORMAT_FAST_MAX_ADJUSTED:
        shown = value.quantize(_TWO_PLACES, ROUND_HALF_EVEN, _FORMAT_CONTEXT)
        return f"{shown.normalize(_FORMAT_CONTEXT):f}"
    return _format_decimal_general(value)


def _half_even(value: Decimal, places: int) -> Decimal:
    """``quantize(value, places, ROUND_HALF_EVEN)``; for the usual 4 places of a finite value
    below 10^20, one quantize in :data:`DECIMAL_CONTEXT` (a value to 4 places then has at most
    24 digits, which its 28 hold: the same result, without a new context)."""
    if places == 4 and value.is_finite() and value.adjusted() < _FOUR_PLACES_FAST_MAX_ADJUSTED:
        return value.quantize(_FOUR_PLACES, context=DECIMAL_CONTEXT)
    return quantize(value, places, ROUND_HALF_EVEN)


_FOUR_PLACES = Decimal("0.0001")
_FOUR_PLACES_FAST_MAX_ADJUSTED = 20


def beside(value: Decimal, limit: Decimal, places: int = 4) -> Decimal:
    """``value`` to ``places`` decimals for writing beside ``limit`` (a rate beside the
    maximum): half-even, unless that would show a value that differs from the limit as equal to
    it (4.00004 beside 4), then rounded away from the limit (4.0001), so that what is written
    never says "4 is above the maximum 4"."""
    shown = _half_even(value, places)
    if shown != limit or value == limit:
        return shown
    rounding = ROUND_UP if value > limit else ROUND_DOWN  # positive values: away from the limit
    return quantize(value, places, rounding)


def beside_any(value: Decimal, limits: Iterable[Decimal], places: int = 4) -> Decimal:
    """:func:`beside` for a value compared with whichever of ``limits`` applied (a cycle's
    maximum rate, beside the maximum with and without a risk factor): ``value`` to ``places``
    decimals, rounded away from a limit it would otherwise show it equal to."""
    shown = _half_even(value, places)
    for limit in limits:
        if shown == limit:
            return beside(value, limit, places)
    return shown


def format_beside(value: Decimal, limit: Decimal) -> str:
    """``value`` for a message that compares it with ``limit`` (a rate beside a maximum): as
    :func:`format_decimal` gives it, or, where 2 places would show a value that differs from
    the limit as equal to it (4.001 beside 4), as :func:`beside` writes it (4 places, away from
    the limit where half-even would show it), so that a message never reads "4 is above the
    maximum 4" and says what the resource beside it holds."""
    shown = format_decimal(value)
    if value == limit or shown != format_decimal(limit):
        return shown
    return plain(beside(value, limit))


def _format_decimal_general(value: Decimal) -> str:
    """:func:`format_decimal` for any value (infinities, NaNs and huge values included)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        return str(value)
    shown = quantize(value, 2, ROUND_HALF_EVEN) if exponent < -2 else value
    return f"{shown.normalize(Context(prec=max(28, len(shown.as_tuple().digits)))):f}"
