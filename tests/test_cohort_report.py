"""The cohort (registry) report: hand-made summary records with answers worked out by hand."""

from __future__ import annotations

import csv
import json
import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline import jsonout
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.registry.report import (
    CSV_COLUMNS,
    PLOT_FILES,
    Proportion,
    Report,
    ReportInputError,
    build_report,
    figures,
    load_summaries,
    print_report,
    round_half_up,
    spread,
    wilson_interval,
    write_csv,
    write_json,
    write_plots,
)
from fhirtis.settings import Settings
from tests.synthetic import make_cohort

Json = dict[str, Any]
BASE = date(2024, 1, 1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def visit(
    week: int,
    tis: float | None = None,
    *,
    lower: float | None = None,
    upper: float | None = None,
    confirmed: bool | None = False,
    category: str | None = None,
) -> Json:
    """One follow-up assessment as `patient_summary` writes it (category left to the report
    unless given, so that tests of the report do not depend on the record's own category)."""
    partial = tis is None
    return {
        "date": (BASE + timedelta(days=7 * week)).isoformat(),
        "tis": tis,
        "tis_lower": lower if partial else tis,
        "tis_upper": upper if partial else tis,
        "partial": partial,
        "category": category,
        "possible_categories": [],
        "missing_measures": ["haq"] if partial else [],
        "measures": {},
        "deterioration": bool(confirmed),
        "confirmed_deterioration": confirmed,
        "responder": None,
    }


def record(
    ref: str,
    visits: list[Json],
    *,
    population: str = "adult",
    rates: list[float | None] | None = None,
    grams: float | None = 0.0,
    g_per_kg: float | None = 0.0,
    events: list[list[int]] | None = None,
    risk: list[str] | None = None,
    findings: int = 0,
    confirmed_on: str | None = None,
) -> Json:
    rates = rates or []
    cycles: list[Json] = [
        {
            "index": i,
            "start": f"2024-01-{i:02d}T09:00:00+00:00",
            "end": f"2024-01-{i:02d}T13:00:00+00:00",
            "administrations": 2,
            "in_progress": 0,
            "grams": 140,
            "g_per_kg": 2,
            "dosing_weight_kg": 70,
            "dosing_weight_basis": "actual",
            "max_rate_mg_kg_min": rate,
            "warnings": [],
        }
        for i, rate in enumerate(rates, start=1)
    ]
    return {
        "patient": f"Patient/{ref}",
        "as_of": "2024-06-01T00:00:00+00:00",
        "population": population,
        "population_reason": "adult-default",
        "baseline": BASE.isoformat(),
        "assessments": visits,
        "confirmed_deterioration": confirmed_on,
        "ivig": {
            "cycle_count": len(cycles),
            "cumulative_grams": grams if cycles else 0,
            "cumulative_g_per_kg": g_per_kg if cycles else 0,
            "cycles": cycles,
        },
        "thrombosis": {
            "risk_factors": risk or [],
            "risk_evidence": {},
            "max_rate_now": 4,
            "rate_findings": [
                {"administration": f"MedicationAdministration/{ref}-{i}", "rate": 5, "limit": 4}
                for i in range(findings)
            ],
            "associated_events": [
                {
                    "event": f"Condition/{ref}-tee{k}",
                    "kind": "deep-vein-thrombosis",
                    "onset": "2024-02-01",
                    "early": k == 0,
                    "cycles": list(cyc),
                    "suspects": [],
                }
                for k, cyc in enumerate(events or [])
            ],
            "history_events": [],
        },
        "issues": [],
        "notes": [],
        "policy": {},
    }


def ten_patients() -> list[Json]:
    """Ten adults; the expected figures are worked out in each test.

    last TIS:  p01 10 none, p02 17.5 none, p03 20 minimal (edge), p04 37.5 minimal,
    p05 40 moderate (edge), p06 57.5 moderate, p07 60 major (edge),
    p08 partial [62.5, 72.5] (major by its interval), p09 partial [12.5, 22.5] (none or minimal:
    undetermined), p10 45 moderate with a confirmed deterioration.
    Cycles (max rate mg/kg/min): p02 3 (one rate unknown), p01 2, p03 3, p04-p06 4, p07 5,
    p08 5 cycles all at 5, p09 6 cycles 4,4,4,4.5,4.5,4.5, p10 none."""
    low = 3.0
    return [
        record("p01", [visit(4, 5), visit(8, 10)], rates=[low] * 2, grams=280, g_per_kg=4,
               risk=["advanced-age", "cardiovascular"]),
        record("p02", [visit(4, 17.5)], rates=[low, None, low], grams=None, g_per_kg=None),
        record("p03", [visit(8, 20)], rates=[low] * 3, grams=420, g_per_kg=6),
        record("p04", [visit(8, 37.5)], rates=[low] * 4, grams=560, g_per_kg=8, events=[[1]]),
        record("p05", [visit(8, 40)], rates=[low] * 4, grams=560, g_per_kg=8),
        record("p06", [visit(8, 57.5)], rates=[low] * 4, grams=560, g_per_kg=8),
        record("p07", [visit(8, 60)], rates=[low] * 5, grams=700, g_per_kg=10),
        record("p08", [visit(8, lower=62.5, upper=72.5)], rates=[5.0] * 5, grams=700,
               g_per_kg=10, events=[[2]], risk=["cardiovascular"], findings=5),
        record("p09", [visit(16, lower=12.5, upper=22.5)],
               rates=[4.0, 4.0, 4.0, 4.5, 4.5, 4.5], grams=840, g_per_kg=12,
               events=[[3], [3, 4]], risk=["obesity"], findings=3),
        record("p10", [visit(4, 50, confirmed=False), visit(8, 45, confirmed=True)],
               confirmed_on=(BASE + timedelta(weeks=8)).isoformat()),
    ]  # fmt: skip


@pytest.fixture
def report() -> Report:
    return build_report(ten_patients())


# --- statistics ---------------------------------------------------------------------------


def test_wilson_interval_by_hand() -> None:
    # Wilson: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964; the
    # reference values were computed with 40-digit decimals (6/9: 35.4–87.9 %, 6/10: 31.3–83.2 %)
    assert wilson_interval(6, 9) == pytest.approx((0.354202, 0.879416), abs=1e-6)
    assert wilson_interval(6, 10) == pytest.approx((0.312674, 0.831820), abs=1e-6)
    z = 1.959963984540054
    p, n = 3 / 9, 9
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(3, 9) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 14) == pytest.approx((0.0, 0.215311), abs=1e-6)
    assert wilson_interval(5, 5)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_wilson_interval_ends_are_exact() -> None:
    """0 of n has a lower bound of exactly 0 and n of n an upper bound of exactly 1 (the
    floating-point formula misses them, e.g. 0/5 and 13/13, by an ulp)."""
    for n in range(1, 200):
        assert wilson_interval(0, n)[0] == 0.0, n
        assert wilson_interval(n, n)[1] == 1.0, n


