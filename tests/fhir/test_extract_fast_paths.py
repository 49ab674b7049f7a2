"""The extraction's fast paths (issue 13, one core) answer exactly as the general readers do."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import IvigAdministration
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import UCUM, terminology
from fhirtis.fhir.extract import Extractor
from fhirtis.fhir.extract.common import (
    ExcludedError,
    TimeElements,
    coded_quantity,
    first_fhir_time,
    first_time,
    read_quantity,
    to_unit,
)
from fhirtis.fhir.extract.medications import (
    _DOSE_UNITS,
    _RATE_UNITS,
    ADMINISTRATION_FIELDS,
    _coded_amount,
)
from fhirtis.fhir.extract.medications import _EFFECTIVE as _MA_EFFECTIVE
from fhirtis.fhir.extract.medications import _EFFECTIVE_END as _MA_END
from fhirtis.fhir.extract.observations import OBSERVATION_TIME as _OBSERVATION_EFFECTIVE
from fhirtis.fhir.primitives import PrimitiveError, parse_date_time_text, parse_decimal
from fhirtis.fhir.units import first_convertible
from tests.fhir.builders import (
    CORE,
    LOINC,
    PATIENT,
    administration,
    enzyme,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]


def test_float_decimals_keep_the_sign_of_zero_and_the_digits_written() -> None:
    assert str(parse_decimal(0.0)) == "0.0"
    assert str(parse_decimal(-0.0)) == "-0.0"
    assert str(parse_decimal(0.0)) == "0.0"
    assert str(parse_decimal(7.10)) == "7.1"
    assert str(parse_decimal(7.1)) == "7.1"
    assert str(parse_decimal(1.0)) == "1.0"
    assert str(parse_decimal(1)) == "1"  # an int is not the float 1.0 that equals it
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(PrimitiveError):
            parse_decimal(bad)


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 7.1, "code": "cm", "system": UCUM},
        {"value": 80, "code": "kg"},
        {"value": -0.0, "code": "kg"},
        {"value": 2.5, "unit": "lbs"},  # text only: the general reader
        {"value": 2.5, "code": "", "unit": "kg"},
        {"value": 3, "code": "kg", "system": "http://example.org/units"},
        {"value": "3", "code": "kg"},
        {"value": float("inf"), "code": "kg"},
        {"value": True, "code": "kg"},
        {"value": False, "code": "kg"},
        {"value": 0, "code": "kg"},
        {"value": 10**30, "code": "kg"},
        {"value": 80, "code": "kg", "system": None},
        {"value": 80, "code": None, "unit": "kg"},
        {"value": 80, "code": 5},
        {"value": None, "code": "kg"},
        {"value": 80, "code": "kg", "comparator": None},  # given as null: still refused
        {"value": 80, "code": "kg", "comparator": "<"},  # censored: refused
        {"code": "kg"},
        [1],
    ],
)
def test_coded_quantity_agrees_with_read_quantity(quantity: object) -> None:
    fast = coded_quantity(quantity)
    try:
        general: tuple[Decimal, str | None] | ExcludedError = read_quantity(quantity, "q")
    except ExcludedError as exc:
        general = exc
    if fast is None:
        return  # read by read_quantity itself
    assert not isinstance(general, ExcludedError)
    assert (str(fast[0]), fast[1]) == (str(general[0]), general[1])


def test_time_elements_in_turn_and_at_their_precision() -> None:
    elements = TimeElements.of("effectiveDateTime", "effectivePeriod.start")
    period = {"effectivePeriod": {"start": "2024-01-02"}}
    when, date_only, key = first_time(period, elements, "O")
    assert (when.isoformat(), date_only, key) == (
        "2024-01-02T00:00:00+00:00",
        True,
        "effectivePeriod.start",
    )
    assert first_fhir_time(period, elements, "O").isoformat() == "2024-01-02"
    instant = {"effectiveDateTime": "2024-01-02T10:00:00+01:00", "effectivePeriod": {"start": "x"}}
    assert first_fhir_time(instant, elements, "O").isoformat() == "2024-01-02T10:00:00+01:00"
    with pytest.raises(ExcludedError) as missing:
        first_fhir_time({}, elements, "O")
    assert (missing.value.message, missing.value.path) == (
        "no effectiveDateTime or effectivePeriod.start",
        "O",
    )
    for bad, message in (("2024", "a partial date"), (5, "not a FHIR dateTime")):
        with pytest.raises(ExcludedError) as refused:
            first_fhir_time({"effectiveDateTime": bad}, elements, "O")
        assert refused.value.message.startswith(f"effectiveDateTime: {message}")
        assert refused.value.path == "O.effectiveDateTime"


@pytest.mark.parametrize("what", ["dose", "rate"])
@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 842, "code": "mL", "system": UCUM},
        {"value": 30.5, "code": "g"},
        {"value": 0.4, "code": "g/kg"},
        {"value": 60, "code": "mL/h"},
        {"value": 2.5, "code": "mg/kg/min"},
        {"value": 1.0, "code": "[lb_av]"},  # converts to none of the targets
        {"value": 5, "code": "furlongs"},  # not UCUM
        {"value": 5, "unit": "mL/hr"},  # text only: the general reader
        {"value": 5, "code": "mL", "system": "http://example.org/units"},
        {"value": "5", "code": "mL"},
        {"value": 5, "code": "mL", "comparator": ">"},
        {"value": True, "code": "g"},
        {"value": 10**30, "code": "g"},
        {"value": 1.5, "code": "mg/min"},
        {"value": 2, "code": "L/h"},
        {"value": float("nan"), "code": "g"},
        {"code": "mL"},
        [5],
    ],
)
def test_coded_amount_agrees_with_the_dose_and_rate_readers(what: str, quantity: object) -> None:

    reader = Extractor(terminology())
    general_read = reader._dose if what == "dose" else reader._rate
    fast = _coded_amount(quantity, _DOSE_UNITS if what == "dose" else _RATE_UNITS)
    try:
        general: tuple[str, Decimal] | ExcludedError = general_read(quantity, "q")
    except ExcludedError as exc:
        general = exc
    if fast is None:
        return  # read (and reported) by the general reader itself
    assert not isinstance(general, ExcludedError)
    assert (fast[0], str(fast[1])) == (general[0], str(general[1]))


def test_a_medication_is_read_once_per_resource_not_per_address() -> None:
    """What a Medication is (codings, estrogen, product, strength) is kept per Medication
    resource of the patient; a record left at a reused address is not taken for another."""
    reader = Extractor(terminology())
    index = reader._risk[next(k for k in reader._risk if k.value == "estrogen")]
    system, code = next(iter(index.codes))  # a coding the ValueSet lists
    estrogen: Json = {
        "resourceType": "Medication",
        "id": "e",
        "code": {"coding": [{"system": system, "code": code}]},
    }
    other: Json = {"resourceType": "Medication", "id": "o", "code": {"text": "saline"}}
    resolve = {"Medication/e": estrogen, "Medication/o": other}
    use = {"medicationReference": {"reference": "Medication/e"}}
    first = reader._read_medication(use, "MS", resolve)
    assert reader._read_medication(use, "MS", resolve) is first  # remembered
    assert first.codings == [(system, code)]
    assert reader._is_estrogen(first.codings) is True
    # a record at the address of another Medication is not taken for it
    reader._medications[id(other)] = first
    use_other = {"medicationReference": {"reference": "Medication/o"}}
    read = reader._read_medication(use_other, "MS", resolve)
    assert read is not first
    assert (read.med, read.codings, read.text) == (other, [], "saline")
    # an inline concept is read afresh each time
    inline = {"medicationCodeableConcept": {"text": "estradiol"}}
    assert reader._read_medication(inline, "MS", resolve) is not reader._read_medication(
        inline, "MS", resolve
    )


_TIMES: list[object] = [
    "2024-01-02",
    "2024-01-02T10:00:00+01:00",
    "2024-01-02T10:00:00Z",
    "2024",
    "2024-13-01",
    "2024-02-30T10:00:00Z",
    5,
    None,
]


def _outcome(resources: list[Json]) -> tuple[list[str], list[tuple[str, str | None]]]:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    read = read_patient_bundle(orjson.dumps(bundle))
    data = Extractor(terminology()).extract(read.patient_ref, read.resources, read.resolve)
    times = [m.day.isoformat() for m in data.measures] + [
        f"{a.start.isoformat()}..{a.end.isoformat() if a.end else None}"
        for a in data.administrations
    ]
    return times, [(i.diagnostics, i.expression) for i in data.issues]


@pytest.mark.parametrize("effective", _TIMES)
@pytest.mark.parametrize("fallback", [None, {"start": "2024-03-04"}, "2024-05-06"])
def test_observation_times_read_directly_agree_with_first_time(
    effective: object, fallback: object
) -> None:
    """The Observation reads its effectiveDateTime text directly; first_time (the general
    reader, here through a copy whose text the fast path cannot read) says the same."""
    r = obs("a", "pga", 45, "mm", "x", issued="2024-01-02T12:00:00Z")
    del r["effectiveDateTime"]
    if effective is not None:
        r["effectiveDateTime"] = effective
    if isinstance(fallback, dict):
        r["effectivePeriod"] = fallback
    elif fallback is not None:
        r["effectiveInstant"] = fallback
    fast = _outcome([patient(), r])
    expected: list[str] = []
    try:
        expected = [first_time(r, _OBSERVATION_EFFECTIVE, "")[0].date().isoformat()]
    except ExcludedError as exc:
        assert fast[1] == [
            (f"Observation/a excluded: {exc.message}", "Bundle.entry[1].resource" + exc.path)
        ]
    assert fast[0] == expected


@pytest.mark.parametrize("start", _TIMES)
@pytest.mark.parametrize("end", _TIMES)
@pytest.mark.parametrize("date_time", [None, "2024-01-01T08:00:00Z", "2024-01"])
def test_administration_times_read_directly_agree_with_first_fhir_time(
    start: object, end: object, date_time: object
) -> None:
    r = administration("m", "x", dose=qty(20, "g"))
    r["effectivePeriod"] = {"start": start, "end": end}
    if date_time is not None:
        r["effectiveDateTime"] = date_time
    fast = _outcome([patient(), medication(), r])
    where = "Bundle.entry[2].resource"
    try:
        first = first_fhir_time(r, _MA_EFFECTIVE, where)
        last = first_fhir_time(r, _MA_END, where) if end is not None else None
    except ExcludedError as exc:
        assert fast == ([], [(f"MedicationAdministration/m excluded: {exc.message}", exc.path)])
        return
    assert fast[0] == [f"{first.isoformat()}..{last.isoformat() if last else None}"]


def test_times_of_one_offset_share_one_zone_and_read_as_before() -> None:
    """parse_date_time_text gives the times of one UTC offset one tzinfo object (they then
    compare field by field); the times themselves are what fromisoformat reads."""
    texts = [
        "2024-01-02T10:00:00+01:00",
        "2024-01-03T09:30:00.25+01:00",
        "2024-01-02T10:00:00-05:30",
        "2024-01-02T10:00:00Z",
        "2024-01-02T10:00:00+00:00",
        "2024-01-02",
    ]
    parsed = [parse_date_time_text(text)[0] for text in texts]
    for text, when in zip(texts, parsed, strict=True):
        plain = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if len(text) == 10:
            plain = plain.replace(tzinfo=UTC)
        assert when == plain
        assert (when.isoformat(), when.utcoffset(), when.tzname()) == (
            plain.isoformat(),
            plain.utcoffset(),
            plain.tzname(),
        )
    assert parsed[0].tzinfo is parsed[1].tzinfo
    assert parsed[3].tzinfo is parsed[4].tzinfo is parsed[5].tzinfo is UTC
    assert parsed[2].tzinfo is not parsed[0].tzinfo
    assert sorted(parsed) == sorted(parsed, key=lambda w: w.timestamp())


@pytest.mark.parametrize("first", ["2024-01-02T10:00:00+01:00", "2024-01-02T09:00:00Z"])
def test_the_latest_time_is_the_first_of_equal_instants(first: str) -> None:
    """``data.latest`` (the default "as of") keeps the first resource of the latest instant,
    however its offset is written; one parsed time shared by several resources counts once."""
    other = "2024-01-02T09:00:00Z" if first.endswith("+01:00") else "2024-01-02T10:00:00+01:00"
    resources = [
        patient(),
        obs("a", "pga", 4, "cm", "2024-01-01T08:00:00+01:00"),
        obs("b", "pga", 4, "cm", first),
        obs("c", "pga", 4, "cm", first),
        obs("d", "pga", 4, "cm", other),
        obs("e", "pga", 4, "cm", "2024-01-01T23:00:00Z"),
    ]
    bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}
    read = read_patient_bundle(orjson.dumps(bundle))
    data = Extractor(terminology()).extract(read.patient_ref, read.resources, read.resolve)
    assert data.latest is not None
    assert (
        data.latest.isoformat() == datetime.fromisoformat(first.replace("Z", "+00:00")).isoformat()
    )


def test_administrations_are_built_in_the_order_of_their_fields() -> None:
    """The extraction builds an IvigAdministration by position (ADMINISTRATION_FIELDS)."""
    assert tuple(f.name for f in fields(IvigAdministration)) == ADMINISTRATION_FIELDS


def test_amount_units_remember_the_first_convertible_target_per_code() -> None:
    for code in ("mL", "g", "g/kg", "mg/kg/min", "[lb_av]", "furlongs", "mL/h", "mg/min"):
        for units in (_DOSE_UNITS, _RATE_UNITS):
            assert units.first(code) == first_convertible(code, units.units)
            assert units.first(code) == first_convertible(code, units.units)  # remembered


# -- the handlers' fast paths against the general readers, resource by resource ----------------

_BAD_IDS: list[object] = [5, "", "not an id!", "x" * 65, None]
_SUBJECTS: list[object] = [
    None,
    "Patient/p1",
    {},
    {"reference": 5},
    {"reference": "Patient/p1/_history/2"},
    {"reference": "http://example.org/fhir/Patient/p1"},
    {"reference": "Patient/p2"},
]
_QUANTITIES: list[object] = [
    qty(45, "mm"),
    qty(4.5, "cm"),
    {"value": 4, "unit": "cm"},
    {"value": 4, "code": "cm"},
    {"value": 4, "code": "cm", "system": "http://example.org/units"},
    {"value": 4, "code": "cm", "comparator": "<"},
    {"value": True, "code": "cm"},
    {"value": "4", "code": "cm"},
    {"value": float("nan"), "code": "cm"},
    {"value": 4, "code": "furlongs"},
    {"value": 4, "code": "kg"},
    {"value": 4, "code": ""},
    {"code": "cm"},
    "4 cm",
]
_HIGHS: list[object] = [
    qty(200, "U/L"),
    {"value": 200, "unit": "U/L"},
    qty(3.3, "ukat/L"),
    {"value": 200, "code": "U/L", "comparator": "<"},
    {"value": "200", "code": "U/L"},
    qty(200, "mg"),
    "200",
]


def _general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the handlers' fast paths off: every id, Quantity and amount is read by the
    general readers (_require_id, read_quantity, the dose and rate readers)."""
    from fhirtis.fhir.extract import medications, observations  # noqa: PLC0415

    monkeypatch.setattr(observations, "ID_FULLMATCH", lambda _: None)
    monkeypatch.setattr(observations, "coded_quantity", lambda _: None)
    monkeypatch.setattr(medications, "ID_FULLMATCH", lambda _: None)
    monkeypatch.setattr(medications, "coded_quantity", lambda _: None)
    monkeypatch.setattr(medications, "_coded_amount", lambda *_: None)


