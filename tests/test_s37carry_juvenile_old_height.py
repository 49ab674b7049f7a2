"""A height measured long before the weight it is paired with, in a patient under 18 then.

DOMAIN.md sets no age limit for a height (§1 plausibility, §4 ideal/adjusted dosing weight,
§5.1 obesity from a BMI), and none is added: the height is used. But a child grows: a 2019
height beside a 2024 weight in a 10-year-old makes a BMI (and a Devine ideal weight) of a body
that no longer exists, and the clinician is told nothing of the height's age. fhirtis now says
so, in the notes it uses for other data-quality warnings (``stale-height-juvenile``, a warning),
wherever such a height is used: the BMI of the obesity factor (its detail in the tee-risk Flag
and the summary's notes, the printout) and the ideal/adjusted dosing weight (the cycle dose
Observation's notes, the CDS card's dosing weight). Threshold: more than 365 days before the
weight (or, on the ideal basis, which uses no weight, before the cycle start); under
``juvenile_onset_age`` (18) on that day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from fhirtis.api.cds_hooks.cards import _weight_text
from fhirtis.cli import app
from fhirtis.clinical.facts import BodyHeight, BodyWeight, PatientFacts, Sex
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.weight import dosing_weight
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, obs
from tests.fhir.patients import responder

Json = dict[str, Any]
CODE = "stale-height-juvenile"
runner = CliRunner()


def _bundle(birth: str, height_day: str, cm: float = 150) -> Json:
    """The responder (70 kg on 2024-01-06, cycles from 2024-01-08), born ``birth``, with one
    height of ``cm`` measured on ``height_day``: 70 / 1.5² = 31.1 kg/m², obese."""
    data = responder()
    for e in data["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["birthDate"] = birth
    data["entry"].append({"resource": obs("h0", "8302-2", cm, "cm", height_day, system=LOINC)})
    return data


def _run(data: Json, **policy: Any) -> PatientResult:
    settings = Settings(policy=Policy(**policy))
    return evaluate_bundle_bytes(orjson.dumps(data), "p.json", settings)


def _summary(result: PatientResult) -> Json:
    record = patient_summary(result.patient_ref, result.evaluation, result.issues)
    out: Json = orjson.loads(orjson.dumps(record, default=str))
    return out


def _derived(result: PatientResult, rtype: str) -> list[Json]:
    return [
        e["resource"]
        for e in result.plan().bundle["entry"]  # type: ignore[index]
        if e["resource"]["resourceType"] == rtype
    ]


def _codes(result: PatientResult) -> list[str]:
    return [n["code"] for n in _summary(result)["notes"]]


def test_a_childs_bmi_from_a_five_year_old_height_says_so() -> None:
    result = _run(_bundle("2014-03-01", "2019-01-05"))
    summary = _summary(result)
    assert "obesity" in summary["thrombosis"]["risk_factors"]  # the number is not changed
    said = [n for n in summary["notes"] if n["code"] == CODE]
    assert len(said) == 1, summary["notes"]
    assert said[0]["severity"] == "warning" and said[0]["source"] == "Observation/h0"
    assert "1827 days before" in said[0]["message"] and "under 18" in said[0]["message"]
    # the Flag (the SMART page, the rate findings' reasons) names it beside the BMI
    (flag,) = _derived(result, "Flag")
    details = [
        x["valueString"]
        for ext in flag["extension"]
        for x in ext.get("extension", [])
        if x["url"] == "detail"
    ]
    (obesity,) = [d for d in details if d.startswith("BMI")]
    assert "height measured 1827 days before the weight" in obesity, obesity


def test_the_printout_says_it(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(_bundle("2014-03-01", "2019-01-05")))
    out = runner.invoke(app, ["evaluate", str(path)], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "warning: body height measured 1827 days before" in out.stdout, out.stdout


def test_an_adjusted_dosing_weight_from_an_old_childs_height_says_so() -> None:
    # adjusted: the height is paired with the cycle's weight (2024-01-06)
    result = _run(_bundle("2010-03-01", "2019-01-05", cm=160), dosing_weight="adjusted")
    cycles = [
        o
        for o in _derived(result, "Observation")
        if o["code"]["coding"][0]["code"] == "ivig-cycle-dose"
    ]
    assert cycles
    for o in cycles:
        assert any("height measured" in n["text"] for n in o.get("note", [])), o.get("note")
    assert CODE in _codes(result)


def test_an_ideal_dosing_weight_pairs_the_height_with_the_cycle_start() -> None:
    # a 17-year-old at the first cycle (2024-01-08), height 400 days before: said; no weight
    result = _run(_bundle("2006-06-01", "2022-12-04", cm=160), dosing_weight="ideal")
    assert CODE in _codes(result)


def test_an_adult_or_a_recent_height_or_no_birth_date_says_nothing() -> None:
    assert CODE not in _codes(_run(_bundle("1970-03-01", "2019-01-05")))  # adult then
    assert CODE not in _codes(_run(_bundle("2014-03-01", "2023-01-06")))  # 365 days: not more
    assert CODE in _codes(_run(_bundle("2014-03-01", "2023-01-05")))  # 366 days
    data = _bundle("2014-03-01", "2019-01-05")
    for e in data["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            del e["resource"]["birthDate"]
    assert CODE not in _codes(_run(data))


def test_an_18_year_old_at_the_weight_is_an_adult() -> None:
    # 18 on 2024-01-06 exactly (the weight's day): the height of age 13 is an adult's now
    assert CODE not in _codes(_run(_bundle("2006-01-06", "2019-01-05")))
    assert CODE in _codes(_run(_bundle("2006-01-07", "2019-01-05")))


def test_the_cds_card_says_it_beside_the_dosing_weight() -> None:
    child = PatientFacts(birth_date=date(2012, 5, 1), sex=Sex.MALE)
    weight = dosing_weight(
        date(2024, 6, 1),
        [BodyWeight("Observation/w", datetime(2024, 5, 30, tzinfo=UTC), Decimal(60))],
        [BodyHeight("Observation/h", datetime(2020, 5, 30, tzinfo=UTC), Decimal(160))],
        child,
        Policy(dosing_weight="adjusted"),
    )
    text = _weight_text(weight, datetime(2024, 6, 1, tzinfo=UTC))
    assert "body height measured 1461 days before the weight" in text, text
