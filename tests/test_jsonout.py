"""``fhirtis.pipeline.jsonout.dumps``: Decimals as JSON numbers, everything else as ``json`` writes
it (what every summary, report and CDS response relies on)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.pipeline.jsonout import dumps


def _reference(o: Any) -> Any:
    """The rule spelled out on plain data: integral Decimal → int, other Decimal → float."""
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, dict):
        return {k: _reference(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_reference(v) for v in o]
    return o


RECORD: dict[str, Any] = {
    "tis": Decimal("62.5"),
    "whole": Decimal("40.0"),
    "zero": Decimal("-0"),
    "exponent": Decimal("1E+2"),
    "small": Decimal("0.0001"),
    "percent": Decimal("14.2857"),
    "large": Decimal("123456789.1234"),
    "nested": [{"score": Decimal("7.5"), "pair": (Decimal("1"), Decimal("2.50"))}],
    "text": "Müller ≥ 30 %",
    "none": None,
    "flag": True,
    "count": 3,
    "ratio": 0.25,
}


@pytest.mark.parametrize("indent", [None, 2])
def test_decimals_are_json_numbers_and_the_rest_is_as_json_writes_it(indent: int | None) -> None:
    written = dumps(RECORD, indent=indent)
    assert written == json.dumps(
        _reference(RECORD), indent=indent, ensure_ascii=False, allow_nan=False
    )
    back = json.loads(written)
    assert back["tis"] == 62.5 and back["whole"] == 40 and type(back["whole"]) is int
    assert back["exponent"] == 100 and type(back["exponent"]) is int
    assert back["nested"][0]["pair"] == [1, 2.5]
    assert "Müller" in written  # not escaped


def test_a_value_json_cannot_write_is_refused() -> None:
    with pytest.raises(TypeError, match="date"):
        dumps({"day": date(2024, 1, 1)})
    with pytest.raises(ValueError):
        dumps({"value": Decimal("NaN")})
    with pytest.raises(ValueError):
        dumps({"value": Decimal("Infinity")})
