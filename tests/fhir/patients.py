"""A realistic ProDERM-like patient as a FHIR Bundle, for derive/plan/pipeline tests."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.fhir.builders import (
    ICD,
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
    visit,
)

Json = dict[str, Any]
START = date(2024, 1, 8)


def _day(offset: int) -> str:
    return (START + timedelta(days=offset)).isoformat()


def responder(
    *,
    dvt_after_cycle: int | None = None,
    fast_admin: bool = False,
    missing_haq_week: int | None = None,
    hypertension: bool = False,
) -> Json:
    """Adult, 70 kg, 10% product, 4 cycles of 4 × 35 g at 150 mL/h (3.57 mg/kg/min), visits at
    weeks 0 (baseline, the day before cycle 1), 4, 8, 12."""
    res: list[Json] = [
        patient(),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", _day(-2), system=LOINC),
    ]
    values = [
        (6, 7, 100, 1.5, 4, 3000),
        (5, 6, 110, 1.4, 4, 2000),
        (4, 5, 120, 1.3, 3, 1500),
        (3, 5, 130, 1.2, 3, 1200),
    ]
    for i, v in enumerate(values):
        rows = visit(i, _day(28 * i - 1), *v)
        if missing_haq_week == i * 4:
            rows = [r for r in rows if not r["id"].startswith("haq")]
        res.extend(rows)
    for c in range(4):
        for k in range(4):
            day = _day(28 * c + k)
            rate = qty(300 if (fast_admin and c == 1 and k == 0) else 150, "mL/h")
            res.append(
                administration(
                    f"ma{c}{k}",
                    f"{day}T09:00:00+01:00",
                    f"{day}T11:20:00+01:00",
                    dose=qty(350, "mL"),
                    rate=rate,
                )
            )
    if dvt_after_cycle is not None:
        onset = _day(28 * (dvt_after_cycle - 1) + 3 + 5)
        res.append(condition("dvt", SCT, "128053003", f"{onset}T10:00:00Z"))
    if hypertension:
        res.append(condition("htn", ICD, "I10", "2015-01-01"))
    return bundle(*res)
