"""IMACS deterioration, confirmed deterioration and the ProDERM responder rule (clinical spec §3).

Three-valued where data is missing: a clause is True when the data shows it, False when the data
rules it out, and None when missing measures leave it open. Deterioration is True when any clause
is True, False when every clause is False, else None (unknown) — never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction

from fhirtis.clinical.decimals import percent_of
from fhirtis.clinical.facts import Instrument, Measure, MeasureValue
from fhirtis.clinical.frozen import record
from fhirtis.clinical.measures import InstrumentSpec, check_value, spec_for
from fhirtis.clinical.notes import Note, missing
from fhirtis.clinical.policy import Policy, WorseningBasis
from fhirtis.clinical.tis import THRESHOLDS, TisResult

NON_ENZYME: tuple[Measure, ...] = (
    Measure.PGA,
    Measure.PTGA,
    Measure.MMT8,
    Measure.HAQ,
    Measure.EXTRAMUSCULAR,
)
VAS_WORSE_CM = Decimal(2)
MMT_WORSE_PERCENT = Fraction(20)
ANY_THREE_PERCENT = Fraction(30)

# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_PGA, _MMT8, _EXTRAMUSCULAR = Measure.PGA, Measure.MMT8, Measure.EXTRAMUSCULAR
_VAS = Instrument.VAS
_RELATIVE, _ABSOLUTE = WorseningBasis.RELATIVE, WorseningBasis.ABSOLUTE


@record
class Worsening:
    """How much one measure worsened: in its own units and in percent (per the policy basis)."""

    measure: Measure
    instrument: Instrument
    amount: Decimal  # in the instrument's unit, positive = worse
    percent: Fraction  # positive = worse
    basis: WorseningBasis


@record
class DeteriorationResult:
    day: date
    deteriorated: bool | None
    clauses: Mapping[str, bool | None]  # "pga+mmt8", "extramuscular", "any-3-of-5"
    worsening: Mapping[Measure, Worsening]
    notes: tuple[Note, ...]


def worsening(
    measure: Measure,
    baseline: MeasureValue,
    followup: MeasureValue,
    policy: Policy,
    checked: bool = False,
) -> Worsening | Note:
    """Worsening of one measure, or the reason it cannot be computed. ``checked``: both values
    are known to pass :func:`~fhirtis.clinical.measures.check_value`, not asked again."""
    if not checked:
        for value in (baseline, followup):
            problem = check_value(value)
            if problem is not None:
                return problem
    if baseline.instrument is not followup.instrument:
        return missing(
            "instrument-mismatch",
            f"{measure.value}: {baseline.instrument.value} vs {followup.instrument.value}",
            followup.source,
        )
    spec = spec_for(measure, baseline.instrument)
    amount = (
        baseline.value - followup.value
        if spec.higher_is_better
        else followup.value - baseline.value
    )
    key = (id(spec), baseline.value, followup.value, policy.worsening_basis)
    known = _PERCENTS.get(key)
    if known is None:
        known = _percent(spec, amount, baseline.value, policy.worsening_basis)
        if len(_PERCENTS) >= _PERCENTS_LIMIT:
            _PERCENTS.clear()
        _PERCENTS[key] = known
    return Worsening(measure, baseline.instrument, amount, *known)


def _percent(
    spec: InstrumentSpec, amount: Decimal, baseline: Decimal, basis: WorseningBasis
) -> tuple[Fraction, WorseningBasis]:
    """The percent worsening of ``amount`` on the scale ``spec``, and the basis it is on."""
    if basis is _RELATIVE and baseline == 0:
        basis = _ABSOLUTE  # clinical spec §3: a baseline of 0 uses the range basis
    if basis is _RELATIVE:
        return percent_of(amount, baseline), basis
    assert spec.span is not None
    return percent_of(amount, spec.span), basis


_PERCENTS: dict[tuple[int, Decimal, Decimal, WorseningBasis], tuple[Fraction, WorseningBasis]]
_PERCENTS = {}
""":func:`_percent` by (the scale's id, baseline value, follow-up value, policy basis), made
once per distinct pair (a cohort's values repeat; a Fraction is immutable). The scales are the
module constants of :mod:`fhirtis.clinical.measures`, alive as long as the process, so an id
names one scale. Equal Decimals (2 and 2.0) give an equal amount, hence the same canonical
Fraction; the amount itself (whose digits may differ) is computed each time."""
_PERCENTS_LIMIT = 16_384


def assess_deterioration(
    day: date,
    baseline: Mapping[Measure, MeasureValue],
    followup: Mapping[Measure, MeasureValue],
    policy: Policy,
    *,
    checked: bool = False,
) -> DeteriorationResult:
    """Deterioration at one follow-up assessment versus baseline (clinical spec §3).
    ``checked``: every value passes :func:`~fhirtis.clinical.measures.check_value` (the
    values of a course, checked when grouped): the same answer without asking again."""
    notes: list[Note] = []
    worse: dict[Measure, Worsening] = {}
    for measure in NON_ENZYME:
        b, f = baseline.get(measure), followup.get(measure)
        if b is None or f is None:
            notes.append(_MISSING[measure])
            continue
        result = worsening(measure, b, f, policy, checked)
        if isinstance(result, Note):
            notes.append(result)
        else:
            worse[measure] = result

    pga = _vas_worse(worse, _PGA, notes)
    mmt = worse.get(_MMT8)
    mmt_worse = None if mmt is None else _at_least(mmt.percent, _MMT_WORSE)
    clause1 = _and(pga, mmt_worse)
    clause2 = _vas_worse(worse, _EXTRAMUSCULAR, notes)
    n_worse = 0
    for w in worse.values():
        if _at_least(w.percent, _ANY_THREE):
            n_worse += 1
    n_unknown = len(NON_ENZYME) - len(worse)
    clause3: bool | None
    if n_worse >= 3:
        clause3 = True
    elif n_worse + n_unknown < 3:
        clause3 = False
    else:
        clause3 = None
    clauses = {"pga+mmt8": clause1, "extramuscular": clause2, "any-3-of-5": clause3}
    return DeteriorationResult(day, _or(clauses.values()), clauses, worse, tuple(notes))


def _vas_worse(
    worse: Mapping[Measure, Worsening], measure: Measure, notes: list[Note]
) -> bool | None:
    """Whether ``measure`` worsened by 2 cm on the VAS (None: unknown, with a note when it is
    not on the VAS)."""
    w = worse.get(measure)
    if w is None:
        return None
    if w.instrument is not _VAS:
        if w.amount <= 0:
            return False  # not worse at all (a DAS that held or improved): not by 2 cm
        notes.append(
            missing(
                "not-vas",
                f"{measure.value} is not on a 0–10 cm VAS; the 2 cm rule cannot apply",
            )
        )
        return None
    return w.amount >= VAS_WORSE_CM


def _at_least(percent: Fraction, threshold: tuple[int, int]) -> bool:
    """``percent >= threshold`` (the threshold as its integer ratio), by exact integer
    cross-multiplication (denominators are positive): what Fraction's comparison does, without
    its generic dispatch."""
    numerator, denominator = percent.as_integer_ratio()
    return numerator * threshold[1] >= threshold[0] * denominator


_MMT_WORSE = MMT_WORSE_PERCENT.as_integer_ratio()
_ANY_THREE = ANY_THREE_PERCENT.as_integer_ratio()
_MISSING: Mapping[Measure, Note] = {
    m: missing("missing", f"{m.value} missing for deterioration") for m in NON_ENZYME
}
"""The note of a measure missing at either assessment (one per measure: a note is frozen)."""


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is True and b is True:
        return True
    return None


def _or(values: Iterable[bool | None]) -> bool | None:
    result: bool | None = False
    for v in values:
        if v is True:
            return True
        if v is not False:
            result = None
    return result


@record
class Confirmation:
    """Confirmed deterioration over a sequence of follow-up assessments: ``confirmed_on`` is the
    date of the second of the first two consecutive deteriorations; ``status`` per assessment is
    True (confirmed at or before it), False (not), or None (cannot tell: missing data)."""

    confirmed_on: date | None
    status: tuple[tuple[date, bool | None], ...]


def confirm(results: Sequence[DeteriorationResult]) -> Confirmation:
    """Deterioration at two consecutive follow-up assessments confirms it, dated the second."""
    status: list[tuple[date, bool | None]] = []
    confirmed_on: date | None = None
    unknown = False  # could a confirmation have happened already, hidden by missing data?
    for i, current in enumerate(results):
        if confirmed_on is None and i > 0:
            prev = results[i - 1].deteriorated
            pair = _and(prev, current.deteriorated)
            if pair is True:
                confirmed_on = current.day
            elif pair is None:
                unknown = True
        if confirmed_on is not None:
            status.append((current.day, True))
        else:
            status.append((current.day, None if unknown else False))
    return Confirmation(confirmed_on, tuple(status))


def is_responder(tis: TisResult, confirmed: bool | None) -> bool | None:
    """ProDERM responder: TIS ≥ the minimal threshold and no confirmed deterioration at or
    before the assessment. None when missing data leaves it open."""
    minimal = THRESHOLDS[tis.population][0]
    if confirmed is True or tis.upper < minimal:
        return False
    if tis.lower >= minimal and confirmed is False:
        return True
    return None
