"""The ACR/EULAR Total Improvement Score (clinical spec §2).

All arithmetic is exact: values arrive as :class:`~decimal.Decimal` and every ratio is a
:class:`~fractions.Fraction`, so PGA 2.2 → 0.7 is exactly 15 % and lands in the >5–15 band.
Nothing is rounded before banding; rounding happens only when a percent is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from fhirtis.clinical.decimals import percent_of
from fhirtis.clinical.facts import ENZYMES, MEASURES, Instrument, Measure, MeasureValue
from fhirtis.clinical.frozen import record
from fhirtis.clinical.measures import (
    ALLOWED,
    EnzymeChoice,
    check_value,
    choose_enzyme,
    spec_for,
    usable_uln,
)
from fhirtis.clinical.notes import Note, missing, warning
from fhirtis.clinical.policy import EnzymeChange, EnzymeNormalBaseline, Policy, Population

_D = Decimal
_ZERO = _D(0)

# Upper band edges, inclusive; the last band (above the last edge) is open. [2, Table 3]
STANDARD_EDGES: tuple[Fraction, ...] = (Fraction(5), Fraction(15), Fraction(25), Fraction(40))
MMT_EDGES: tuple[Fraction, ...] = (Fraction(2), Fraction(10), Fraction(20), Fraction(30))

LEVEL_SCORES: Mapping[Measure, tuple[Decimal, ...]] = {
    Measure.PGA: (_D(0), _D("7.5"), _D(15), _D("17.5"), _D(20)),
    Measure.PTGA: (_D(0), _D("2.5"), _D(5), _D("7.5"), _D(10)),
    Measure.MMT8: (_D(0), _D(10), _D(20), _D("27.5"), _D("32.5")),
    Measure.HAQ: (_D(0), _D(5), _D("7.5"), _D("7.5"), _D(10)),
    Measure.ENZYME: (_D(0), _D("2.5"), _D(5), _D("7.5"), _D("7.5")),
    Measure.EXTRAMUSCULAR: (_D(0), _D("7.5"), _D("12.5"), _D(15), _D(20)),
}
MAX_SCORE: Mapping[Measure, Decimal] = {m: scores[-1] for m, scores in LEVEL_SCORES.items()}


class Category(StrEnum):
    NONE = "none"
    MINIMAL = "minimal"
    MODERATE = "moderate"
    MAJOR = "major"


_CATEGORY_ORDER = (Category.NONE, Category.MINIMAL, Category.MODERATE, Category.MAJOR)

# Enum members read in hot code, as module constants: in Python 3.11 reading a member off
# its class goes through EnumType.__getattr__, ten times the cost of reading a global.
_NONE, _MINIMAL, _MODERATE, _MAJOR = _CATEGORY_ORDER
_ENZYME, _MMT8, _CHQ_PHS = Measure.ENZYME, Measure.MMT8, Instrument.CHQ_PHS
_ENZYME_MAX = MAX_SCORE[_ENZYME]
_NO_CREDIT, _ABOVE_ULN = EnzymeNormalBaseline.NO_CREDIT, EnzymeChange.ABOVE_ULN

THRESHOLDS: Mapping[Population, tuple[Decimal, Decimal, Decimal]] = {
    Population.ADULT: (_D(20), _D(40), _D(60)),  # [1]
    Population.JUVENILE: (_D(30), _D(45), _D(70)),  # [2]
}


def band_edges(measure: Measure) -> tuple[Fraction, ...]:
    return MMT_EDGES if measure is _MMT8 else STANDARD_EDGES


def _integer_edges(measure: Measure) -> tuple[int, ...]:
    edges = band_edges(measure)
    assert all(edge.denominator == 1 for edge in edges), "the band edges are whole percents"
    return tuple(edge.numerator for edge in edges)


_BANDS: Mapping[Measure, tuple[tuple[int, ...], tuple[Decimal, ...]]] = {
    measure: (_integer_edges(measure), LEVEL_SCORES[measure]) for measure in Measure
}
"""Per measure, its band edges as integers (every edge is a whole percent) and its level
scores: ``percent ≤ edge`` is then ``numerator ≤ edge × denominator``, exactly."""


def level_score(measure: Measure, percent: Fraction) -> Decimal:
    """The level score of a percent improvement. Bands exclude their lower edge and include
    their upper edge; worsening (negative) falls in the first band."""
    edges, scores = _BANDS[measure]
    # percent ≤ edge by exact integer cross-multiplication (the denominator is positive)
    num, den = percent.numerator, percent.denominator
    for i, edge in enumerate(edges):
        if num <= edge * den:
            return scores[i]
    return scores[-1]


def category_for(tis: Decimal, population: Population) -> Category:
    minimal, moderate, major = THRESHOLDS[population]
    if tis >= major:
        return _MAJOR
    if tis >= moderate:
        return _MODERATE
    if tis >= minimal:
        return _MINIMAL
    return _NONE


def categories_between(
    lower: Decimal, upper: Decimal, population: Population
) -> tuple[Category, ...]:
    return _BETWEEN[category_for(lower, population), category_for(upper, population)]


_BETWEEN: Mapping[tuple[Category, Category], tuple[Category, ...]] = {
    (low, high): _CATEGORY_ORDER[i : j + 1]
    for i, low in enumerate(_CATEGORY_ORDER)
    for j, high in enumerate(_CATEGORY_ORDER)
}
""":func:`categories_between` by the categories of the two bounds (made once)."""


@record
class AssessmentValues:
    """The values of one assessment, one per measure. ``enzymes`` holds every lab enzyme of the
    assessment (the most abnormal is chosen at baseline); ``values[Measure.ENZYME]`` is used only
    for the juvenile CHQ-PhS alternative."""

    values: Mapping[Measure, MeasureValue] = field(default_factory=dict)
    enzymes: Mapping[Instrument, MeasureValue] = field(default_factory=dict)


@record
class MeasureScore:
    """One measure's contribution. ``score`` is None when the measure is missing; then
    ``reason`` says why, and the measure counts 0 in ``lower`` and its maximum in ``upper``."""

    measure: Measure
    instrument: Instrument | None
    baseline: MeasureValue | None
    followup: MeasureValue | None
    percent_improvement: Fraction | None
    score: Decimal | None
    max_score: Decimal
    reason: Note | None = None

    @property
    def missing(self) -> bool:
        return self.score is None


@record
class TisResult:
    population: Population
    measures: tuple[MeasureScore, ...]
    lower: Decimal
    upper: Decimal
    category: Category | None
    possible_categories: tuple[Category, ...]
    notes: tuple[Note, ...]
    policy: Mapping[str, str]

    @property
    def partial(self) -> bool:
        return any(m.missing for m in self.measures)

    @property
    def tis(self) -> Decimal | None:
        """The TIS, or None when partial (a partial TIS is never a plain number)."""
        return None if self.partial else self.lower

    @property
    def missing_measures(self) -> tuple[Measure, ...]:
        return tuple(m.measure for m in self.measures if m.missing)

    def measure(self, measure: Measure) -> MeasureScore:
        return next(m for m in self.measures if m.measure is measure)


def percent_improvement_bounded(
    measure: Measure, instrument: Instrument, baseline: Decimal, followup: Decimal
) -> Fraction:
    """Absolute percent change relative to the instrument's range (clinical spec §2.1)."""
    spec = spec_for(measure, instrument)
    assert spec.span is not None, "bounded instruments only"
    change = followup - baseline if spec.higher_is_better else baseline - followup
    return percent_of(change, spec.span)


