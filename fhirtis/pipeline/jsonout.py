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


def _prepare(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, dict):
        return {k: _prepare(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_prepare(v) for v in o]
    return o


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise with Decimals as JSON numbers."""
    return json.dumps(_prepare(obj), indent=indent, ensure_ascii=False, allow_nan=False)
