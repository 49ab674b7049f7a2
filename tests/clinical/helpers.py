"""Builders for clinical-core tests: terse, exact (strings → Decimal), no FHIR."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fhirtis.clinical.facts import Instrument, Measure, MeasureValue, ResultStatus
from fhirtis.clinical.tis import AssessmentValues

D = Decimal
DAY = date(2024, 1, 1)
ENZYME_KEYS = frozenset({"ck", "aldolase", "ldh", "ast", "alt"})

INSTRUMENT_OF = {
    "pga": (Measure.PGA, Instrument.VAS),
    "ptga": (Measure.PTGA, Instrument.VAS),
    "mmt8-80": (Measure.MMT8, Instrument.MMT8_80),
    "mmt8-150": (Measure.MMT8, Instrument.MMT8_150),
    "cmas": (Measure.MMT8, Instrument.CMAS),
    "haq": (Measure.HAQ, Instrument.HAQ_DI),
    "chaq": (Measure.HAQ, Instrument.CHAQ),
    "extramuscular": (Measure.EXTRAMUSCULAR, Instrument.VAS),
    "das": (Measure.EXTRAMUSCULAR, Instrument.DAS),
    "pga-likert": (Measure.PGA, Instrument.LIKERT),
}


def mv(
    key: str,
    value: str | int,
    day: date = DAY,
    *,
    source: str | None = None,
    status: ResultStatus = ResultStatus.FINAL,
    uln: str | int | None = None,
) -> MeasureValue:
    if key in ENZYME_KEYS:
        measure, instrument = Measure.ENZYME, Instrument(key)
    else:
        measure, instrument = INSTRUMENT_OF[key]
    return MeasureValue(
        measure,
        instrument,
        D(str(value)),
        day,
        source or f"Observation/{key}-{day.isoformat()}",
        status,
        None,
        None if uln is None else D(str(uln)),
    )


def av(**values: str | int | tuple[str | int, str | int]) -> AssessmentValues:
    """av(pga=6, mmt8_150=100, ck=(3000, 200)) — enzymes as (value, ULN)."""
    measures: dict[Measure, MeasureValue] = {}
    enzymes: dict[Instrument, MeasureValue] = {}
    for name, value in values.items():
        key = name.replace("_", "-")
        if key in ENZYME_KEYS:
            assert isinstance(value, tuple)
            enzymes[Instrument(key)] = mv(key, value[0], uln=value[1])
        else:
            assert not isinstance(value, tuple)
            m = mv(key, value)
            measures[m.measure] = m
    return AssessmentValues(measures, enzymes)
