"""The risk factors that could not be assessed are data, not only text (s34).

Clinical spec §5.1 and its preamble ("where data does not allow a rule to run, the result says
so"): a risk factor the data does not allow to assess (no birth date or one recorded to the year
only, no BMI, no PGA at the latest assessment) is not a factor found, and the applicable maximum
rate rests on what could be assessed. The tee-risk Flag said so in its ``code.text`` only
("none found, not assessable: obesity (no BMI, …); maximum rate 4 mg/kg/min"), so that the SMART
page had to parse that sentence and the summary record (``evaluate --json``, ``cohort
--summaries``, the report) did not carry it at all: the printout rebuilt it from note codes.

Now the Flag carries one ``tee-risk-unassessed`` extension per factor not assessed (the factor,
coded as the found ones are, and why), whether or not another factor was found, and the summary
record's ``thrombosis.unassessed`` lists the same.
"""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.pipeline.records import summarise
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.test_conformance import _errors, _run_validator

Json = dict[str, Any]
SD = "http://fhirtis.org/fhir/StructureDefinition"
FACTOR_SYSTEM = "http://fhirtis.org/fhir/CodeSystem/tee-risk-factor"


def _evaluate(*resources: Json) -> PatientResult:
    return evaluate_bundle_bytes(orjson.dumps(bundle(*resources)), "test", Settings())


def _infusions() -> list[Json]:
    return [
        administration(
            f"a{k}",
            f"2024-01-{8 + k:02d}T09:00:00+01:00",
            f"2024-01-{8 + k:02d}T11:30:00+01:00",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),
        )
        for k in range(2)
    ]


def _flag(result: PatientResult) -> Json:
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    return flag


def _unassessed(flag: Json) -> list[tuple[str, str]]:
    out = []
    for ext in flag["extension"]:
        if ext["url"] != f"{SD}/tee-risk-unassessed":
            continue
        sub = {e["url"]: e for e in ext["extension"]}
        assert set(sub) == {"factor", "reason"}, ext
        (coding,) = sub["factor"]["valueCodeableConcept"]["coding"]
        assert coding["system"] == FACTOR_SYSTEM
        out.append((coding["code"], sub["reason"]["valueString"]))
    return out


def _none_assessable() -> PatientResult:
    """Born 1959 (year only: 64 or 65 at the infusions), a weight but no height or BMI, no
    PGA: no factor found; age, obesity and inflammation not assessable."""
    return _evaluate(
        patient(birth="1959"),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        *_infusions(),
    )


def test_the_flag_names_each_factor_not_assessed_as_an_extension() -> None:
    result = _none_assessable()
    flag = _flag(result)
    expected = [(u.kind.value, u.reason) for u in result.evaluation.thrombosis.current.unassessed]
    assert [kind for kind, _ in expected] == ["advanced-age", "obesity", "inflammation"]
    assert _unassessed(flag) == expected
    assert flag["status"] == "inactive"
    # the text says the same as before
    assert "none found, not assessable: advanced-age (" in flag["code"]["text"]


def test_a_factor_found_does_not_hide_those_not_assessed() -> None:
    """A history of DVT is a factor (the maximum rate drops whatever else is true); obesity
    and inflammation still could not be assessed, and the Flag says so as data."""
    result = _evaluate(
        patient(birth="1980-06-15"),
        condition("dm", SCT, "396230008", "2023-06-01"),
        condition("dvt", SCT, "128053003", "2020-03-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        *_infusions(),
    )
    flag = _flag(result)
    assert flag["status"] == "active"
    assert [k for k, _ in _unassessed(flag)] == ["obesity", "inflammation"]
    assert "not assessable" not in flag["code"]["text"]  # the text is unchanged


def test_every_factor_assessed_has_no_unassessed_extension() -> None:
    result = _evaluate(
        patient(birth="1980-06-15"),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        obs("h0", "8302-2", 170, "cm", "2024-01-01", system=LOINC),
        obs("pga0", "pga", 4, "cm", "2024-01-05"),
        *_infusions(),
    )
    assert _unassessed(_flag(result)) == []
    assert summarise(result.patient_ref, result.evaluation, []).thrombosis.unassessed == []


def test_the_flag_with_the_extension_conforms_to_its_profile() -> None:
    flags = [_flag(_none_assessable())]
    results = _run_validator([], flags)
    assert not _errors(results), _errors(results)
    assert [r["profile"] for r in results] == [f"{SD}/fhirtis-tee-risk"]


def test_the_summary_record_lists_the_factors_not_assessed() -> None:
    result = _none_assessable()
    record = summarise(result.patient_ref, result.evaluation, []).record()
    assert record["thrombosis"]["unassessed"] == [
        {"factor": u.kind.value, "reason": u.reason}
        for u in result.evaluation.thrombosis.current.unassessed
    ]
    assert len(record["thrombosis"]["unassessed"]) == 3