def _missing_score(
    measure: Measure,
    reason: Note,
    instrument: Instrument | None = None,
    baseline: MeasureValue | None = None,
    followup: MeasureValue | None = None,
) -> MeasureScore:
    return MeasureScore(
        measure, instrument, baseline, followup, None, None, MAX_SCORE[measure], reason
    )


def _instrument_of(*values: MeasureValue | None) -> Instrument | None:
    return next((v.instrument for v in values if v is not None), None)


def _check_pair(
    measure: Measure,
    baseline: MeasureValue | None,
    followup: MeasureValue | None,
    checked: bool = False,
) -> Note | None:
    """Why the pair cannot be compared, or None. ``checked``: both values are known to pass
    :func:`~fhirtis.clinical.measures.check_value` (a course's values, see
    :func:`compute_tis`), which is then not asked again."""
    if baseline is None:
        return missing("missing-baseline", f"{measure.value} missing at baseline")
    if followup is None:
        return missing("missing-followup", f"{measure.value} missing at follow-up")
    if not checked:
        for value in (baseline, followup):
            problem = check_value(value)
            if problem is not None:
                return problem
    if baseline.instrument is not followup.instrument:
        return missing(
            "instrument-mismatch",
            f"{measure.value} measured with {baseline.instrument.value} at baseline and "
            f"{followup.instrument.value} at follow-up; they cannot be compared",
            followup.source,
        )
    return None


_PairScores = dict[tuple[Decimal, Decimal], tuple[Fraction, Decimal]]