def _extracted(resources: list[Json], med: Json | None = None) -> str:
    """Everything extracted from ``resources`` (with a Patient and an IVIG Medication)."""
    listed = [patient(), med or medication(), *resources]
    pairs = [(f"Bundle.entry[{i}].resource", r) for i, r in enumerate(listed)]
    resolve = {f"{r['resourceType']}/{r['id']}": r for r in listed[:2]}
    return repr(Extractor(terminology()).extract(PATIENT, pairs, resolve))


def _observation_variants() -> list[Json]:
    out: list[Json] = []
    for ident in _BAD_IDS:
        out.append(obs("a", "pga", 4, "cm", "2024-01-02", id=ident))
    for subject in _SUBJECTS:
        out.append({**obs("a", "pga", 4, "cm", "2024-01-02"), "subject": subject})
    for quantity in _QUANTITIES:
        for code, system in (("pga", CORE), ("haq-di", CORE), ("2157-6", LOINC)):
            out.append(obs("a", code, 4, "cm", "2024-01-02", system=system))
            out[-1]["valueQuantity"] = quantity
    for high in _HIGHS:
        out.append(enzyme("a", "2157-6", 300, "2024-01-02"))
        out[-1]["referenceRange"] = [{"high": high}]
    return out


def _administration_variants() -> list[Json]:
    out: list[Json] = []
    for ident in _BAD_IDS:
        out.append(administration("m", "2024-01-02T10:00:00Z", dose=qty(20, "g"), id=ident))
    for subject in _SUBJECTS:
        r = administration("m", "2024-01-02T10:00:00Z", dose=qty(20, "g"))
        out.append({**r, "subject": subject})
    for quantity in [
        *_QUANTITIES,
        qty(20, "g"),
        qty(500, "mL"),
        qty(0.4, "g/kg"),
        qty(2, "[lb_av]"),
    ]:
        out.append(administration("m", "2024-01-02T10:00:00Z", dose=quantity))
        rate = quantity if not isinstance(quantity, dict) or quantity.get("code") != "cm" else None
        out.append(administration("m", "2024-01-02T10:00:00Z", rate=rate or qty(60, "mL/h")))
    return out