@pytest.mark.parametrize("events", [0, 5])
def test_tee_plot_of_no_event_or_an_event_every_cycle(events: int) -> None:
    """A stratum of 5 cycles with no TEE (or a TEE in each) is plotted: its error bar reaches
    the bar's own height (matplotlib refuses a negative error)."""
    ref = "p"
    patient = record(
        ref, [visit(0, 10)], rates=[2.0] * 5, events=[[i] for i in range(1, 6)][:events]
    )
    figures(build_report([patient]))


def test_rounding_and_spread_are_exact() -> None:
    assert round_half_up(Fraction(1, 8), 2) == Decimal("0.13")  # half-up, not half-even
    assert round_half_up(Fraction(100, 3), 1) == Decimal("33.3")
    assert round_half_up(Fraction(-1, 8), 2) == Decimal("-0.13")
    s = spread([Decimal("2.2"), Decimal("0.7"), Decimal("1.1"), Decimal("3.3")])
    assert s is not None
    # inclusive quartiles of 0.7, 1.1, 2.2, 3.3: (0.7 + 3 × 1.1) / 4 and (3 × 2.2 + 3.3) / 4
    assert (s.n, s.median, s.q1, s.q3) == (4, Decimal("1.65"), Decimal("1.0"), Decimal("2.475"))
    one = spread([5])
    assert one is not None and (one.median, one.q1, one.q3) == (Decimal(5),) * 3
    assert spread([]) is None


# --- response -----------------------------------------------------------------------------


