"""JSON output of results that hold Decimals.

An integral Decimal is written as a JSON integer; any other as the shortest float that reads back
to the same decimal text (Python's float repr), which holds for every value fhirtis reports
(scores are multiples of 2.5, percents are rounded to 4 places, doses to a few places).
Arithmetic never goes through these floats: they are made only at the moment of writing.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def _number(o: object) -> int | float:
    """``json``'s ``default``: a Decimal as its JSON number (called by the encoder for each
    Decimal it meets, so dicts and lists are walked by the C encoder, not by Python). A value
    that is not finite is refused, as ``allow_nan=False`` refuses a float one; any other type is
    refused as ``json`` refuses it."""
    if isinstance(o, Decimal):
        if not o.is_finite():
            raise ValueError(f"Out of range Decimal value not JSON compliant: {o}")
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise with Decimals as JSON numbers."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, default=_number)