_BOUNDED_SCALES: Mapping[tuple[Measure, Instrument], tuple[bool, int, int, _PairScores]] = {
    (measure, instrument): (spec.higher_is_better, *spec.span.as_integer_ratio(), {})
    for measure, instruments in ALLOWED.items()
    for instrument in instruments
    if (spec := spec_for(measure, instrument)).span is not None
}
"""Per bounded scale: whether higher is better, its span as an exact integer ratio (made once,
not for every percent), and its scores: (percent improvement, level score) by (baseline value,
follow-up value), made once per distinct pair (a cohort's scores repeat). Keyed on the values'
equality, which is enough: equal Decimals have the same exact integer ratio, hence the same
percent (a Fraction, immutable and canonical) and the same level score."""
_PAIR_SCORES_LIMIT = 16_384


def score_bounded(
    measure: Measure,
    baseline: MeasureValue | None,
    followup: MeasureValue | None,
    checked: bool = False,
) -> MeasureScore:
    problem = _check_pair(measure, baseline, followup, checked)
    if problem is not None:
        instrument = _instrument_of(baseline, followup)
        return _missing_score(measure, problem, instrument, baseline, followup)
    assert baseline is not None and followup is not None
    scale = _BOUNDED_SCALES.get((measure, baseline.instrument))
    if scale is None:  # not a bounded scale: as percent_improvement_bounded says
        pct = percent_improvement_bounded(
            measure, baseline.instrument, baseline.value, followup.value
        )
    else:
        higher_is_better, span_n, span_d, scores = scale
        pair = (baseline.value, followup.value)
        known = scores.get(pair)
        if known is None:
            # percent_of(change, span), with the span's integer ratio made once
            change = pair[1] - pair[0] if higher_is_better else pair[0] - pair[1]
            change_n, change_d = change.as_integer_ratio()
            pct = Fraction(change_n * 100 * span_d, change_d * span_n)
            known = (pct, level_score(measure, pct))
            if len(scores) >= _PAIR_SCORES_LIMIT:
                scores.clear()
            scores[pair] = known
        return MeasureScore(
            measure,
            baseline.instrument,
            baseline,
            followup,
            known[0],
            known[1],
            MAX_SCORE[measure],
        )
    return MeasureScore(
        measure,
        baseline.instrument,
        baseline,
        followup,
        pct,
        level_score(measure, pct),
        MAX_SCORE[measure],
    )


def _enzyme_scored(
    baseline: MeasureValue, followup: MeasureValue, pct: Fraction, score: Decimal | None = None
) -> MeasureScore:
    """The enzyme's score of percent improvement ``pct`` (its level score, unless given)."""
    return MeasureScore(
        _ENZYME,
        baseline.instrument,
        baseline,
        followup,
        pct,
        level_score(_ENZYME, pct) if score is None else score,
        _ENZYME_MAX,
    )


def score_enzyme(
    baseline: MeasureValue | None,
    followup: MeasureValue | None,
    policy: Policy,
    checked: bool = False,
) -> MeasureScore:
    """Relative percent change of the chosen enzyme, with the enzyme [choice]s of the policy."""
    measure = _ENZYME
    problem = _check_pair(measure, baseline, followup, checked)
    if problem is not None:
        instrument = _instrument_of(baseline, followup)
        return _missing_score(measure, problem, instrument, baseline, followup)
    assert baseline is not None and followup is not None
    # Exact rationals as integer pairs (n / d, d > 0): Fraction arithmetic gives the same values
    # but is several times slower; each percent below becomes one Fraction, which reduces it to
    # the same canonical numerator and denominator that Fraction arithmetic would.
    bn, bd = baseline.value.as_integer_ratio()
    fn, fd = followup.value.as_integer_ratio()
    usable = usable_uln(baseline)  # a ULN of 0 or less is no ULN (clinical spec §1)
    uln = None if usable is None else usable.as_integer_ratio()
    normal_at_baseline = uln is not None and bn * uln[1] <= uln[0] * bd
    # (b − f) × 100 = drop / (bd × fd)
    drop = (bn * fd - fn * bd) * 100

    if policy.enzyme_normal_baseline is _NO_CREDIT:
        # a baseline of 0 is at or below every usable ULN (> 0): normal, with or without one
        if normal_at_baseline or bn == 0:
            # (b − f) × 100 / b
            return _enzyme_scored(
                baseline, followup, Fraction(drop, fd * bn) if bn else Fraction(0), _D(0)
            )
        if uln is None:
            # whether it was normal decides between 0 and its score: never guessed (spec §2.1)
            reason = missing(
                "enzyme-uln-unknown",
                "enzyme_normal_baseline=no_credit needs the upper limit of normal at baseline "
                "(an enzyme normal at baseline scores 0)",
                baseline.source,
            )
            return _missing_score(measure, reason, baseline.instrument, baseline, followup)
    if policy.enzyme_change is _ABOVE_ULN:
        if uln is None:
            reason = missing(
                "enzyme-uln-unknown",
                "enzyme_change=above_uln needs the upper limit of normal at baseline",
                baseline.source,
            )
            return _missing_score(measure, reason, baseline.instrument, baseline, followup)
        if normal_at_baseline:  # b ≤ ULN
            reason = missing(
                "enzyme-change-undefined",
                "enzyme_change=above_uln is undefined when the baseline is not above the ULN",
                baseline.source,
            )
            return _missing_score(measure, reason, baseline.instrument, baseline, followup)
        # (b − f) × 100 / (b − ULN), where b − ULN = (bn × ud − un × bd) / (bd × ud) > 0
        un, ud = uln
        return _enzyme_scored(baseline, followup, Fraction(drop * ud, fd * (bn * ud - un * bd)))
    if bn == 0:
        reason = missing(
            "enzyme-baseline-zero",
            "relative change is undefined for a baseline enzyme of 0",
            baseline.source,
        )
        return _missing_score(measure, reason, baseline.instrument, baseline, followup)
    return _enzyme_scored(baseline, followup, Fraction(drop, fd * bn))  # (b − f) × 100 / b


