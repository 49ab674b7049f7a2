"""The six IMACS core set measures: instruments, ranges, directions, range checks, and the
choice of the most abnormal muscle enzyme (clinical spec §1)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from fhirtis.clinical.facts import ENZYMES, Instrument, Measure, MeasureValue
from fhirtis.clinical.frozen import record
from fhirtis.clinical.notes import Note, excluded, missing, warning
from fhirtis.clinical.policy import PerPolicy, Policy

_ZERO = Decimal(0)  # compared with as a Decimal (an int is converted at every comparison)

UKAT_PER_L_TO_U_PER_L = Decimal(60)
"""1 µkat/L = 60 U/L (1 U = 1 µmol/min; 1 kat = 1 mol/s)."""


@record
class InstrumentSpec:
    """An instrument's scale. ``high`` is None for open-ended scales (the enzymes)."""

    instrument: Instrument
    measure: Measure
    low: Decimal
    high: Decimal | None
    higher_is_better: bool
    label: str

    @property
    def span(self) -> Decimal | None:
        return None if self.high is None else self.high - self.low

    def in_range(self, value: Decimal) -> bool:
        if value < self.low:
            return False
        return self.high is None or value <= self.high


def _spec(
    instrument: Instrument, measure: Measure, low: int, high: int | None, higher: bool, label: str
) -> InstrumentSpec:
    return InstrumentSpec(
        instrument, measure, Decimal(low), None if high is None else Decimal(high), higher, label
    )


INSTRUMENTS: Mapping[Instrument, InstrumentSpec] = {
    s.instrument: s
    for s in (
        _spec(Instrument.VAS, Measure.PGA, 0, 10, False, "VAS 0–10 cm"),
        _spec(Instrument.LIKERT, Measure.PGA, 0, 4, False, "Likert 0–4"),
        _spec(Instrument.MMT8_80, Measure.MMT8, 0, 80, True, "MMT-8 0–80"),
        _spec(Instrument.MMT8_150, Measure.MMT8, 0, 150, True, "MMT-8 0–150"),
        _spec(Instrument.CMAS, Measure.MMT8, 0, 52, True, "CMAS 0–52"),
        _spec(Instrument.HAQ_DI, Measure.HAQ, 0, 3, False, "HAQ-DI 0–3"),
        _spec(Instrument.CHAQ, Measure.HAQ, 0, 3, False, "CHAQ 0–3"),
        # CHQ physical summary score: a norm-based 0–100 summary scale, higher is better.
        # the clinical spec names it as the juvenile alternative to the enzyme, with no range; the
        # theoretical 0–100 range is used and every result that uses it carries a warning.
        _spec(Instrument.CHQ_PHS, Measure.ENZYME, 0, 100, True, "CHQ-PhS 0–100"),
        _spec(Instrument.DAS, Measure.EXTRAMUSCULAR, 0, 20, False, "DAS 0–20"),
        _spec(Instrument.CK, Measure.ENZYME, 0, None, False, "creatine kinase U/L"),
        _spec(Instrument.ALDOLASE, Measure.ENZYME, 0, None, False, "aldolase U/L"),
        _spec(Instrument.LDH, Measure.ENZYME, 0, None, False, "LDH U/L"),
        _spec(Instrument.AST, Measure.ENZYME, 0, None, False, "AST U/L"),
        _spec(Instrument.ALT, Measure.ENZYME, 0, None, False, "ALT U/L"),
    )
}

# The VAS instrument serves three measures; the table above keys PGA. These are its twins.
_VAS_FOR: Mapping[Measure, InstrumentSpec] = {
    m: InstrumentSpec(Instrument.VAS, m, Decimal(0), Decimal(10), False, "VAS 0–10 cm")
    for m in (Measure.PGA, Measure.PTGA, Measure.EXTRAMUSCULAR)
}
_LIKERT_FOR: Mapping[Measure, InstrumentSpec] = {
    m: InstrumentSpec(Instrument.LIKERT, m, Decimal(0), Decimal(4), False, "Likert 0–4")
    for m in (Measure.PGA, Measure.PTGA)
}

ALLOWED: Mapping[Measure, frozenset[Instrument]] = {
    Measure.PGA: frozenset({Instrument.VAS, Instrument.LIKERT}),
    Measure.PTGA: frozenset({Instrument.VAS, Instrument.LIKERT}),
    Measure.MMT8: frozenset({Instrument.MMT8_80, Instrument.MMT8_150, Instrument.CMAS}),
    Measure.HAQ: frozenset({Instrument.HAQ_DI, Instrument.CHAQ}),
    Measure.ENZYME: ENZYMES | {Instrument.CHQ_PHS},
    Measure.EXTRAMUSCULAR: frozenset({Instrument.VAS, Instrument.DAS}),
}


def _scale(measure: Measure, instrument: Instrument) -> InstrumentSpec:
    if instrument is Instrument.VAS:
        return _VAS_FOR[measure]
    if instrument is Instrument.LIKERT:
        return _LIKERT_FOR[measure]
    return INSTRUMENTS[instrument]


_SPECS: Mapping[tuple[Measure, Instrument], InstrumentSpec] = {
    (measure, instrument): _scale(measure, instrument)
    for measure, instruments in ALLOWED.items()
    for instrument in instruments
}
"""Every allowed (measure, instrument) pair and its scale, so that finding a value's scale is one
dict look-up (it is done for every value of every assessment)."""


