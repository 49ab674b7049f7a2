"""Decimal arithmetic shared by the clinical rules: one context, plausibility, display."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

__all__ = ["DECIMAL_CONTEXT", "format_decimal", "is_positive_finite"]

DECIMAL_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
"""The arithmetic context of the IVIG and thrombosis rules (independent of the caller's)."""


def is_positive_finite(value: Decimal | None) -> bool:
    """A quantity that can be real: present, finite and positive."""
    return value is not None and value.is_finite() and value > 0


def format_decimal(value: Decimal) -> str:
    """A Decimal for a human message (at most 2 decimals); never used in arithmetic."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        return str(value)
    with localcontext(DECIMAL_CONTEXT):
        shown = value.quantize(Decimal("0.01")) if exponent < -2 else value
        return f"{shown.normalize():f}"