def test_categories_responders_and_ci(report: Report) -> None:
    r = report.last
    assert (report.patients, report.adult, report.juvenile) == (10, 10, 0)
    assert r.evaluable == 10
    assert dict(r.categories) == {
        "none": 2,
        "minimal": 2,
        "moderate": 3,
        "major": 2,
        "undetermined": 1,
    }
    assert r.share("moderate").percent == 30
    assert (r.partial, r.partial_categorised) == (2, 1)
    # responders: p03-p08 (p08: lower 62.5 ≥ 20); non-responders p01, p02, p10 (confirmed);
    # p09 [12.5, 22.5] is undetermined and out of the denominator
    assert (r.responders.count, r.responders.total) == (6, 9)
    assert (r.non_responders, r.responder_undetermined) == (3, 1)
    assert r.responders.text(ci=True) == "6/9 (66.7 %; 95% CI 35.4–87.9)"
    assert r.confirmed_deterioration == 1
    assert (report.confirmed_deterioration.count, report.confirmed_deterioration.total) == (1, 10)
    assert report.warnings == ()


def test_partial_policy_undetermined_counts_every_partial_apart() -> None:
    r = build_report(ten_patients(), partial_policy="undetermined").last
    assert dict(r.categories) == {
        "none": 2,
        "minimal": 2,
        "moderate": 3,
        "major": 1,
        "undetermined": 2,
    }
    assert (r.partial, r.partial_categorised) == (2, 0)
    # the responder rule works on the interval either way
    assert (r.responders.count, r.responders.total) == (6, 9)
    with pytest.raises(ValueError):
        build_report([], partial_policy="guess")  # type: ignore[arg-type]


def test_partial_tis_is_never_a_number(report: Report) -> None:
    row = {r.patient: r for r in report.rows}["Patient/p09"]
    assert row.last_tis is None and row.last_partial is True
    assert (row.last_tis_lower, row.last_tis_upper) == (Decimal("12.5"), Decimal("22.5"))
    assert row.last_category == "undetermined" and row.last_responder is None


def test_juvenile_thresholds_are_applied() -> None:
    juvenile = [
        record("j1", [visit(8, 27.5)], population="juvenile"),  # adult would be minimal
        record("j2", [visit(8, 42.5)], population="juvenile"),  # adult: moderate
        record("j3", [visit(8, 62.5)], population="juvenile"),  # adult: major
        record("j4", [visit(8, 70)], population="juvenile"),
        record("j5", [visit(8, lower=62.5, upper=72.5)], population="juvenile"),
        record("a1", [visit(8, 27.5)]),
    ]
    report = build_report(juvenile)
    assert (report.adult, report.juvenile) == (1, 5)
    assert dict(report.last.categories) == {
        "none": 1,
        "minimal": 2,
        "moderate": 1,
        "major": 1,
        "undetermined": 1,
    }
    rows = {r.patient: r for r in report.rows}
    assert rows["Patient/j1"].last_category == "none"
    assert rows["Patient/a1"].last_category == "minimal"
    assert rows["Patient/j5"].last_category == "undetermined"  # moderate or major
    # responders: j2, j3, j4, j5 (lower 62.5 ≥ 30) and a1 (27.5 ≥ 20); not j1 (27.5 < 30)
    assert (report.last.responders.count, report.last.responders.total) == (5, 6)
    assert rows["Patient/j1"].last_responder is False


def test_response_at_a_named_week() -> None:
    records = [
        record("w1", [visit(4, 10), visit(8, 30), visit(16, 65)]),
        record("w2", [visit(4, 10), visit(12, 45)]),  # 28 days from week 16: outside ±14
        record("w3", [visit(15, 20), visit(17, 45)]),  # 7 days either side: the earlier
        {**record("w4", []), "baseline": None},
    ]
    report = build_report(records, week=16)
    assert report.week is not None
    w = report.week
    assert w.evaluable == 2
    assert dict(w.not_evaluable) == {
        "no assessment within 14 days of week 16": 1,
        "no baseline": 1,
    }
    assert (w.categories["major"], w.categories["minimal"]) == (1, 1)
    rows = {r.patient: r for r in report.rows}
    assert rows["Patient/w3"].week_date == BASE + timedelta(weeks=15)
    assert rows["Patient/w3"].last_category == "moderate"
    assert report.last.evaluable == 3
    assert dict(report.last.not_evaluable) == {"no baseline": 1}


