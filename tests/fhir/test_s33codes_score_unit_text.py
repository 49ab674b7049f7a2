"""The unit text "score" on a score (clinical spec §6: MMT-8, HAQ-DI, CHAQ and CMAS come as
``valueQuantity`` with unit ``{score}``; §4 "units as EHRs write them": when only ``unit`` text
is given, common unambiguous spellings are accepted through one documented alias table).

Flowsheets and EHR exports write the unit of a score as the word, without braces and without a
UCUM code (``{"value": 110, "unit": "score"}``, "points"); ``{score}`` is the UCUM annotation
of the unit 1. Such a value was excluded ("unit 'score' is unknown or cannot convert to '1'"):
the MMT-8 or HAQ missing and the TIS partial. The instrument is fixed by the Observation's code,
never by its unit, and a score converts to no length: the same words on a VAS measure (cm or mm)
are still refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.clinical.facts import Measure
from fhirtis.fhir.units import unit_from_text
from fhirtis.pipeline.offline import Options, PatientResult, evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.builders import SCT, bundle, condition, obs, patient, visit

Json = dict[str, Any]
SPELLINGS = ["score", "scores", "Score", "SCORE", " score ", "points", "point", "Points"]


@pytest.mark.parametrize("text", SPELLINGS)
def test_score_spelled_as_a_word_is_the_annotation_unit(text: str) -> None:
    assert unit_from_text(text) == "{score}"


def _text_only(r: Json, text: str) -> Json:
    r["valueQuantity"] = {"value": r["valueQuantity"]["value"], "unit": text}
    return r


def _evaluate(*resources: Json) -> PatientResult:
    b = bundle(
        patient(birth="1970-03-01"),
        condition("dm", SCT, "396230008", "2020-01-01"),
        *resources,
    )
    options = Options(baseline_day=date(2024, 1, 1))
    return evaluate_bundle_bytes(json.dumps(b).encode(), "s33codes.json", Settings(), options)


@pytest.mark.parametrize("text", SPELLINGS)
def test_mmt8_and_haq_with_score_as_unit_text_are_read(text: str) -> None:
    """Worked example A (§8) with the MMT-8 and HAQ-DI units sent as text only: TIS 62.5."""
    b0 = visit(0, "2024-01-01", 6, 7, 100, 1.5, 4, 3000)
    f0 = visit(1, "2024-03-01", 3, 5, 130, 1.2, 3, 1200)
    for rows in (b0, f0):
        rows[2] = _text_only(rows[2], text)  # mmt8-150
        rows[3] = _text_only(rows[3], text)  # haq-di
    result = _evaluate(*b0, *f0)
    assert result.issues == []
    mmt = sorted(m.value for m in result.data.measures if m.measure is Measure.MMT8)
    haq = sorted(m.value for m in result.data.measures if m.measure is Measure.HAQ)
    assert (mmt, haq) == ([Decimal(100), Decimal(130)], [Decimal("1.2"), Decimal("1.5")])
    (followup,) = result.evaluation.course.followups
    assert followup.tis.lower == followup.tis.upper == Decimal("62.5")


@pytest.mark.parametrize("text", ["score", "points"])
@pytest.mark.parametrize("vas", ["pga", "ptga", "extramuscular"])
@pytest.mark.parametrize(("code", "value"), [("cmas", 40), ("chaq", 1.25), ("mmt8-80", 70)])
def test_a_score_in_score_or_points_is_read_and_a_vas_in_them_is_still_refused(
    code: str, value: Any, vas: str, text: str
) -> None:
    """A VAS is a length (cm or mm): a value "in points" cannot be placed on it (a 0-10
    numeric rating is another instrument), so it is excluded, saying why, as before."""
    score = _text_only(obs("s0", code, value, "{score}", "2024-01-01"), text)
    length = _text_only(obs("v0", vas, 6, "cm", "2024-01-01"), text)
    result = _evaluate(score, length)
    assert [(m.source, m.value) for m in result.data.measures] == [
        ("Observation/s0", Decimal(str(value)))
    ]
    (issue,) = result.issues
    assert (issue.severity, issue.resource) == ("error", "Observation/v0")
    assert "cannot convert to 'cm'" in issue.diagnostics
