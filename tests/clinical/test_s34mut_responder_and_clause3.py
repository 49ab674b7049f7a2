"""Audit s34mut: mutation survivors in deterioration.py (clinical spec §3).

- Responder needs TIS ≥ the minimal threshold: a TIS of exactly 20 (adult) is a responder, and a
  partial TIS whose upper bound is exactly 20 leaves it open (never "not a responder").
- "Any 3 of the 5 non-enzyme measures worse by ≥ 30 %": with two worse and one missing, a third
  could be worse, so the clause (and deterioration) is unknown, not False.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fhirtis.clinical.deterioration import assess_deterioration, is_responder
from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.tis import Category, compute_tis
from tests.clinical.helpers import av

P = Policy()
ADULT = Population.ADULT
BASE: dict[str, object] = dict(
    pga="10.0", ptga="10.0", mmt8_80=40, haq="1.5", ck=("1000", "200"), extramuscular="5.0"
)


def test_a_tis_of_exactly_the_minimal_threshold_is_a_responder() -> None:
    # PGA 10 → 7.5 (25 %: 15), PtGA 10 → 7.5 (25 %: 5), the rest unchanged: TIS 20, minimal.
    follow = {**BASE, "pga": "7.5", "ptga": "7.5"}
    r = compute_tis(av(**BASE), av(**follow), ADULT, P)  # type: ignore[arg-type]
    assert r.tis == Decimal(20)
    assert r.category is Category.MINIMAL
    assert is_responder(r, False) is True
    assert is_responder(r, True) is False


def test_a_partial_tis_whose_upper_bound_is_exactly_the_minimal_threshold_is_open() -> None:
    # PGA 10 → 9 (10 %: 7.5), PtGA 10 → 8 (20 %: 5); enzyme missing at both (0 to 7.5).
    base = {k: v for k, v in BASE.items() if k != "ck"}
    follow = {**base, "pga": "9.0", "ptga": "8.0"}
    r = compute_tis(av(**base), av(**follow), ADULT, P)  # type: ignore[arg-type]
    assert r.tis is None
    assert (r.lower, r.upper) == (Decimal("12.5"), Decimal(20))
    # could be 20 (a responder) or 12.5 (not one): unknown, never False
    assert is_responder(r, False) is None


def test_two_worse_by_30_percent_and_one_missing_leave_clause3_open() -> None:
    base = dict(pga=3, ptga=3, mmt8_80=60, haq=1, extramuscular=2)
    # PGA 3 → 3.9 (30 % but 0.9 cm), MMT 60 → 42 (30 %); PtGA missing at follow-up.
    follow = dict(pga="3.9", mmt8_80=42, haq=1, extramuscular=2)
    r = assess_deterioration(
        date(2024, 3, 1),
        av(**base).values,
        av(**follow).values,  # type: ignore[arg-type]
        P,
    )
    assert r.clauses["pga+mmt8"] is False
    assert r.clauses["extramuscular"] is False
    assert r.clauses["any-3-of-5"] is None
    assert r.deteriorated is None
    # with PtGA present and unchanged, two of five is not three: False
    r2 = assess_deterioration(
        date(2024, 3, 1),
        av(**base).values,
        av(**{**follow, "ptga": 3}).values,  # type: ignore[arg-type]
        P,
    )
    assert r2.clauses["any-3-of-5"] is False
    assert r2.deteriorated is False