def test_recorded_category_disagreeing_with_the_thresholds_is_reported() -> None:
    report = build_report([record("x", [visit(8, 45, category="major")])])
    assert report.last.categories["moderate"] == 1
    assert len(report.warnings) == 1 and "recorded category major" in report.warnings[0]


# --- IVIG and TEE -------------------------------------------------------------------------


def test_ivig_exposure(report: Report) -> None:
    ivig = report.ivig
    assert (ivig.exposed.count, ivig.exposed.total, ivig.total_cycles) == (9, 10, 36)
    # cycles 2,3,3,4,4,4,5,5,6: median 4, inclusive quartiles 3 and 5
    cpp = ivig.cycles_per_patient
    assert cpp is not None and (cpp.n, cpp.median, cpp.q1, cpp.q3) == (
        9,
        Decimal(4),
        Decimal(3),
        Decimal(5),
    )
    # grams (p02 partial, excluded): 280,420,560,560,560,700,700,840
    g = ivig.cumulative_grams
    assert g is not None and (g.n, g.median, g.q1, g.q3) == (
        8,
        Decimal(560),
        Decimal(525),
        Decimal(700),
    )
    assert ivig.cumulative_grams_partial == 1
    gk = ivig.cumulative_g_per_kg
    assert gk is not None and (gk.median, gk.q1, gk.q3) == (Decimal(8), Decimal("7.5"), Decimal(10))
    assert ivig.cumulative_g_per_kg_partial == 1


def test_tee_by_rate_stratum(report: Report) -> None:
    tee = report.tee
    assert tee.events == 4 and tee.early_events == 3
    assert (tee.patients_with_event.count, tee.patients_with_event.total) == (3, 9)
    assert tee.mean_events_per_exposed_patient == Fraction(4, 9)
    assert dict(tee.events_per_patient) == {0: 6, 1: 2, 2: 1}
    assert tee.per_100_cycles == Fraction(400, 36)
    strata = {s.label: s for s in tee.strata}
    # ≤ 4: 28 cycles with a known rate ≤ 4 (p09's three at exactly 4 included), events p04,
    # p09 cycle 3, and p09's event on cycles 3 and 4; > 4: 5 (p08) + 3 (p09) cycles, events
    # p08 and p09's two-stratum event
    low, high = strata["≤ 4 mg/kg/min"], strata["> 4 mg/kg/min"]
    assert (low.cycles, low.events, low.per_100_cycles) == (27, 3, Fraction(300, 27))
    assert (high.cycles, high.events, high.per_100_cycles) == (8, 2, Fraction(25))
    assert (strata["rate unknown"].cycles, strata["rate unknown"].events) == (1, 0)
    assert tee.events_in_several_strata == 1
    assert high.ci95_per_100 == pytest.approx(
        tuple(100 * x for x in wilson_interval(2, 8)), abs=1e-9
    )
    assert dict(tee.risk_factors) == {"cardiovascular": 2, "advanced-age": 1, "obesity": 1}
    assert list(tee.risk_factors) == ["cardiovascular", "advanced-age", "obesity"]  # by count
    assert (tee.patients_with_risk_factor.count, tee.patients_with_risk_factor.total) == (3, 10)
    assert tee.rate_findings == 8
    assert tee.patients_with_rate_findings.count == 2


def test_no_unknown_stratum_when_every_rate_is_known() -> None:
    report = build_report([record("a", [visit(8, 20)], rates=[3.0, 4.5], events=[[2]])])
    assert [(s.label, s.cycles, s.events) for s in report.tee.strata] == [
        ("≤ 4 mg/kg/min", 1, 0),
        ("> 4 mg/kg/min", 1, 1),
    ]


def test_an_event_of_unknown_earliness_is_counted_apart() -> None:
    """A date-only onset partly within 24 h of an infusion: "early" is unknown (null in the
    record, spec §5.3). It is neither early nor not early in the report: counted apart, and
    said in the table and the JSON."""
    unknown = record("a", [visit(8, 20)], rates=[3.0, 3.0], events=[[1], [2]])
    unknown["thrombosis"]["associated_events"][1]["early"] = None
    tee = build_report([unknown, record("b", [visit(8, 20)], rates=[3.0], events=[[1]])]).tee
    assert (tee.events, tee.early_events, tee.early_unknown_events) == (3, 2, 1)
    assert tee.as_record()["early_unknown_events"] == 1


