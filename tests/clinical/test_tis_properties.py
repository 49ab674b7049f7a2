"""Property tests of the TIS (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fhirtis.clinical.facts import Measure
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import (
    _CATEGORY_ORDER,
    AssessmentValues,
    category_for,
    compute_tis,
)
from tests.clinical.helpers import av

P = Policy()


def _dec(lo: int, hi: int, places: int = 1) -> st.SearchStrategy[str]:
    scale = 10**places
    return st.integers(lo * scale, hi * scale).map(lambda n: str(Decimal(n) / scale))


VISIT = st.fixed_dictionaries(
    {
        "pga": _dec(0, 10),
        "ptga": _dec(0, 10),
        "mmt8_150": _dec(0, 150, 0),
        "haq": _dec(0, 3, 3),
        "extramuscular": _dec(0, 10),
        "ck": st.tuples(_dec(1, 20000, 0), st.just("200")),
    }
)
RANGES = {
    "pga": (0, 10, False),
    "ptga": (0, 10, False),
    "mmt8_150": (0, 150, True),
    "haq": (0, 3, False),
    "extramuscular": (0, 10, False),
}
POP = st.sampled_from(list(Population))


def _tis(base: dict[str, object], follow: dict[str, object], pop: Population) -> Decimal:
    r = compute_tis(av(**base), av(**follow), pop, P)  # type: ignore[arg-type]
    assert r.tis is not None
    return r.tis


@settings(max_examples=300, deadline=None)
@given(VISIT, VISIT, POP)
def test_tis_in_range_and_multiple_of_2_5(
    base: dict[str, object], follow: dict[str, object], pop: Population
) -> None:
    tis = _tis(base, follow, pop)
    assert 0 <= tis <= 100
    assert tis % Decimal("2.5") == 0


@settings(max_examples=300, deadline=None)
@given(VISIT, VISIT, st.sampled_from(sorted(RANGES)), st.floats(0, 1), POP)
def test_improving_one_measure_never_lowers_tis(
    base: dict[str, object],
    follow: dict[str, object],
    key: str,
    fraction: float,
    pop: Population,
) -> None:
    lo, hi, higher_better = RANGES[key]
    current = Decimal(str(follow[key]))
    bound = Decimal(hi if higher_better else lo)
    step = (bound - current) * Decimal(str(round(fraction, 3)))
    better = dict(follow)
    better[key] = str(current + step)
    assert _tis(base, better, pop) >= _tis(base, follow, pop)


@settings(max_examples=300, deadline=None)
@given(VISIT, VISIT, st.sets(st.sampled_from([*RANGES, "ck"]), min_size=1), st.booleans(), POP)
def test_partial_interval_contains_every_completion(
    base: dict[str, object],
    follow: dict[str, object],
    drop: set[str],
    from_baseline: bool,
    pop: Population,
) -> None:
    full = _tis(base, follow, pop)
    cut_base = {k: v for k, v in base.items() if not (from_baseline and k in drop)}
    cut_follow = {k: v for k, v in follow.items() if from_baseline or k not in drop}
    r = compute_tis(av(**cut_base), av(**cut_follow), pop, P)  # type: ignore[arg-type]
    assert r.partial
    assert r.lower <= full <= r.upper
    assert category_for(full, pop) in r.possible_categories
    if r.category is not None:
        assert r.category is category_for(full, pop)
    assert set(r.missing_measures) <= set(Measure)


@given(st.integers(0, 40))
def test_juvenile_category_never_above_adult(steps: int) -> None:
    tis = Decimal("2.5") * steps
    adult = _CATEGORY_ORDER.index(category_for(tis, Population.ADULT))
    juvenile = _CATEGORY_ORDER.index(category_for(tis, Population.JUVENILE))
    assert juvenile <= adult


def test_empty_assessments_are_fully_partial() -> None:
    r = compute_tis(AssessmentValues(), AssessmentValues(), Population.ADULT, P)
    assert (r.lower, r.upper) == (0, 100)
    assert len(r.possible_categories) == 4
    assert r.category is None