@pytest.mark.parametrize("resource", _observation_variants() + _administration_variants())
def test_the_fast_paths_extract_what_the_general_readers_do(
    resource: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Observation or administration, well formed or not, gives the same facts, sources and
    issues (same message, same location) with the fast paths as with the general readers."""
    fast = _extracted([resource])
    _general_only(monkeypatch)
    assert _extracted([resource]) == fast


_STRENGTHS: list[object] = [
    qty(10, "g"),
    qty(100, "mL"),
    qty(0.1, "L"),
    qty(0, "mL"),
    {"value": 10, "unit": "g"},
    {"value": 10, "code": "g", "comparator": "<"},
    {"value": "10", "code": "g"},
    {"value": 10, "code": "g", "system": "http://example.org/units"},
    qty(10, "furlongs"),
    qty(10, "kg"),
    "10 g",
]


@pytest.mark.parametrize("part", ["numerator", "denominator"])
@pytest.mark.parametrize("quantity", _STRENGTHS)
def test_a_medication_strength_is_read_as_the_general_readers_read_it(
    part: str, quantity: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    med = medication()
    med["ingredient"][0]["strength"][part] = quantity
    given = [
        administration("m", "2024-01-02T10:00:00Z", dose=qty(500, "mL")),
        administration("n", "2024-01-03T10:00:00Z", dose=qty(400, "mL")),
    ]
    fast = _extracted(given, med)
    _general_only(monkeypatch)
    assert _extracted(given, med) == fast


def test_a_malformed_element_still_gets_its_issue() -> None:
    bad_id = obs("a", "pga", 4, "cm", "2024-01-02", id="not an id!")
    other = obs("b", "pga", 4, "cm", "2024-01-02", subject="Patient/p2")
    censored = obs("c", "pga", 4, "cm", "2024-01-02")
    censored["valueQuantity"]["comparator"] = ">"
    dose = administration("m", "2024-01-02T10:00:00Z", dose={"value": 20, "code": "furlongs"})
    listed = [patient(), medication(), bad_id, other, censored, dose]
    pairs = [(f"Bundle.entry[{i}].resource", r) for i, r in enumerate(listed)]
    resolve = {"Medication/octa": listed[1]}
    data = Extractor(terminology()).extract(PATIENT, pairs, resolve)
    assert [(i.diagnostics, i.expression) for i in data.issues] == [
        (
            "Observation/not an id! excluded: resource has no valid id",
            "Bundle.entry[2].resource.id",
        ),
        ("Observation/b excluded: subject is another patient", "Bundle.entry[3].resource.subject"),
        (
            "Observation/c excluded: value with comparator '>' is not an exact value",
            "Bundle.entry[4].resource.valueQuantity.comparator",
        ),
        (
            "MedicationAdministration/m: its dose is unknown (unit 'furlongs' is unknown or not "
            "one of g, mL, g/kg); the administration still counts",
            "Bundle.entry[5].resource.dosage.dose",
        ),
    ]


@pytest.mark.parametrize("unit", ["cm", "mm", "U/L", "kg", "1", "{score}", "g", "mL/h", "furlongs"])
@pytest.mark.parametrize("value", [Decimal("4.50"), Decimal(0), Decimal("-0.0"), Decimal("1E+3")])
def test_a_value_in_the_unit_wanted_is_kept_as_to_unit_keeps_it(unit: str, value: Decimal) -> None:
    """The handlers skip to_unit when the unit is the one wanted: to_unit gives the value as is."""
    kept = to_unit(value, unit, unit, "q")
    assert kept is value
