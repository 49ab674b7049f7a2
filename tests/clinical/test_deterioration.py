"""Deterioration, confirmation and responder (clinical spec §3)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from fhirtis.clinical.deterioration import (
    DeteriorationResult,
    assess_deterioration,
    confirm,
    is_responder,
)
from fhirtis.clinical.policy import Policy, Population, WorseningBasis
from fhirtis.clinical.tis import compute_tis
from tests.clinical.helpers import av

P = Policy()
DAY = date(2024, 3, 1)
BASE = dict(pga=3, ptga=3, mmt8_80=60, haq=1, extramuscular=2)


def _det(follow: dict[str, object], base: dict[str, object] = BASE, policy: Policy = P):
    return assess_deterioration(
        DAY,
        av(**base).values,
        av(**follow).values,
        policy,  # type: ignore[arg-type]
    )


def test_clause1_pga_2cm_and_mmt_20_percent() -> None:
    r = _det({**BASE, "pga": 5, "mmt8_80": 48})
    assert r.clauses["pga+mmt8"] is True
    assert r.deteriorated is True
    assert r.worsening[next(iter(r.worsening))].basis is WorseningBasis.RELATIVE


@pytest.mark.parametrize(
    ("pga", "mmt"),
    [("4.99", 48), (5, 49)],  # PGA 1.99 cm worse; MMT 11/60 = 18.3 % worse
)
def test_clause1_just_short(pga: object, mmt: object) -> None:
    r = _det({**BASE, "pga": pga, "mmt8_80": mmt})
    assert r.clauses["pga+mmt8"] is False
    assert r.deteriorated is False


def test_clause2_extramuscular_2cm() -> None:
    assert _det({**BASE, "extramuscular": 4}).clauses["extramuscular"] is True
    assert _det({**BASE, "extramuscular": "3.9"}).clauses["extramuscular"] is False


def test_clause3_three_of_five_by_30_percent_relative() -> None:
    # PtGA 3 → 3.9 (30 %), HAQ 1 → 1.3 (30 %), MMT 60 → 42 (30 %): three of five.
    r = _det({**BASE, "ptga": "3.9", "haq": "1.3", "mmt8_80": 42})
    assert r.clauses["any-3-of-5"] is True
    assert r.clauses["pga+mmt8"] is False
    two = _det({**BASE, "ptga": "3.9", "haq": "1.3", "mmt8_80": 43})
    assert two.clauses["any-3-of-5"] is False
    assert two.deteriorated is False


def test_zero_baseline_uses_range_basis() -> None:
    base = {**BASE, "haq": 0, "ptga": 0}
    r = _det({**base, "haq": "0.9", "ptga": 3, "mmt8_80": 42}, base)
    haq = next(w for w in r.worsening.values() if w.measure.value == "haq")
    assert haq.basis is WorseningBasis.ABSOLUTE
    assert haq.percent == 30
    assert r.clauses["any-3-of-5"] is True


def test_absolute_basis_policy() -> None:
    policy = Policy(worsening_basis=WorseningBasis.ABSOLUTE)
    # Relative: 3 → 3.9 is 30 %; absolute: 0.9/10 = 9 %.
    r = _det({**BASE, "ptga": "3.9", "haq": "1.3", "mmt8_80": 42}, policy=policy)
    assert r.clauses["any-3-of-5"] is False


def test_missing_measures_leave_it_unknown() -> None:
    r = _det({"ptga": "3.9", "haq": "1.3"})
    assert r.clauses["any-3-of-5"] is None
    assert r.clauses["pga+mmt8"] is None
    assert r.deteriorated is None
    assert any(n.code == "missing" for n in r.notes)


def _results(*flags: bool | None) -> list[DeteriorationResult]:
    return [
        DeteriorationResult(DAY + timedelta(weeks=4 * i), f, {}, {}, ())
        for i, f in enumerate(flags)
    ]


def test_confirmed_needs_two_consecutive() -> None:
    c = confirm(_results(False, True, True, False))
    assert c.confirmed_on == DAY + timedelta(weeks=8)
    assert [s for _, s in c.status] == [False, False, True, True]
    c2 = confirm(_results(True, False, True, False))
    assert c2.confirmed_on is None
    assert [s for _, s in c2.status] == [False, False, False, False]


def test_confirmation_unknown_with_missing_data() -> None:
    c = confirm(_results(True, None, False))
    assert c.confirmed_on is None
    assert [s for _, s in c.status] == [False, None, None]


def test_responder_rule() -> None:
    base = av(pga=6, ptga=7, mmt8_150=100, haq="1.5", extramuscular=4, ck=(3000, 200))
    follow = av(pga=3, ptga=5, mmt8_150=130, haq="1.2", extramuscular=3, ck=(1200, 200))
    tis = compute_tis(base, follow, Population.ADULT, P)
    assert is_responder(tis, False) is True
    assert is_responder(tis, True) is False
    assert is_responder(tis, None) is None
    flat = compute_tis(base, base, Population.ADULT, P)
    assert flat.tis == Decimal(0)
    assert is_responder(flat, False) is False


JUVENILE_BASE = dict(pga=3, ptga=3, cmas=40, chaq=1, das=10)


@pytest.mark.parametrize(("das", "clause"), [(9, False), (10, False), (11, None)])
def test_clause2_with_das_is_false_when_das_did_not_worsen(das: int, clause: bool | None) -> None:
    """§3 clause 2 is "extramuscular worse by ≥ 2 cm", a VAS rule. A juvenile patient's DAS
    (0–20, §1) that improved or held cannot be worse by 2 cm: the clause is false, and with
    every other measure better, deterioration is false (it was unknown at every assessment, so
    no juvenile scored with DAS was ever a responder). A DAS that worsened leaves it unknown,
    with the note saying why."""
    r = _det({**JUVENILE_BASE, "pga": 2, "das": das}, base=JUVENILE_BASE)
    assert r.clauses["extramuscular"] is clause
    assert (r.deteriorated is False) is (clause is False)
    assert any(n.code == "not-vas" for n in r.notes) is (clause is None)