def compute_tis(
    baseline: AssessmentValues,
    followup: AssessmentValues,
    population: Population,
    policy: Policy,
    enzyme: EnzymeChoice | None = None,
    *,
    checked: bool = False,
) -> TisResult:
    """The TIS of ``followup`` against ``baseline``.

    ``enzyme`` is the most abnormal enzyme chosen once at baseline; when None it is chosen here
    from ``baseline.enzymes``. The chosen enzyme is followed at that enzyme only: if it is missing
    at follow-up the enzyme measure is missing (enzymes are never switched).

    ``checked``: every value of both assessments passes
    :func:`~fhirtis.clinical.measures.check_value` (an assessment of a course, whose values
    are checked when grouped): the same answer without asking check_value again.
    """
    notes: list[Note] = []
    scores: list[MeasureScore] = []
    base_values, follow_values = baseline.values, followup.values
    # the sums of the scores and of the missing measures' maxima, in the order of MEASURES
    lower = missing_max = _ZERO
    for measure in MEASURES:
        if measure is _ENZYME:
            score = _enzyme_measure(baseline, followup, policy, enzyme, notes, checked)
        else:
            score = score_bounded(
                measure, base_values.get(measure), follow_values.get(measure), checked
            )
        scores.append(score)
        if score.score is None:
            missing_max += score.max_score
        else:
            lower += score.score
    upper = lower + missing_max
    possible = categories_between(lower, upper, population)
    category = possible[0] if len(possible) == 1 else None
    return TisResult(
        population=population,
        measures=tuple(scores),
        lower=lower,
        upper=upper,
        category=category,
        possible_categories=possible,
        notes=tuple(notes),
        policy=policy.as_record(),
    )


def _enzyme_measure(
    baseline: AssessmentValues,
    followup: AssessmentValues,
    policy: Policy,
    enzyme: EnzymeChoice | None,
    notes: list[Note],
    checked: bool = False,
) -> MeasureScore:
    alt_b = baseline.values.get(_ENZYME)
    alt_f = followup.values.get(_ENZYME)
    if alt_b is not None or alt_f is not None:
        # The juvenile CHQ-PhS alternative (a bounded scale) in place of a lab enzyme.
        result = score_bounded(_ENZYME, alt_b, alt_f, checked)
        if result.instrument is _CHQ_PHS:
            notes.append(
                warning(
                    "chq-phs-range-assumed",
                    "CHQ-PhS scored on an assumed 0–100 range (the clinical specification gives "
                    "none)",
                )
            )
        return result
    choice = enzyme if enzyme is not None else choose_enzyme(baseline.enzymes, policy)
    notes.extend(choice.notes)
    if choice.instrument is None:
        reason = next(
            (n for n in choice.notes if n.severity.value == "missing"),
            missing("enzyme-missing", "no muscle enzyme at baseline"),
        )
        return _missing_score(_ENZYME, reason)
    assert choice.instrument in ENZYMES
    b = baseline.enzymes.get(choice.instrument)
    f = followup.enzymes.get(choice.instrument)
    if f is None and b is not None:
        reason = missing(
            "missing-followup",
            f"{choice.instrument.value} (the most abnormal enzyme at baseline) missing at "
            "follow-up; enzymes are never switched",
        )
        return _missing_score(_ENZYME, reason, choice.instrument, b, None)
    return score_enzyme(b, f, policy, checked)


def percent_text(value: Fraction | None, places: int = 4) -> Decimal | None:
    """A percent for display, rounded half-even to ``places`` (the score used the exact value)."""
    if value is None:
        return None
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal(1).scaleb(-places)
    )
