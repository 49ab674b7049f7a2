"""VAS and height unit *text* spelled out (clinical spec §1: the global activity VAS is recorded
in "0–10 cm (0–100 mm → ÷10)", §6: ``valueQuantity`` in ``cm`` or ``mm``; §4 "units as EHRs
write them": when only ``unit`` text is given, common unambiguous spellings are accepted through
one documented alias table).

The alias table read "centimeter(s)" but neither the British "centimetre(s)" (though it reads
"millilitre(s)") nor any spelling of the millimetre, the VAS's other unit: a PGA of "60
millimeters" sent without a UCUM code was excluded ("unit 'millimeters' is unknown"), the TIS
became partial, and a height of "170 centimetres" was lost (no ideal body weight). Found by the
s32 code/unit audit, end to end from FHIR Bundles (tests/fhir/builders.py shapes)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.facts import Measure
from fhirtis.fhir.units import unit_from_text
from fhirtis.pipeline.offline import Options, evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, SCT, bundle, condition, obs, patient, visit

Json = dict[str, Any]


@pytest.mark.parametrize(
    ("text", "ucum"),
    [
        ("millimeter", "mm"),
        ("millimeters", "mm"),
        ("millimetre", "mm"),
        ("Millimetres", "mm"),
        ("centimetre", "cm"),
        ("centimetres", "cm"),
    ],
)
def test_length_unit_names_written_out_are_read(text: str, ucum: str) -> None:
    assert unit_from_text(text) == ucum


def _text_only(r: Json, text: str) -> Json:
    r["valueQuantity"] = {"value": r["valueQuantity"]["value"], "unit": text}
    return r


def _evaluate(*resources: Json) -> Any:
    b = bundle(
        patient(birth="1970-03-01"),
        condition("dm", SCT, "396230008", "2020-01-01"),
        *resources,
    )
    options = Options(baseline_day=date(2024, 1, 1))
    return evaluate_bundle_bytes(json.dumps(b).encode(), "s32codes.json", Settings(), options)


@pytest.mark.parametrize(
    ("text", "baseline", "follow_up"),
    [
        ("millimeters", 60, 30),
        ("millimetre", 60, 30),
        ("centimetre", 6, 3),
        ("centimetres", 6, 3),
    ],
)
def test_pga_vas_with_spelled_out_unit_text_is_read(
    text: str, baseline: int, follow_up: int
) -> None:
    """Worked example A (§8) with the PGA's unit sent as text only: 6 → 3 cm, TIS 62.5."""
    b0 = visit(0, "2024-01-01", 6, 7, 100, 1.5, 4, 3000)
    f0 = visit(1, "2024-03-01", 3, 5, 130, 1.2, 3, 1200)
    b0[0] = _text_only(obs("pga0", "pga", baseline, "cm", "2024-01-01"), text)
    f0[0] = _text_only(obs("pga1", "pga", follow_up, "cm", "2024-03-01"), text)
    result = _evaluate(*b0, *f0)
    assert result.issues == []
    pgas = sorted(m.value for m in result.data.measures if m.measure is Measure.PGA)
    assert pgas == [Decimal(3), Decimal(6)]
    (followup,) = result.evaluation.course.followups
    assert followup.tis.lower == followup.tis.upper == Decimal("62.5")


def test_height_with_spelled_out_unit_text_is_read() -> None:
    height = obs("h0", "8302-2", 170, "cm", "2024-01-01", system=LOINC)
    result = _evaluate(_text_only(height, "centimetres"))
    assert result.issues == []
    assert [h.cm for h in result.data.heights] == [Decimal(170)]
