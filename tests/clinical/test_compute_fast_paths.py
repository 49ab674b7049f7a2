"""The clinical core's fast paths agree with the plain definitions they replace, on the inputs
where the two could differ (same-day ties, time zones, missing issued times, several policies)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fhirtis.clinical.decimals import format_decimal
from fhirtis.clinical.deterioration import assess_deterioration
from fhirtis.clinical.facts import Instrument, Measure, MeasureValue, ResultStatus
from fhirtis.clinical.measures import _SPECS, check_value, spec_for
from fhirtis.clinical.policy import Policy, Population, WorseningBasis
from fhirtis.clinical.thrombosis import (
    RiskInputs,
    _latest_pga,
    _pga_rank,
    _Prepared,
    _texts_of,
    _usable_pga,
    applicable_max_rate,
    risk_profile,
)
from fhirtis.clinical.tis import compute_tis
from tests.clinical.helpers import D, av

from .test_thrombosis import PATIENT_SRC, YOUNG, at

DAY0 = date(2024, 3, 1)

_issued = st.one_of(
    st.none(),
    st.builds(
        lambda minutes, offset, aware: (
            datetime(2024, 3, 1, tzinfo=None) + timedelta(minutes=minutes)
            if not aware
            else datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=offset)))
            + timedelta(minutes=minutes)
        ),
        st.integers(0, 3),
        st.integers(-2, 2),
        st.booleans(),
    ),
)
_pga_value = st.builds(
    lambda day, cm, status, issued, src, instrument: MeasureValue(
        Measure.PGA,
        instrument,
        D(cm),
        DAY0 + timedelta(days=day),
        f"Observation/{src}",
        status,
        issued,
    ),
    st.integers(0, 4),
    st.sampled_from(["0", "2.5", "4", "4.0", "6", "11"]),
    st.sampled_from(list(ResultStatus)),
    _issued,
    st.integers(0, 3),
    st.sampled_from([Instrument.VAS, Instrument.VAS, Instrument.LIKERT]),
)


def _latest_pga_by_max(
    values: tuple[MeasureValue, ...], on: date
) -> tuple[MeasureValue | None, bool]:
    """The plain definition: the first best-ranked usable VAS PGA on or before ``on``, and
    whether the usable values of its day disagree."""
    usable = [v for v in _usable_pga(values) if v.day <= on]
    if not usable:
        return None, False
    best = max(usable, key=_pga_rank)  # max keeps the first of equal ranks
    return best, len({v.value for v in _usable_pga(values) if v.day == best.day}) > 1


@given(st.lists(_pga_value, max_size=8).map(tuple), st.integers(-1, 5))
def test_latest_pga_by_day_is_the_best_ranked_value(
    values: tuple[MeasureValue, ...], day: int
) -> None:
    prepared = _Prepared.of(RiskInputs(YOUNG, PATIENT_SRC, pga=values), Policy())
    on = DAY0 + timedelta(days=day)
    expected_value, expected_disagree = _latest_pga_by_max(values, on)
    for _ in range(2):  # the second answer comes from the per-day memo
        found, disagree = _latest_pga(prepared, on)
        assert found is expected_value
        assert disagree == expected_disagree


def test_policy_texts_follow_each_policy_object() -> None:
    default, strict = Policy(), Policy(max_rate_mg_kg_min=D("3.25"), obesity_bmi=D("27.50"))
    for policy in (default, strict, default):
        texts = _texts_of(policy)
        assert texts.max_rate == format_decimal(policy.max_rate_mg_kg_min)
        assert texts.max_rate_with_risk == format_decimal(policy.max_rate_with_risk_mg_kg_min)
        assert texts.obesity_bmi == format_decimal(policy.obesity_bmi)
        assert texts.inflammation_pga_cm == format_decimal(policy.inflammation_pga_cm)
    limit = applicable_max_rate(risk_profile(at(0), RiskInputs(YOUNG, PATIENT_SRC)), strict)
    assert limit.reason.startswith("3.25 mg/kg/min applicable: no thrombosis risk factor")


def test_latest_pga_on_a_day_before_every_value_is_none() -> None:
    value = MeasureValue(Measure.PGA, Instrument.VAS, D(6), DAY0, "Observation/p", issued=None)
    prepared = _Prepared.of(RiskInputs(YOUNG, PATIENT_SRC, pga=(value,)), Policy())
    assert _latest_pga(prepared, DAY0 - timedelta(days=1)) == (None, False)
    assert _latest_pga(prepared, DAY0) == (value, False)


def test_check_value_range_verdict_is_in_range() -> None:
    """check_value compares with the bounds held beside each scale; its verdict is the scale's
    in_range, at and around every edge (and for infinities)."""
    for (measure, instrument), spec in _SPECS.items():
        edges = [spec.low, *(() if spec.high is None else (spec.high,))]
        for edge in edges:
            for number in (
                edge - D("0.001"),
                edge,
                edge + D("0.001"),
                D("Infinity"),
                D("-Infinity"),
            ):
                value = MeasureValue(measure, instrument, number, DAY0, "Observation/x")
                problem = check_value(value)
                out_of_range = problem is not None and problem.code == "out-of-range"
                assert out_of_range == (not spec.in_range(number)), (measure, instrument, number)


def test_policy_records_follow_the_policy_object_and_are_fresh_dicts() -> None:
    """as_record is made once per policy object (frozen), and every call gets its own dict."""
    policy = Policy()
    first, second = policy.as_record(), policy.as_record()
    assert first == second and first is not second
    first["target_dose_g_per_kg"] = "changed"
    assert policy.as_record()["target_dose_g_per_kg"] == "2"
    other = Policy(target_dose_g_per_kg=D("1.5"))
    assert other.as_record()["target_dose_g_per_kg"] == "1.5"
    assert Policy().as_record() == second


# -- a course's comparisons: checked values, remembered percents ------------------------------

_COURSE_VALUES = st.fixed_dictionaries(
    {
        "pga": st.sampled_from(["0", "2", "2.0", "3.5", "9.9"]),
        "ptga": st.sampled_from(["0", "1", "4", "10"]),
        "mmt8_80": st.sampled_from(["0", "40", "40.0", "72", "80"]),
        "haq": st.sampled_from(["0", "0.5", "1.25", "3"]),
        "extramuscular": st.sampled_from(["0", "1", "5.5"]),
        "ck": st.tuples(st.sampled_from(["90", "300", "1200.5"]), st.sampled_from(["200"])),
    }
)


@given(_COURSE_VALUES, _COURSE_VALUES, st.sampled_from(list(WorseningBasis)))
def test_checked_comparisons_agree_with_the_checking_ones(
    base: dict[str, Any], follow: dict[str, Any], basis: WorseningBasis
) -> None:
    """For values that pass check_value (a course's), ``checked=True`` gives the same TIS and
    deterioration, field by field; the remembered percents are those of the first call."""
    policy = Policy(worsening_basis=basis)
    b, f = av(**base), av(**follow)
    for _ in range(2):  # the second time from the memos
        fast_tis = compute_tis(b, f, Population.ADULT, policy, checked=True)
        assert fast_tis == compute_tis(b, f, Population.ADULT, policy)
        fast = assess_deterioration(DAY0, b.values, f.values, policy, checked=True)
        plain = assess_deterioration(DAY0, b.values, f.values, policy)
        assert fast == plain
        for measure, w in fast.worsening.items():
            # the definition (clinical spec §3), computed here without the memo
            bv, fv = b.values[measure].value, f.values[measure].value
            spec = spec_for(measure, w.instrument)
            amount = bv - fv if spec.higher_is_better else fv - bv
            relative = basis is WorseningBasis.RELATIVE and bv != 0
            assert spec.span is not None
            whole = bv if relative else spec.span
            expected = Fraction(amount) * 100 / Fraction(whole)
            assert (str(w.amount), w.percent, w.basis) == (
                str(amount),  # its own digits (2.0 − 1 is 1.0): not shared by equal pairs
                expected,
                WorseningBasis.RELATIVE if relative else WorseningBasis.ABSOLUTE,
            )
        for score in fast_tis.measures:
            if score.measure is not Measure.ENZYME and score.percent_improvement is not None:
                bv, fv = b.values[score.measure].value, f.values[score.measure].value
                spec = spec_for(score.measure, score.instrument)  # type: ignore[arg-type]
                assert spec.span is not None
                change = fv - bv if spec.higher_is_better else bv - fv
                assert score.percent_improvement == Fraction(change) * 100 / Fraction(spec.span)


def test_equal_values_with_other_digits_keep_their_own_amount() -> None:
    policy = Policy()
    first = assess_deterioration(DAY0, av(pga="2").values, av(pga="5").values, policy)
    again = assess_deterioration(DAY0, av(pga="2.0").values, av(pga="5.00").values, policy)
    assert str(first.worsening[Measure.PGA].amount) == "3"
    assert str(again.worsening[Measure.PGA].amount) == "3.00"
    assert first.worsening[Measure.PGA].percent == again.worsening[Measure.PGA].percent == 150