# --- input --------------------------------------------------------------------------------


def test_load_summaries_json_ndjson_and_list(tmp_path: Path) -> None:
    records = ten_patients()
    as_json = tmp_path / "evaluate.json"
    as_json.write_text(json.dumps({"results": records, "errors": []}))
    as_ndjson = tmp_path / "summaries.ndjson"
    as_ndjson.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(records))
    one = tmp_path / "one.ndjson"
    one.write_text(json.dumps(records[0]) + "\n")
    loaded = [load_summaries(p) for p in (as_json, as_ndjson, as_list)]
    assert all(len(x) == 10 for x in loaded)
    assert len(load_summaries(one)) == 1
    # numbers come in as exact decimals
    assert loaded[1][3]["assessments"][0]["tis"] == Decimal("37.5")
    reports = [build_report(x).as_record() for x in loaded]
    assert reports[0] == reports[1] == reports[2]


def test_bad_input_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text(json.dumps(ten_patients()[0]) + "\n{not json\n")
    with pytest.raises(ReportInputError, match=r"bad.ndjson:2"):
        load_summaries(bad)
    other = tmp_path / "other.json"
    other.write_text('{"resourceType": "Bundle"}')
    with pytest.raises(ReportInputError):
        load_summaries(other)
    with pytest.raises(ReportInputError, match="cannot read"):
        load_summaries(tmp_path / "missing.json")
    with pytest.raises(ReportInputError, match="population"):
        build_report([{**ten_patients()[0], "population": "child"}])
    with pytest.raises(ReportInputError, match="more than once"):
        build_report(ten_patients() + ten_patients()[:1])
    with pytest.raises(ReportInputError, match="tis_lower"):
        build_report([record("p", [{**visit(8), "tis_lower": None}])])
    with pytest.raises(ReportInputError, match="not a summary record"):
        build_report(
            [{"patient": "Patient/x", "population": "adult", "assessments": [{"tis": 10}]}]
        )


# --- output -------------------------------------------------------------------------------


def test_csv_and_json_round_trip(report: Report, tmp_path: Path) -> None:
    csv_path = write_csv(report, tmp_path / "out" / "patients.csv")
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 10
    by = {r["patient"]: r for r in rows}
    assert by["Patient/p09"]["last_tis"] == ""
    assert (by["Patient/p09"]["last_tis_lower"], by["Patient/p09"]["last_tis_upper"]) == (
        "12.5",
        "22.5",
    )
    assert by["Patient/p09"]["last_category"] == "undetermined"
    assert by["Patient/p08"]["last_category"] == "major"
    assert by["Patient/p10"]["confirmed_deterioration"] == "2024-02-26"
    assert by["Patient/p10"]["last_responder"] == "false"
    assert by["Patient/p02"]["cumulative_grams"] == ""
    assert by["Patient/p09"]["max_rate_mg_kg_min"] == "4.5"
    assert by["Patient/p01"]["risk_factors"] == "advanced-age; cardiovascular"

    json_path = write_json(report, tmp_path / "out" / "summary.json")
    data = json.loads(json_path.read_text())
    last = data["response_last_followup"]
    assert last["categories"]["moderate"] == {
        "count": 3,
        "of": 10,
        "percent": 30,
        "ci95_percent": [10.8, 60.3],
    }
    assert last["responders"] == {
        "count": 6,
        "of": 9,
        "percent": 66.7,
        "ci95_percent": [35.4, 87.9],
    }
    assert data["ivig"]["cumulative_grams"] == {"n": 8, "median": 560, "q1": 525, "q3": 700}
    strata = {s["stratum"]: s for s in data["tee"]["by_max_infusion_rate"]}
    assert strata["≤ 4 mg/kg/min"]["per_100_cycles"] == 11.11
    assert strata["> 4 mg/kg/min"]["per_100_cycles"] == 25
    assert data["tee"]["per_100_cycles"] == 11.11
    assert data["tee"]["events_per_exposed_patient"] == 0.444
    assert data["options"]["partial_policy"] == "interval"


