"""The IMACS-style TIS calculator: a JSON document in, a TIS result out (no FHIR).

Input (numbers may be JSON numbers or decimal strings; JSON numbers are read as exact decimals)::

    {"population": "adult" | "juvenile",
     "mmt8_max": 80 | 150,
     "baseline": {"pga": 6, "ptga": 7, "mmt8": 100, "haq": 1.5, "extramuscular": 4,
                  "enzyme": {"name": "ck", "value": 3000, "uln": 200}},
     "followup": {...},
     "policy": {"enzyme_change": "relative", ...}}

An assessment may give ``cmas`` instead of ``mmt8``, ``das`` instead of ``extramuscular`` and
``chq_phs`` instead of ``enzyme`` (the juvenile PRINTO alternatives), ``mmt8_max`` of its own,
and ``enzyme`` as a list (the most abnormal at baseline is chosen). Enzymes may carry ``unit``:
``U/L`` (default), ``[IU]/L`` or ``ukat/L`` (× 60).

Refused, each with its field: a key given twice in one object (JSON would keep the last
silently), and a number no measurement has (10^9 or more, or other than 0 below 10^-9), as the
FHIR readers refuse it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fhirtis.clinical.facts import Instrument, Measure, MeasureValue
from fhirtis.clinical.measures import UKAT_PER_L_TO_U_PER_L, spec_for
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import AssessmentValues, TisResult, compute_tis, percent_text
from fhirtis.fhir.primitives import MAGNITUDE_LIMIT

_DAY = date(2000, 1, 1)  # the calculator has no dates; facts need one


def _measurable(value: Decimal) -> Decimal:
    """A number no measurement has (10^9 or more, or other than 0 below 10^-9) is refused, as
    the FHIR readers refuse it (:data:`fhirtis.fhir.primitives.MAGNITUDE_LIMIT`)."""
    magnitude = abs(value)
    if magnitude >= MAGNITUDE_LIMIT or (magnitude and magnitude * MAGNITUDE_LIMIT < 1):
        raise ValueError(f"{value} is beyond the magnitude of any measurement (10^-9 to 10^9)")
    return value


Number = Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_measurable)]
NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), AfterValidator(_measurable)]
Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False), AfterValidator(_measurable)]


class CalculatorInputError(ValueError):
    """Bad calculator input; ``problems`` are (field path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


class EnzymeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["ck", "aldolase", "ldh", "ast", "alt"]
    value: NonNegative
    uln: Positive | None = None
    unit: Literal["U/L", "[IU]/L", "ukat/L"] = "U/L"


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pga: Number | None = None
    ptga: Number | None = None
    mmt8: Number | None = None
    cmas: Number | None = None
    haq: Number | None = None
    extramuscular: Number | None = None
    das: Number | None = None
    chq_phs: Number | None = None
    enzyme: list[EnzymeIn] | None = None
    mmt8_max: Literal[80, 150] | None = None

    @field_validator("enzyme", mode="before")
    @classmethod
    def _enzyme_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _one_instrument_each(self) -> AssessmentIn:
        for a, b in (("mmt8", "cmas"), ("extramuscular", "das"), ("enzyme", "chq_phs")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"give {a} or {b}, not both")
        if self.enzyme:
            names = [e.name for e in self.enzyme]
            if len(set(names)) != len(names):
                raise ValueError("an enzyme is listed twice")
        return self


class CalculatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    population: Population = Population.ADULT
    baseline: AssessmentIn
    followup: AssessmentIn
    mmt8_max: Literal[80, 150] | None = None
    policy: Policy = Field(default_factory=Policy)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once."""

    twice: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        obj.twice = tuple(key for i, key in enumerate(keys) if key in keys[:i])
    return obj


def _given_twice(value: Any, where: str = "") -> Iterator[str]:
    """The field paths given twice in a parsed document (JSON keeps the last silently: a
    follow-up PGA pasted twice would be scored from the second)."""
    prefix = f"{where}." if where else ""
    if isinstance(value, dict):
        for key in getattr(value, "twice", ()):
            yield prefix + key
        for key, item in value.items():
            yield from _given_twice(item, prefix + key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _given_twice(item, f"{prefix}{i}")


def parse_input(text: str | bytes) -> CalculatorIn:
    """Parse and validate a calculator document; raise CalculatorInputError naming each field."""
    try:
        raw = json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_object,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise CalculatorInputError([("(document)", f"not valid JSON: {exc}")]) from None
    twice = list(_given_twice(raw))
    if twice:
        raise CalculatorInputError(
            [(where, "given twice (only one value may be given)") for where in twice]
        )
    try:
        return CalculatorIn.model_validate(raw)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in err["loc"]) or "(document)", err["msg"])
            for err in exc.errors(include_url=False)
        ]
        raise CalculatorInputError(problems) from None


def _value(
    measure: Measure,
    instrument: Instrument,
    value: Decimal,
    where: str,
    problems: list[tuple[str, str]],
) -> MeasureValue:
    spec = spec_for(measure, instrument)
    if not spec.in_range(value):
        problems.append((where, f"{value} is outside the {spec.label} range"))
    return MeasureValue(measure, instrument, value, _DAY, where)


def to_assessment(
    raw: AssessmentIn, which: str, mmt8_max: int | None, problems: list[tuple[str, str]]
) -> AssessmentValues:
    values: dict[Measure, MeasureValue] = {}
    enzymes: dict[Instrument, MeasureValue] = {}

    def put(measure: Measure, instrument: Instrument, value: Decimal | None, key: str) -> None:
        if value is not None:
            values[measure] = _value(measure, instrument, value, f"{which}.{key}", problems)

    put(Measure.PGA, Instrument.VAS, raw.pga, "pga")
    put(Measure.PTGA, Instrument.VAS, raw.ptga, "ptga")
    if raw.mmt8 is not None:
        if mmt8_max is None:
            problems.append(
                (f"{which}.mmt8", "the MMT-8 scale maximum (mmt8_max: 80 or 150) is needed")
            )
        else:
            inst = Instrument.MMT8_150 if mmt8_max == 150 else Instrument.MMT8_80
            put(Measure.MMT8, inst, raw.mmt8, "mmt8")
    put(Measure.MMT8, Instrument.CMAS, raw.cmas, "cmas")
    put(Measure.HAQ, Instrument.HAQ_DI, raw.haq, "haq")
    put(Measure.EXTRAMUSCULAR, Instrument.VAS, raw.extramuscular, "extramuscular")
    put(Measure.EXTRAMUSCULAR, Instrument.DAS, raw.das, "das")
    put(Measure.ENZYME, Instrument.CHQ_PHS, raw.chq_phs, "chq_phs")
    for i, e in enumerate(raw.enzyme or ()):
        factor = UKAT_PER_L_TO_U_PER_L if e.unit == "ukat/L" else Decimal(1)
        where = f"{which}.enzyme.{i}"
        inst = Instrument(e.name)
        enzymes[inst] = MeasureValue(
            Measure.ENZYME,
            inst,
            e.value * factor,
            _DAY,
            where,
            uln=None if e.uln is None else e.uln * factor,
        )
    return AssessmentValues(values, enzymes)


def calculate(doc: CalculatorIn) -> TisResult:
    """The TIS for a validated calculator document."""
    problems: list[tuple[str, str]] = []
    b_max = doc.baseline.mmt8_max or doc.mmt8_max
    f_max = doc.followup.mmt8_max or doc.mmt8_max
    if b_max and f_max and b_max != f_max:
        problems.append(
            (
                "followup.mmt8_max",
                f"MMT-8 0–{b_max} at baseline and 0–{f_max} at follow-up: "
                "mismatched scales cannot be compared",
            )
        )
    baseline = to_assessment(doc.baseline, "baseline", b_max, problems)
    followup = to_assessment(doc.followup, "followup", f_max, problems)
    if problems:
        raise CalculatorInputError(problems)
    return compute_tis(baseline, followup, doc.population, doc.policy)


def result_record(result: TisResult) -> dict[str, Any]:
    """The JSON shape of a TIS result (numbers as Decimal; the writer renders them)."""
    measures: dict[str, Any] = {}
    for m in result.measures:
        entry: dict[str, Any] = {
            "instrument": m.instrument.value if m.instrument else None,
            "baseline": m.baseline.value if m.baseline else None,
            "followup": m.followup.value if m.followup else None,
            "percent_improvement": percent_text(m.percent_improvement),
            "score": m.score,
            "max_score": m.max_score,
        }
        if m.reason is not None:
            entry["missing"] = m.reason.code
            entry["reason"] = m.reason.message
        measures[m.measure.value] = entry
    return {
        "population": result.population.value,
        "tis": result.tis,
        "tis_lower": result.lower,
        "tis_upper": result.upper,
        "partial": result.partial,
        "category": result.category.value if result.category else None,
        "possible_categories": [c.value for c in result.possible_categories],
        "missing_measures": [m.value for m in result.missing_measures],
        "measures": measures,
        "notes": [n.as_record() for n in result.notes],
        "policy": dict(result.policy),
    }