_RANGES: Mapping[tuple[Measure, Instrument], tuple[Decimal, Decimal | None, InstrumentSpec]] = {
    key: (spec.low, spec.high, spec) for key, spec in _SPECS.items()
}
""":data:`_SPECS` with each scale's bounds beside it, so that :func:`check_value` (run for every
value of every assessment, and again for every comparison) makes no method call."""


def _wrong_instrument(measure: Measure, instrument: Instrument) -> str:
    return f"instrument {instrument.value} does not measure {measure.value}"


def spec_for(measure: Measure, instrument: Instrument) -> InstrumentSpec:
    """The scale of ``instrument`` when it measures ``measure``.

    Raises ValueError when the instrument does not measure that measure (a VAS for MMT-8, say).
    """
    spec = _SPECS.get((measure, instrument))
    if spec is None:
        raise ValueError(_wrong_instrument(measure, instrument))
    return spec


def check_value(value: MeasureValue) -> Note | None:
    """None when the value is possible on its instrument; else why it is excluded."""
    scale = _RANGES.get((value.measure, value.instrument))
    if scale is None:
        return excluded(
            "wrong-instrument", _wrong_instrument(value.measure, value.instrument), value.source
        )
    low, high, spec = scale
    number = value.value
    # not spec.in_range(number), with the same comparisons in the same order
    if number < low or (high is not None and not number <= high):
        upper = "∞" if spec.high is None else str(spec.high)
        return excluded(
            "out-of-range",
            f"{value.measure.value} value outside {spec.label} range [{spec.low}, {upper}]",
            value.source,
        )
    return None


def uln_problem(value: MeasureValue) -> Note | None:
    """Why the value's upper limit of normal cannot be used (zero or negative), or None. The
    value itself stays usable (clinical spec §1: only a value outside its instrument's range is
    impossible; an enzyme without a usable ULN is handled as one without a ULN)."""
    if value.uln is not None and value.uln <= _ZERO:
        return warning(
            "bad-uln",
            "upper limit of normal is not positive; the ULN is not used (the value is)",
            value.source,
        )
    return None


def usable_uln(value: MeasureValue) -> Decimal | None:
    """The value's ULN when it can be used (positive), else None."""
    uln = value.uln
    return uln if uln is not None and uln > _ZERO else None


def enzyme_ratio(value: MeasureValue) -> Fraction | None:
    """value ÷ ULN, exactly; None without a ULN."""
    if value.uln is None or value.uln <= _ZERO:
        return None
    # Fraction(value) / Fraction(uln) from the two exact integer ratios, with one reduction
    vn, vd = value.value.as_integer_ratio()
    un, ud = value.uln.as_integer_ratio()
    return Fraction(vn * ud, vd * un)


@record
class EnzymeChoice:
    """The most abnormal enzyme at baseline (clinical spec §1), or None with the reason."""

    instrument: Instrument | None
    ratio: Fraction | None
    notes: tuple[Note, ...]


def _tie_order_of(policy: Policy) -> dict[str, int]:
    return {name: i for i, name in enumerate(policy.enzyme_tie_order)}


_tie_order = PerPolicy(_tie_order_of)
"""Each enzyme's place in the policy's tie order, by name (made once per policy)."""


def choose_enzyme(candidates: Mapping[Instrument, MeasureValue], policy: Policy) -> EnzymeChoice:
    """Choose, once at baseline, the enzyme with the highest value ÷ ULN.

    Ties are broken by ``policy.enzyme_tie_order`` (default CK, aldolase, LDH, AST, ALT).
    An enzyme with no known ULN cannot be ranked: with other enzymes it is left out (noted); when
    it is the only enzyme it is chosen, with a warning that its abnormality is unknown.
    """
    notes: list[Note] = []
    ranked: list[tuple[Fraction, int, Instrument]] = []
    order = _tie_order(policy)
    for instrument, value in candidates.items():
        ratio = enzyme_ratio(value)
        if ratio is None:
            continue
        # an Instrument is a str enum: it finds its value's entry
        ranked.append((ratio, -order.get(instrument, len(order)), instrument))
    if ranked:
        best = max(ranked)
        for instrument, value in candidates.items():
            if value.uln is None or value.uln <= _ZERO:  # enzyme_ratio(value) is None
                notes.append(
                    warning(
                        "enzyme-uln-unknown",
                        f"{instrument.value} has no upper limit of normal; not ranked",
                        value.source,
                    )
                )
        return EnzymeChoice(best[2], best[0], tuple(notes))
    if len(candidates) == 1:
        ((instrument, value),) = candidates.items()
        notes.append(
            warning(
                "enzyme-uln-unknown",
                f"{instrument.value} is the only enzyme and has no upper limit of normal",
                value.source,
            )
        )
        return EnzymeChoice(instrument, None, tuple(notes))
    if not candidates:
        return EnzymeChoice(
            None, None, (missing("enzyme-missing", "no muscle enzyme at baseline"),)
        )
    notes.append(
        missing(
            "enzyme-uln-unknown",
            f"several enzymes at baseline ({', '.join(i.value for i in candidates)}) and none "
            "has an upper limit of normal (ULN): they cannot be ranked; the enzyme measure is "
            "missing",
        )
    )
    return EnzymeChoice(None, None, tuple(notes))