def test_print_report(report: Report) -> None:
    console = Console(record=True, width=120)
    print_report(console, build_report(ten_patients(), week=8))
    text = console.export_text()
    assert "6/9 (66.7 %; 95% CI 35.4–87.9)" in text
    assert "Response at week 8" in text
    assert "≤ 4 mg/kg/min" in text and "11.11" in text and "25.00" in text
    assert "560 (525–700), n=8" in text


def _check_pngs(paths: list[Path]) -> None:
    assert [p.name for p in paths] == list(PLOT_FILES)
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC, p
        assert len(data) > 15_000, (p, len(data))


def test_plots(report: Report, tmp_path: Path) -> None:
    _check_pngs(write_plots(report, tmp_path / "plots"))


def _axes(fig: Any, gid: str) -> Any:
    return next(ax for ax in fig.axes if ax.get_gid() == gid)


def test_plotted_data_and_juvenile_thresholds() -> None:
    """The figures hold the report's numbers: bar heights, threshold lines of each population,
    the juvenile bands, the TEE rates and cycle counts."""
    juvenile = record("j1", [visit(8, 35)], population="juvenile")  # minimal by 30/45/70
    figs = figures(build_report([*ten_patients(), juvenile]))
    cat = figs["tis_by_category.png"]
    adult_ax, juv_ax = _axes(cat, "tis-adult"), _axes(cat, "tis-juvenile")
    lines = {ax: sorted(ln.get_xdata()[0] for ln in ax.get_lines()) for ax in (adult_ax, juv_ax)}
    assert lines[adult_ax] == [20, 40, 60] and lines[juv_ax] == [30, 45, 70]
    adult_heights = sum(p.get_height() for p in adult_ax.patches)
    assert adult_heights == 8  # ten adults, two partial TIS not drawn as a number
    juv_bars = [p for p in juv_ax.patches if p.get_height() > 0]
    assert [(p.get_x(), p.get_height()) for p in juv_bars] == [(35, 1)]
    assert juv_bars[0].get_facecolor()[:3] == pytest.approx((0x9E / 255, 0xCA / 255, 0xE1 / 255))
    traj = _axes(figs["tis_trajectories.png"], "trajectories-juvenile")
    bands = sorted(p.get_y() for p in traj.patches if str(p.get_gid()).startswith("band-"))
    assert bands == pytest.approx([0, 30, 45, 70])
    tee = figs["tee_by_infusion_rate.png"]
    rate_ax, cycles_ax = _axes(tee, "tee-rate"), _axes(tee, "tee-cycles")
    heights = [round(p.get_height(), 2) for p in rate_ax.patches]
    assert heights == [11.11, 25.0, 0.0]  # ≤ 4, > 4, rate unknown (see test_tee_by_rate_stratum)
    assert [p.get_width() for p in cycles_ax.patches] == [27, 8, 1]
    assert cycles_ax.get_xscale() == "log"


def test_empty_cohort_still_writes_everything(tmp_path: Path) -> None:
    report = build_report([])
    assert report.patients == 0 and report.last.responders.percent is None
    assert report.ivig.cycles_per_patient is None and report.tee.per_100_cycles is None
    print_report(Console(record=True), report)
    write_csv(report, tmp_path / "p.csv")
    write_json(report, tmp_path / "s.json")
    for p in write_plots(report, tmp_path):
        assert p.read_bytes()[:8] == PNG_MAGIC
    assert Proportion(0, 0).text() == "0/0"


def test_synthetic_cohort_end_to_end(tmp_path: Path) -> None:
    """Real summary records (the pipeline on synthetic patients), through the JSON form."""
    settings = Settings()
    results = []
    for bundle in make_cohort(12, seed=11):
        r = evaluate_patient_resources(read_patient_bundle(orjson.dumps(bundle)), settings)
        results.append(patient_summary(r.patient_ref, r.evaluation, r.issues))
    path = tmp_path / "evaluate.json"
    path.write_text(jsonout.dumps({"results": results, "errors": []}))
    report = build_report(load_summaries(path), week=12)
    assert report.patients == 12
    assert report.warnings == ()  # the report's categories and responders agree with the records
    assert sum(report.last.categories.values()) == report.last.evaluable
    assert report.ivig.total_cycles == sum(s.cycles for s in report.tee.strata)
    _check_pngs(write_plots(report, tmp_path / "plots"))
