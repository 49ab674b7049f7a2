"""A second clinical audit, end to end through FHIR: each case is a patient Bundle as a hospital
sends it, evaluated offline (fhirtis.pipeline.offline), and the assertions read the derived
resources fhirtis writes back. Expected numbers are worked by hand from
docs/clinical-specification.md; the arithmetic is in the comments. (The first audit,
test_spec_audit.py, checks rules at the function level; nothing here repeats it.)"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    ICD,
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    enzyme,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]
D = Decimal
CATEGORY = "http://fhirtis.org/fhir/CodeSystem/tis-response-category"
BASE_DAY, IVIG_DAY, FOLLOW_DAY = "2024-01-08", "2024-01-09", "2024-02-05"


def _evaluate(*resources: Json) -> PatientResult:
    raw = json.dumps(bundle(*resources))
    return evaluate_patient_resources(read_patient_bundle(raw), Settings())


def _derived(result: PatientResult, code: str) -> list[Json]:
    out = []
    for d in result.derived:
        r = d.resource
        codings = (r.get("code") or {}).get("coding") or []
        if any(c.get("code") == code for c in codings):
            out.append(r)
    return out


def _components(tis: Json) -> dict[str, Decimal | None]:
    out: dict[str, Decimal | None] = {}
    for c in tis["component"]:
        key = c["code"]["coding"][0]["code"]
        if key == "responder":  # a valueBoolean (or unknown), not a measure
            continue
        q = c.get("valueQuantity")
        out[key] = None if q is None else D(str(q["value"]))
    return out


def _category(tis: Json) -> str:
    (i,) = tis["interpretation"]
    if "coding" in i:
        (c,) = i["coding"]
        assert c["system"] == CATEGORY
        return str(c["code"])
    return str(i["text"])


def _ivig(day: str = IVIG_DAY) -> list[Json]:
    # 70 kg, 10 % product, 140 g (2 g/kg) in one administration at 150 mL/h: 3.57 mg/kg/min
    return [
        medication(),
        obs("w", "29463-7", 70, "kg", BASE_DAY, system=LOINC),
        administration(
            f"ma-{day}",
            f"{day}T09:00:00Z",
            f"{day}T18:20:00Z",
            dose=qty(1400, "mL"),
            rate=qty(150, "mL/h"),
        ),
    ]


def _visit(
    tag: str,
    day: str,
    *,
    pga: float | str | None = None,
    ptga: float | str | None = None,
    mmt: tuple[str, float | str] | None = None,
    haq: tuple[str, float | str] | None = None,
    em: float | str | None = None,
    ck: tuple[float | str, float | str | None] | None = None,
) -> list[Json]:
    out: list[Json] = []
    if pga is not None:
        out.append(obs(f"pga-{tag}", "pga", pga, "cm", day))
    if ptga is not None:
        out.append(obs(f"ptga-{tag}", "ptga", ptga, "cm", day))
    if mmt is not None:
        out.append(obs(f"mmt-{tag}", mmt[0], mmt[1], "{score}", day))
    if haq is not None:
        out.append(obs(f"haq-{tag}", haq[0], haq[1], "{score}", day))
    if em is not None:
        out.append(obs(f"em-{tag}", "extramuscular", em, "cm", day))
    if ck is not None:
        out.append(enzyme(f"ck-{tag}", "2157-6", ck[0], day, uln=ck[1]))  # type: ignore[arg-type]
    return out


def _example_a(*, juvenile: bool = False, haq_follow: bool = True) -> PatientResult:
    dx = condition("jdm", ICD, "M33.00", "2020-05-01") if juvenile else None
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    base = _visit(
        "b",
        BASE_DAY,
        pga=6,
        ptga=7,
        mmt=("mmt8-150", 100),
        haq=("haq-di", 1.5),
        em=4,
        ck=(3000, 200),
    )
    follow = _visit(
        "f",
        FOLLOW_DAY,
        pga=3,
        ptga=5,
        mmt=("mmt8-150", 130),
        haq=("haq-di", 1.2) if haq_follow else None,
        em=3,
        ck=(1200, 200),
    )
    birth = "2012-03-01" if juvenile else "1970-03-01"
    return _evaluate(patient(birth=birth), *([dx] if dx else [dm]), *base, *follow, *_ivig())


# -- §8 worked examples, through FHIR -------------------------------------------------------------

_A_COMPONENTS = {
    # PGA 6→3: 3/10 = 30 % (>25–40: 17.5); PtGA 7→5: 20 % (>15–25: 5); MMT-8/150 100→130:
    # 30/150 = 20 % (>10–20: 20); HAQ 1.5→1.2: 0.3/3 = 10 % (>5–15: 5); CK 3000→1200:
    # 1800/3000 = 60 % (>40: 7.5); extramuscular 4→3: 10 % (>5–15: 7.5)
    "improvement-pga": D(30),
    "score-pga": D("17.5"),
    "improvement-ptga": D(20),
    "score-ptga": D(5),
    "improvement-mmt8": D(20),
    "score-mmt8": D(20),
    "improvement-haq": D(10),
    "score-haq": D(5),
    "improvement-enzyme": D(60),
    "score-enzyme": D("7.5"),
    "improvement-extramuscular": D(10),
    "score-extramuscular": D("7.5"),
}


def test_example_a_adult_major() -> None:
    (tis,) = _derived(_example_a(), "tis")
    assert D(str(tis["valueQuantity"]["value"])) == D("62.5")
    assert "valueRange" not in tis
    assert _components(tis) == _A_COMPONENTS
    assert _category(tis) == "major"  # 62.5 ≥ 60
    assert tis["method"]["coding"][0]["code"] == "adult-criteria"
    assert tis["effectivePeriod"] == {"start": BASE_DAY, "end": FOLLOW_DAY}
    refs = {r["reference"] for r in tis["derivedFrom"]}
    assert {
        "Observation/pga-b",
        "Observation/pga-f",
        "Observation/ck-b",
        "Observation/ck-f",
    } <= refs


def test_example_c_juvenile_moderate() -> None:
    # same 62.5; juvenile thresholds: ≥ 45 moderate, ≥ 70 major → moderate
    (tis,) = _derived(_example_a(juvenile=True), "tis")
    assert D(str(tis["valueQuantity"]["value"])) == D("62.5")
    assert _components(tis) == _A_COMPONENTS
    assert _category(tis) == "moderate"
    assert tis["method"]["coding"][0]["code"] == "juvenile-criteria"


def test_example_e_partial_bounds() -> None:
    # HAQ missing at follow-up: 62.5 − 5 = 57.5 (lower), + 10 (HAQ max) = 67.5 (upper)
    (tis,) = _derived(_example_a(haq_follow=False), "tis")
    assert "valueQuantity" not in tis
    assert D(str(tis["valueRange"]["low"]["value"])) == D("57.5")
    assert D(str(tis["valueRange"]["high"]["value"])) == D("67.5")
    comps = _components(tis)
    assert comps["score-haq"] is None and comps["improvement-haq"] is None
    # 57.5 is moderate, 67.5 major: no category, both possible named
    assert "interpretation" in tis and "coding" not in tis["interpretation"][0]
    text = _category(tis)
    assert "moderate" in text and "major" in text
    assert any("haq" in n["text"] for n in tis["note"])


def test_example_b_mmt80_none() -> None:
    base = _visit(
        "b", BASE_DAY, pga=5, ptga=5, mmt=("mmt8-80", 60), haq=("haq-di", 1), em=2, ck=(500, 200)
    )
    follow = _visit(
        "f",
        FOLLOW_DAY,
        pga=4.5,
        ptga=5,
        mmt=("mmt8-80", 62),
        haq=("haq-di", 1),
        em=2,
        ck=(450, 200),
    )
    r = _evaluate(
        patient(), condition("dm", SCT, "396230008", "2023-06-01"), *base, *follow, *_ivig()
    )
    (tis,) = _derived(r, "tis")
    comps = _components(tis)
    # PGA 0.5/10 = 5 % → 0; MMT 2/80 = 2.5 % → 10; CK 50/500 = 10 % → 2.5
    assert comps["improvement-pga"] == 5 and comps["score-pga"] == 0
    assert comps["improvement-mmt8"] == D("2.5") and comps["score-mmt8"] == 10
    assert comps["improvement-enzyme"] == 10 and comps["score-enzyme"] == D("2.5")
    assert D(str(tis["valueQuantity"]["value"])) == D("12.5")
    assert _category(tis) == "none"


def test_example_d_exact_decimal() -> None:
    base = _visit(
        "b",
        BASE_DAY,
        pga=2.2,
        ptga=5,
        mmt=("mmt8-150", 100),
        haq=("haq-di", 1),
        em=2,
        ck=(500, 200),
    )
    follow = _visit(
        "f",
        FOLLOW_DAY,
        pga=0.7,
        ptga=5,
        mmt=("mmt8-150", 100),
        haq=("haq-di", 1),
        em=2,
        ck=(500, 200),
    )
    r = _evaluate(
        patient(), condition("dm", SCT, "396230008", "2023-06-01"), *base, *follow, *_ivig()
    )
    (tis,) = _derived(r, "tis")
    comps = _components(tis)
    assert comps["improvement-pga"] == 15 and comps["score-pga"] == D("7.5")
    assert D(str(tis["valueQuantity"]["value"])) == D("7.5")
    assert _category(tis) == "none"


# -- §2.2 every band edge of the score table, both sides, through FHIR ----------------------------

_NEUTRAL: dict[str, Any] = {
    "pga": 5,
    "ptga": 5,
    "mmt": ("mmt8-150", 100),
    "haq": ("haq-di", 1),
    "em": 5,
    "ck": (500, 200),
}


def _one_measure(
    measure: str, before: Any, after: Any, *, juvenile: bool = False
) -> dict[str, Decimal | None]:
    """Baseline and follow-up alike but for ``measure``; the TIS components."""
    base = _visit("b", BASE_DAY, **{**_NEUTRAL, measure: before})
    follow = _visit("f", FOLLOW_DAY, **{**_NEUTRAL, measure: after})
    dx = (
        condition("jdm", ICD, "M33.00", "2020-05-01")
        if juvenile
        else condition("dm", SCT, "396230008", "2023-06-01")
    )
    r = _evaluate(
        patient(birth="2012-03-01" if juvenile else "1970-03-01"), dx, *base, *follow, *_ivig()
    )
    (tis,) = _derived(r, "tis")
    return _components(tis)


# (measure key in the TIS, builder argument, baseline, follow-up, percent, score)
_EDGES: list[tuple[str, str, Any, Any, str, str]] = [
    # VAS 0–10 cm: improvement = (10 − follow-up) / 10 × 100
    *(
        (key, arg, 10, after, pct, score)
        for key, arg, scores in (
            ("pga", "pga", ("0", "7.5", "15", "17.5", "20")),
            ("ptga", "ptga", ("0", "2.5", "5", "7.5", "10")),
            ("extramuscular", "em", ("0", "7.5", "12.5", "15", "20")),
        )
        for after, pct, score in (
            (9.5, "5", scores[0]),
            (9.49, "5.1", scores[1]),
            (8.5, "15", scores[1]),
            (8.49, "15.1", scores[2]),
            (7.5, "25", scores[2]),
            (7.49, "25.1", scores[3]),
            (6, "40", scores[3]),
            (5.99, "40.1", scores[4]),
        )
    ),
    # HAQ-DI 0–3: improvement = (3 − follow-up) / 3 × 100
    *(
        ("haq", "haq", ("haq-di", 3), ("haq-di", after), pct, score)
        for after, pct, score in (
            (2.85, "5", "0"),
            (2.84, "5.3333", "5"),
            (2.55, "15", "5"),
            (2.54, "15.3333", "7.5"),
            (2.25, "25", "7.5"),
            (2.24, "25.3333", "7.5"),
            (1.8, "40", "7.5"),
            (1.79, "40.3333", "10"),
        )
    ),
    # enzyme: relative, (1000 − follow-up) / 1000 × 100
    *(
        ("enzyme", "ck", (1000, 200), (after, 200), pct, score)
        for after, pct, score in (
            (950, "5", "0"),
            (949, "5.1", "2.5"),
            (850, "15", "2.5"),
            (849, "15.1", "5"),
            (750, "25", "5"),
            (749, "25.1", "7.5"),
            (600, "40", "7.5"),
            (599, "40.1", "7.5"),
        )
    ),
    # MMT-8 0–150 (edges 2/10/20/30 %: 3, 15, 30, 45 points): (follow-up − 50) / 150 × 100
    *(
        ("mmt8", "mmt", ("mmt8-150", 50), ("mmt8-150", after), pct, score)
        for after, pct, score in (
            (53, "2", "0"),
            (53.1, "2.0667", "10"),
            (65, "10", "10"),
            (65.1, "10.0667", "20"),
            (80, "20", "20"),
            (80.1, "20.0667", "27.5"),
            (95, "30", "27.5"),
            (95.1, "30.0667", "32.5"),
        )
    ),
    # MMT-8 0–80 (edges 1.6, 8, 16, 24 points): (follow-up − 40) / 80 × 100
    *(
        ("mmt8", "mmt", ("mmt8-80", 40), ("mmt8-80", after), pct, score)
        for after, pct, score in (
            (41.6, "2", "0"),
            (41.7, "2.125", "10"),
            (48, "10", "10"),
            (48.1, "10.125", "20"),
            (56, "20", "20"),
            (56.1, "20.125", "27.5"),
            (64, "30", "27.5"),
            (64.1, "30.125", "32.5"),
        )
    ),
    # worsening scores 0 (a negative percent is written as such)
    ("pga", "pga", 5, 6, "-10", "0"),
    ("mmt8", "mmt", ("mmt8-150", 100), ("mmt8-150", 97), "-2", "0"),
    ("enzyme", "ck", (500, 200), (1000, 200), "-100", "0"),
]


def _pct(value: Decimal | None) -> str:
    assert value is not None
    # the written percent carries 4 decimals (the score is banded on the exact value)
    return format(value.quantize(D("0.0001")).normalize(), "f")


@pytest.mark.parametrize("juvenile", [False, True], ids=["adult", "juvenile"])
@pytest.mark.parametrize(("key", "arg", "before", "after", "pct", "score"), _EDGES)
def test_band_edges(
    key: str, arg: str, before: Any, after: Any, pct: str, score: str, juvenile: bool
) -> None:
    comps = _one_measure(arg, before, after, juvenile=juvenile)
    assert _pct(comps[f"improvement-{key}"]) == pct
    assert comps[f"score-{key}"] == D(score)


# juvenile PRINTO alternatives: CMAS 0–52 (edges 1.04, 5.2, 10.4, 15.6 points) and CHAQ 0–3
@pytest.mark.parametrize(
    ("arg", "before", "after", "key", "score"),
    [
        ("mmt", ("cmas", 20), ("cmas", 21.04), "mmt8", "0"),
        ("mmt", ("cmas", 20), ("cmas", 21.05), "mmt8", "10"),
        ("mmt", ("cmas", 20), ("cmas", 25.2), "mmt8", "10"),
        ("mmt", ("cmas", 20), ("cmas", 25.21), "mmt8", "20"),
        ("mmt", ("cmas", 20), ("cmas", 30.4), "mmt8", "20"),
        ("mmt", ("cmas", 20), ("cmas", 30.41), "mmt8", "27.5"),
        ("mmt", ("cmas", 20), ("cmas", 35.6), "mmt8", "27.5"),
        ("mmt", ("cmas", 20), ("cmas", 35.61), "mmt8", "32.5"),
        ("haq", ("chaq", 3), ("chaq", 2.85), "haq", "0"),
        ("haq", ("chaq", 3), ("chaq", 2.84), "haq", "5"),
        ("haq", ("chaq", 3), ("chaq", 1.79), "haq", "10"),
    ],
)
def test_juvenile_instrument_edges(arg: str, before: Any, after: Any, key: str, score: str) -> None:
    comps = _one_measure(arg, before, after, juvenile=True)
    assert comps[f"score-{key}"] == D(score)


# -- §1 instruments, ranges, units; most abnormal enzyme ------------------------------------------


def _course(
    base: list[Json], follow: list[Json], *extra: Json, ivig_day: str = IVIG_DAY
) -> PatientResult:
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    return _evaluate(patient(), dm, *base, *follow, *extra, *_ivig(ivig_day))


def _full(tag: str, day: str, **over: Any) -> list[Json]:
    return _visit(tag, day, **{**_NEUTRAL, **over})


def test_vas_in_mm_is_divided_by_ten() -> None:
    # PGA 60 mm → 30 mm = 6 cm → 3 cm: 30 % → 17.5
    base = [o for o in _full("b", BASE_DAY) if not o["id"].startswith("pga")]
    follow = [o for o in _full("f", FOLLOW_DAY) if not o["id"].startswith("pga")]
    base.append(obs("pga-b", "pga", 60, "mm", BASE_DAY))
    follow.append(obs("pga-f", "pga", 30, "mm", FOLLOW_DAY))
    (tis,) = _derived(_course(base, follow), "tis")
    comps = _components(tis)
    assert (comps["improvement-pga"], comps["score-pga"]) == (30, D("17.5"))


@pytest.mark.parametrize(
    ("over_b", "over_f", "missing"),
    [
        # §1: a value outside its instrument's range is excluded
        ({"pga": 5}, {"pga": 10.5}, "pga"),
        ({"mmt": ("mmt8-80", 60)}, {"mmt": ("mmt8-80", 81)}, "mmt8"),
        ({"haq": ("haq-di", 1)}, {"haq": ("haq-di", 3.1)}, "haq"),
        ({"em": 5}, {"em": -1}, "extramuscular"),
        # §1: MMT-8 0–80 vs 0–150 is never compared
        ({"mmt": ("mmt8-80", 60)}, {"mmt": ("mmt8-150", 130)}, "mmt8"),
        ({"mmt": ("cmas", 30)}, {"mmt": ("mmt8-80", 70)}, "mmt8"),
    ],
)
def test_impossible_or_mixed_values_leave_the_measure_missing(
    over_b: dict[str, Any], over_f: dict[str, Any], missing: str
) -> None:
    (tis,) = _derived(
        _course(_full("b", BASE_DAY, **over_b), _full("f", FOLLOW_DAY, **over_f)), "tis"
    )
    assert "valueRange" in tis and "valueQuantity" not in tis
    comps = _components(tis)
    assert comps[f"score-{missing}"] is None
    assert [k for k, v in comps.items() if v is None] == [
        f"improvement-{missing}",
        f"score-{missing}",
    ]
    assert any(missing in n["text"] for n in tis["note"])


def test_most_abnormal_enzyme_is_chosen_at_baseline_and_never_switched() -> None:
    # baseline CK 3000/200 = 15 × ULN, aldolase 16/8 = 2 × ULN → CK; at follow-up only
    # aldolase: the enzyme is missing (never switch)
    base = [
        *_visit("b", BASE_DAY, **{**_NEUTRAL, "ck": (3000, 200)}),
        enzyme("ald-b", "1761-6", 16, BASE_DAY, uln=8),
    ]
    follow = [o for o in _full("f", FOLLOW_DAY) if not o["id"].startswith("ck")]
    follow.append(enzyme("ald-f", "1761-6", 4, FOLLOW_DAY, uln=8))
    (tis,) = _derived(_course(base, follow), "tis")
    comps = _components(tis)
    assert comps["score-enzyme"] is None
    assert D(str(tis["valueRange"]["high"]["value"])) - D(
        str(tis["valueRange"]["low"]["value"])
    ) == D("7.5")


def test_enzyme_tie_prefers_ck_then_aldolase() -> None:
    # CK 400/200 = 2 and aldolase 16/8 = 2: CK first. CK 400 → 200 = 50 % → 7.5;
    # aldolase 16 → 15 = 6.25 % → 2.5 (would be, were it chosen)
    base = [*_full("b", BASE_DAY, ck=(400, 200)), enzyme("ald-b", "1761-6", 16, BASE_DAY, uln=8)]
    follow = [
        *_full("f", FOLLOW_DAY, ck=(200, 200)),
        enzyme("ald-f", "1761-6", 15, FOLLOW_DAY, uln=8),
    ]
    (tis,) = _derived(_course(base, follow), "tis")
    comps = _components(tis)
    assert (comps["improvement-enzyme"], comps["score-enzyme"]) == (50, D("7.5"))


def test_the_most_abnormal_enzyme_may_be_a_liver_enzyme() -> None:
    # CK 300/200 = 1.5; AST 160/40 = 4 → AST; AST 160 → 100 = 37.5 % → 7.5; CK 300 → 290 would
    # be 3.3 % → 0
    base = [*_full("b", BASE_DAY, ck=(300, 200)), enzyme("ast-b", "1920-8", 160, BASE_DAY, uln=40)]
    follow = [
        *_full("f", FOLLOW_DAY, ck=(290, 200)),
        enzyme("ast-f", "1920-8", 100, FOLLOW_DAY, uln=40),
    ]
    (tis,) = _derived(_course(base, follow), "tis")
    comps = _components(tis)
    assert (comps["improvement-enzyme"], comps["score-enzyme"]) == (D("37.5"), D("7.5"))


def test_ukat_per_litre_is_converted() -> None:
    # CK 50 µkat/L (3000 U/L), ULN 3.33 µkat/L → 20 µkat/L: 60 % → 7.5
    base = [o for o in _full("b", BASE_DAY) if not o["id"].startswith("ck")]
    follow = [o for o in _full("f", FOLLOW_DAY) if not o["id"].startswith("ck")]
    base.append(enzyme("ck-b", "2157-6", 50, BASE_DAY, uln=3.33, unit="ukat/L"))
    follow.append(enzyme("ck-f", "2157-6", 20, FOLLOW_DAY, uln=3.33, unit="ukat/L"))
    (tis,) = _derived(_course(base, follow), "tis")
    comps = _components(tis)
    assert (comps["improvement-enzyme"], comps["score-enzyme"]) == (60, D("7.5"))


def test_a_single_enzyme_without_uln_is_chosen() -> None:
    base = _full("b", BASE_DAY, ck=(1000, None))
    follow = _full("f", FOLLOW_DAY, ck=(500, None))
    (tis,) = _derived(_course(base, follow), "tis")
    assert _components(tis)["score-enzyme"] == D("7.5")
    assert "valueQuantity" in tis


# -- §2.5 assessments and baseline ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ivig_day", "has_baseline"), [("2024-02-05", True), ("2024-02-06", False)]
)
def test_baseline_lookback_is_28_days(ivig_day: str, has_baseline: bool) -> None:
    # baseline visit 2024-01-08; IVIG on 2024-02-05 is 28 days later (baseline), 02-06 is 29
    follow = _full("f", "2024-03-04")
    r = _course(_full("b", BASE_DAY), follow, ivig_day=ivig_day)
    tis = _derived(r, "tis")
    assert bool(tis) is has_baseline
    if has_baseline:
        assert tis[0]["effectivePeriod"]["start"] == BASE_DAY


def test_baseline_is_the_last_assessment_before_ivig() -> None:
    # screening on 01-01, baseline visit 01-08, IVIG 01-09: baseline 01-08 (PGA 6 → 3: 30 %)
    screening = _full("s", "2024-01-01", pga=9)
    r = _course([*screening, *_full("b", BASE_DAY, pga=6)], _full("f", FOLLOW_DAY, pga=3))
    (tis,) = _derived(r, "tis")
    assert tis["effectivePeriod"]["start"] == BASE_DAY
    assert _components(tis)["improvement-pga"] == 30


def test_split_visit_and_a_lab_shared_with_screening() -> None:
    # baseline PGA on 01-05, MMT on 01-08 (one visit over two days, dated 01-05); the CK drawn on
    # 01-02 serves it (nearest within ±7 days). Follow-up complete on 02-05.
    base = [
        *_visit("b1", "2024-01-05", pga=6, ptga=7, haq=("haq-di", 1.5), em=4),
        *_visit("b2", BASE_DAY, mmt=("mmt8-150", 100)),
        *_visit("lab", "2024-01-02", ck=(3000, 200)),
    ]
    follow = _visit(
        "f",
        FOLLOW_DAY,
        pga=3,
        ptga=5,
        mmt=("mmt8-150", 130),
        haq=("haq-di", 1.2),
        em=3,
        ck=(1200, 200),
    )
    r = _course(base, follow)
    (tis,) = _derived(r, "tis")
    assert tis["effectivePeriod"]["start"] == "2024-01-05"
    assert D(str(tis["valueQuantity"]["value"])) == D("62.5")


def test_final_beats_preliminary_and_entered_in_error_is_ignored() -> None:
    base = _full("b", BASE_DAY, pga=6)
    prelim = obs("pga-b-pre", "pga", 9, "cm", BASE_DAY, status="preliminary")
    void = obs("pga-f-void", "pga", 0, "cm", FOLLOW_DAY, status="entered-in-error")
    r = _course([*base, prelim], [*_full("f", FOLLOW_DAY, pga=3), void])
    (tis,) = _derived(r, "tis")
    assert _components(tis)["improvement-pga"] == 30
    refs = {x["reference"] for x in tis["derivedFrom"]}
    assert "Observation/pga-b-pre" not in refs and "Observation/pga-f-void" not in refs


# -- §3 deterioration -----------------------------------------------------------------------------


def _deterioration(visits: list[list[Json]]) -> Json:
    r = _course(visits[0], [o for v in visits[1:] for o in v])
    (d,) = _derived(r, "confirmed-deterioration")
    return d


def test_confirmed_deterioration_needs_two_consecutive_assessments() -> None:
    # rule 2: extramuscular worse by ≥ 2 cm (3 → 5) at weeks 4 and 8: confirmed at week 8
    base = _full("b", BASE_DAY, em=3)
    w4 = _full("w4", "2024-02-05", em=5)
    w8 = _full("w8", "2024-03-04", em=5)
    d = _deterioration([base, w4, w8])
    assert d["valueBoolean"] is True and d["effectiveDateTime"] == "2024-03-04"
    # not consecutive: week 4 worse, week 8 not, week 12 worse → not confirmed
    w8ok = _full("w8", "2024-03-04", em=3)
    w12 = _full("w12", "2024-04-01", em=5)
    d = _deterioration([base, w4, w8ok, w12])
    assert d["valueBoolean"] is False


def test_deterioration_rule_1_pga_and_mmt_edges() -> None:
    # pga 4 → 6 (worse by exactly 2 cm) and MMT 100 → 80 (worse by exactly 20 % relative): rule 1
    base = _full("b", BASE_DAY, pga=4, mmt=("mmt8-150", 100))
    worse = [
        _full(f"w{i}", d, pga=6, mmt=("mmt8-150", 80))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *worse])["valueBoolean"] is True
    # MMT 100 → 81 is 19 %: not rule 1
    not_worse = [
        _full(f"w{i}", d, pga=6, mmt=("mmt8-150", 81))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *not_worse])["valueBoolean"] is False


def test_deterioration_rule_3_three_of_five_by_30_percent() -> None:
    # pga 5 → 6.5 (30 %), ptga 5 → 6.5 (30 %), haq 1 → 1.3 (30 %): 3 of 5 → deterioration
    base = _full("b", BASE_DAY)
    worse = [
        _full(f"w{i}", d, pga=6.5, ptga=6.5, haq=("haq-di", 1.3))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *worse])["valueBoolean"] is True
    # haq 1 → 1.29 (29 %): only 2 of 5
    two = [
        _full(f"w{i}", d, pga=6.5, ptga=6.5, haq=("haq-di", 1.29))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *two])["valueBoolean"] is False


# -- §4 IVIG exposure through FHIR ----------------------------------------------------------------


def _exposure(*resources: Json, birth: str = "1970-03-01") -> PatientResult:
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    return _evaluate(patient(birth=birth), dm, medication(), *resources)


def _value(o: Json) -> Decimal:
    return D(str(o["valueQuantity"]["value"]))


def _component(o: Json, code: str) -> Json:
    (c,) = [c for c in o["component"] if c["code"]["coding"][0]["code"] == code]
    return c


def test_g_per_kg_per_cycle_each_on_its_own_weight_and_cumulative() -> None:
    # cycle 1 (01-09, 70 kg): 4 × 35 g = 140 g → 2 g/kg; cycle 2 (02-06, 80 kg on 02-05):
    # 4 × 35 g = 140 g → 1.75 g/kg. Cumulative 280 g, 3.75 g/kg, 2 cycles.
    res: list[Json] = [
        obs("w1", "29463-7", 70, "kg", "2024-01-08", system=LOINC),
        obs("w2", "29463-7", 80, "kg", "2024-02-05", system=LOINC),
    ]
    for c, start in enumerate(("2024-01-09", "2024-02-06")):
        day0 = int(start[-2:])
        for k in range(4):
            day = f"{start[:-2]}{day0 + k:02d}"
            res.append(
                administration(
                    f"a{c}{k}", f"{day}T09:00:00Z", f"{day}T13:00:00Z", dose=qty(350, "mL")
                )
            )
    r = _exposure(*res)
    cycles = _derived(r, "ivig-cycle-dose")
    assert [_value(c) for c in cycles] == [D(2), D("1.75")]
    assert [_value(_component(c, "ivig-grams")) for c in cycles] == [D(140), D(140)]
    assert [_value(_component(c, "dosing-weight")) for c in cycles] == [D(70), D(80)]
    assert [_component(c, "administration-count")["valueInteger"] for c in cycles] == [4, 4]
    (cum,) = _derived(r, "ivig-cumulative-dose")
    assert _value(cum) == D(280)
    assert _value(_component(cum, "cumulative-g-per-kg")) == D("3.75")
    assert _component(cum, "cycle-count")["valueInteger"] == 2


@pytest.mark.parametrize(
    ("dose", "grams"),
    [
        (qty(0.5, "g/kg"), "35"),  # 0.5 g/kg × 70 kg
        (qty(500, "mg/kg"), "35"),
        (qty(35000, "mg"), "35"),
        (qty(35, "g"), "35"),
        (qty(350, "mL"), "35"),  # 350 mL × 100 mg/mL
    ],
)
def test_dose_forms(dose: Json, grams: str) -> None:
    r = _exposure(
        obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=dose),
    )
    (cycle,) = _derived(r, "ivig-cycle-dose")
    assert _value(_component(cycle, "ivig-grams")) == D(grams)
    assert _value(cycle) == D(grams) / 70


def test_stopped_infusion_counts_for_what_was_recorded() -> None:
    r = _exposure(
        obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC),
        administration(
            "a",
            "2024-01-09T09:00:00Z",
            "2024-01-09T10:00:00Z",
            dose=qty(100, "mL"),
            status="stopped",
        ),
    )
    (cycle,) = _derived(r, "ivig-cycle-dose")
    assert _value(_component(cycle, "ivig-grams")) == D(10)


# -- §5.2 rate limits, with and without a risk factor ---------------------------------------------


# 70 kg, 10 % product: mg/kg/min = mL/h × 100 / (60 × 70) = mL/h / 42
@pytest.mark.parametrize(
    ("rate", "risk", "flagged", "limit"),
    [
        (qty(168, "mL/h"), False, False, "4"),  # exactly 4
        (qty(169, "mL/h"), False, True, "4"),  # 4.024
        (qty(138.6, "mL/h"), True, False, "3.3"),  # exactly 3.3
        (qty(139, "mL/h"), True, True, "3.3"),  # 3.310
        (qty(0.04, "mL/kg/min"), False, False, "4"),  # per kg: 0.04 × 100 = 4
        (qty(0.041, "mL/kg/min"), False, True, "4"),
        (qty(2.4, "mL/kg/h"), False, False, "4"),  # 2.4 × 100 / 60 = 4
        (qty(2.41, "mL/kg/h"), False, True, "4"),
        (qty(3.3, "mg/kg/min"), True, False, "3.3"),
        (qty(3.31, "mg/kg/min"), True, True, "3.3"),
    ],
)
def test_rate_limit_edges(rate: Json, risk: bool, flagged: bool, limit: str) -> None:
    extra = [condition("htn", ICD, "I10", "2015-01-01")] if risk else []
    r = _exposure(
        obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC),
        administration(
            "a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(350, "mL"), rate=rate
        ),
        *extra,
    )
    issues = [d.resource for d in r.derived if d.resource["resourceType"] == "DetectedIssue"]
    assert bool(issues) is flagged
    if flagged:
        (issue,) = issues
        assert issue["implicated"] == [{"reference": "MedicationAdministration/a"}]
        lim = [e for e in issue["extension"] if e["url"].endswith("applicable-max-rate")]
        assert D(str(lim[0]["valueQuantity"]["value"])) == D(limit)
    (flag,) = [d.resource for d in r.derived if d.resource["resourceType"] == "Flag"]
    lim = [e for e in flag["extension"] if e["url"].endswith("applicable-max-rate")]
    assert D(str(lim[0]["valueQuantity"]["value"])) == D(limit)


# -- §5.1 each risk factor, from the FHIR a hospital sends ----------------------------------------


def _risk_kinds(
    *evidence: Json, birth: str = "1970-03-01", weight: float = 70
) -> dict[str, list[str]]:
    """The factors of the written Flag (kind → evidence references)."""
    r = _exposure(
        obs("w", "29463-7", weight, "kg", "2024-01-08", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(350, "mL")),
        *evidence,
        birth=birth,
    )
    (flag,) = [d.resource for d in r.derived if d.resource["resourceType"] == "Flag"]
    out: dict[str, list[str]] = {}
    for e in flag["extension"]:
        if not e["url"].endswith("tee-risk-factor"):
            continue
        sub = e["extension"]
        kind = next(
            s["valueCodeableConcept"]["coding"][0]["code"] for s in sub if s["url"] == "factor"
        )
        out[kind] = [s["valueReference"]["reference"] for s in sub if s["url"] == "evidence"]
    return out


def _smoking_status(code: str, display: str) -> Json:
    # US Core Smoking Status Observation: LOINC 72166-2 "Tobacco smoking status", a SNOMED CT
    # value (https://hl7.org/fhir/us/core/StructureDefinition-us-core-smokingstatus.html)
    return {
        "resourceType": "Observation",
        "id": "smoke",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "social-history",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2023-12-01",
        "valueCodeableConcept": {"coding": [{"system": SCT, "code": code, "display": display}]},
    }


@pytest.mark.parametrize(
    ("evidence", "kind", "source"),
    [
        (condition("htn", ICD, "I10", "2015-01-01"), "cardiovascular", "Condition/htn"),
        (condition("smk", SCT, "77176002", "2000-01-01"), "cardiovascular", "Condition/smk"),
        (condition("nic", ICD, "F17.210", "2000-01-01"), "cardiovascular", "Condition/nic"),
        (
            _smoking_status("449868002", "Smokes tobacco daily"),
            "cardiovascular",
            "Observation/smoke",
        ),
        (
            obs("bmi", "39156-5", 30, "kg/m2", "2024-01-08", system=LOINC),
            "obesity",
            "Observation/bmi",
        ),
        (
            {
                "resourceType": "Device",
                "id": "cvc",
                "status": "active",
                "type": {"coding": [{"system": SCT, "code": "52124006"}]},
                "patient": {"reference": "Patient/p1"},
            },
            "central-venous-catheter",
            "Device/cvc",
        ),
        (
            {
                "resourceType": "Procedure",
                "id": "line",
                "status": "completed",
                "code": {"coding": [{"system": SCT, "code": "233527006"}]},
                "subject": {"reference": "Patient/p1"},
                "performedDateTime": "2024-01-02",
            },
            "central-venous-catheter",
            "Procedure/line",
        ),
        (
            {
                "resourceType": "MedicationStatement",
                "id": "e2",
                "status": "active",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.whocc.no/atc", "code": "G03CA03"}]
                },
                "subject": {"reference": "Patient/p1"},
                "effectivePeriod": {"start": "2023-01-01"},
            },
            "estrogen",
            "MedicationStatement/e2",
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "id": "coc",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.whocc.no/atc", "code": "G03AA07"}]
                },
                "subject": {"reference": "Patient/p1"},
                "authoredOn": "2023-06-01",
            },
            "estrogen",
            "MedicationRequest/coc",
        ),
    ],
    ids=[
        "htn",
        "smoker-condition",
        "nicotine-icd",
        "smoking-status-obs",
        "bmi-30",
        "device-cvc",
        "procedure-cvc",
        "estradiol-statement",
        "contraceptive-request",
    ],
)
def test_risk_factor_from_fhir(evidence: Json, kind: str, source: str) -> None:
    kinds = _risk_kinds(evidence)
    assert kind in kinds
    assert source in kinds[kind]


def test_bmi_below_30_is_not_obesity_and_weight_height_give_bmi() -> None:
    assert "obesity" not in _risk_kinds(
        obs("bmi", "39156-5", 29.9, "kg/m2", "2024-01-08", system=LOINC)
    )
    # 90 kg / 1.73² = 30.07 ≥ 30; 89 kg → 29.74 < 30 (weight and height, no BMI recorded)
    h = obs("h", "8302-2", 173, "cm", "2024-01-08", system=LOINC)
    assert "obesity" in _risk_kinds(h, weight=90)
    assert "obesity" not in _risk_kinds(h, weight=89)


@pytest.mark.parametrize(("birth", "old"), [("1959-01-09", True), ("1959-01-10", False)])
def test_advanced_age_edge(birth: str, old: bool) -> None:
    # the cycle starts 2024-01-09: born 1959-01-09 → 65 that day; 1959-01-10 → 64
    assert ("advanced-age" in _risk_kinds(birth=birth)) is old


@pytest.mark.parametrize(("pga", "inflamed"), [(7, True), (6.9, False), (70, True)])
def test_pga_at_least_7_at_the_latest_assessment(pga: float, inflamed: bool) -> None:
    unit = "mm" if pga == 70 else "cm"
    earlier = obs("pga0", "pga", 9, "cm", "2023-12-01")  # an older, higher PGA does not count
    latest = obs("pga1", "pga", pga, unit, "2024-01-08")
    kinds = _risk_kinds(earlier, latest)
    assert ("inflammation" in kinds) is inflamed
    if inflamed:
        assert kinds["inflammation"] == ["Observation/pga1"]


def test_a_later_former_smoker_status_ends_the_smoking_factor() -> None:
    # current smoker on 2023-12-01, former smoker (8517006 "Ex-smoker") on 2024-01-02, before
    # the cycle of 2024-01-09: not a risk factor any more
    quit_ = {
        **_smoking_status("8517006", "Ex-smoker"),
        "id": "quit",
        "effectiveDateTime": "2024-01-02",
    }
    assert "cardiovascular" not in _risk_kinds(
        _smoking_status("449868002", "Smokes tobacco daily"), quit_
    )
    # and a never-smoker status alone is nothing
    assert "cardiovascular" not in _risk_kinds(_smoking_status("266919005", "Never smoked tobacco"))


# -- §5.3 events: the window, early tagging, the AdverseEvent -----------------------------------

_DVT = "128053003"


def _cycle_with(*extra: Json, second_cycle: bool = False, rate: float = 150) -> PatientResult:
    """Cycle 1: 4 × 35 g on 2024-01-09..12, 09:00–13:00Z (last ends 01-12 13:00Z; the window
    ends 01-26). 70 kg, 10 %: 150 mL/h = 3.57 mg/kg/min. Optionally cycle 2 on 2024-02-06."""
    res: list[Json] = [obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC)]
    days = ["2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12"]
    if second_cycle:
        days += ["2024-02-06", "2024-02-07", "2024-02-08", "2024-02-09"]
    for k, day in enumerate(days):
        res.append(
            administration(
                f"a{k}",
                f"{day}T09:00:00Z",
                f"{day}T13:00:00Z",
                dose=qty(350, "mL"),
                rate=qty(rate, "mL/h"),
            )
        )
    return _exposure(*res, *extra)


def _events(r: PatientResult) -> list[Json]:
    return [d.resource for d in r.derived if d.resource["resourceType"] == "AdverseEvent"]


def _early(ae: Json) -> bool | None:
    ext = [e for e in ae.get("extension", []) if e["url"].endswith("tee-early-onset")]
    return ext[0]["valueBoolean"] if ext else None


@pytest.mark.parametrize(
    ("onset", "associated"),
    [
        ("2024-01-26T23:59:00Z", True),  # day 14 after the last administration
        ("2024-01-27T00:01:00Z", False),  # day 15
        ("2024-01-26", True),
        ("2024-01-27", False),
        # calendar dates in the record's own time zone: 01-27 in Tokyo is day 15 (16:00Z on 01-26)
        ("2024-01-27T01:00:00+09:00", False),
        # 01-26 in New York is day 14 (04:30Z on 01-27)
        ("2024-01-26T23:30:00-05:00", True),
        ("2024-01-09", True),  # the cycle's first day (a date-only onset on it)
    ],
)
def test_tee_window_edges(onset: str, associated: bool) -> None:
    r = _cycle_with(condition("dvt", SCT, _DVT, onset))
    assert bool(_events(r)) is associated


def test_tee_early_tagging_and_suspects() -> None:
    # onset 2024-01-10 12:00Z: after a0 (01-09 09:00–13:00; 23 h after its end) and during a1
    # (started 01-10 09:00): early; suspects a0 and a1 only (a2, a3 start after the onset)
    r = _cycle_with(condition("dvt", SCT, _DVT, "2024-01-10T12:00:00Z"))
    (ae,) = _events(r)
    assert _early(ae) is True
    assert [s["instance"]["reference"] for s in ae["suspectEntity"]] == [
        "MedicationAdministration/a0",
        "MedicationAdministration/a1",
    ]
    assert ae["event"]["coding"] == [{"system": SCT, "code": _DVT}]
    assert ae["resultingCondition"] == [{"reference": "Condition/dvt"}]
    assert ae["subject"] == {"reference": "Patient/p1"}


@pytest.mark.parametrize(
    ("onset", "early"),
    [
        ("2024-01-13T13:00:00Z", True),  # exactly 24 h after the last end
        ("2024-01-13T13:01:00Z", False),
        ("2024-01-20", False),  # a date-only onset no instant of which qualifies
        ("2024-01-13", None),  # 00:00–13:00 qualifies, the rest not: unknown
    ],
)
def test_tee_early_edges(onset: str, early: bool | None) -> None:
    (ae,) = _events(_cycle_with(condition("dvt", SCT, _DVT, onset)))
    assert _early(ae) is early


def test_an_event_before_ivig_is_history_not_an_event() -> None:
    r = _cycle_with(condition("dvt", SCT, _DVT, "2023-05-01"))
    assert _events(r) == []
    (flag,) = [d.resource for d in r.derived if d.resource["resourceType"] == "Flag"]
    assert "thrombosis-history" in flag["code"]["text"]


def test_an_event_outside_the_window_is_history_for_the_next_cycle() -> None:
    # DVT on 2024-01-30 (day 18 after cycle 1): not associated; cycle 2 (02-06) then has a
    # history risk factor: 3.57 mg/kg/min > 3.3 → a DetectedIssue per administration of cycle 2
    r = _cycle_with(condition("dvt", SCT, _DVT, "2024-01-30T10:00:00Z"), second_cycle=True)
    assert _events(r) == []
    issues = [d.resource for d in r.derived if d.resource["resourceType"] == "DetectedIssue"]
    assert sorted(i["implicated"][0]["reference"] for i in issues) == [
        f"MedicationAdministration/a{k}" for k in (4, 5, 6, 7)
    ]


# -- §2.3 category thresholds through FHIR (adult and juvenile) -----------------------------------

# pga 10 → 5.9 (41 %: 20) or → 6 (40 %: 17.5); mmt8-150 50 → 66 (10.67 %: 20), 65 (10 %: 10), 96
# (32.5); ptga 10 → 8.4 (16 %: 5), 5.9 (41 %: 10); haq 3 → 2.25 (25 %: 7.5), 2.55 (15 %: 5)
_PGA = {20: 5.9, 17.5: 6}
_MMT = {10: 65, 20: 66, 32.5: 96}


@pytest.mark.parametrize(
    ("pga", "mmt", "ptga", "haq", "tis", "adult", "juvenile"),
    [
        (17.5, None, None, None, "17.5", "none", "none"),
        (20, None, None, None, "20", "minimal", "none"),
        (17.5, 10, None, None, "27.5", "minimal", "none"),
        (20, 10, None, None, "30", "minimal", "minimal"),
        (17.5, 20, None, None, "37.5", "minimal", "minimal"),
        (20, 20, None, None, "40", "moderate", "minimal"),
        (20, 20, 5, None, "45", "moderate", "moderate"),
        (20, 32.5, None, 5, "57.5", "moderate", "moderate"),
        (20, 32.5, None, 7.5, "60", "major", "moderate"),
        (20, 32.5, 10, 5, "67.5", "major", "moderate"),
        (20, 32.5, 10, 7.5, "70", "major", "major"),
    ],
)
def test_category_thresholds(
    pga: float,
    mmt: float | None,
    ptga: float | None,
    haq: float | None,
    tis: str,
    adult: str,
    juvenile: str,
) -> None:
    before = {"pga": 10, "mmt": ("mmt8-150", 50), "ptga": 10, "haq": ("haq-di", 3)}
    after: dict[str, Any] = {
        "pga": _PGA[pga],
        "mmt": ("mmt8-150", _MMT[mmt] if mmt else 50),
        "ptga": {None: 10, 5: 8.4, 10: 5.9}[ptga],
        "haq": ("haq-di", {None: 3, 5: 2.55, 7.5: 2.25}[haq]),
    }
    for juv, want in ((False, adult), (True, juvenile)):
        dx = (
            condition("jdm", ICD, "M33.00", "2020-05-01")
            if juv
            else condition("dm", SCT, "396230008", "2023-06-01")
        )
        base = _visit("b", BASE_DAY, **{**_NEUTRAL, **before})
        follow = _visit("f", FOLLOW_DAY, **{**_NEUTRAL, **after})
        (obs_tis,) = _derived(_evaluate(patient(), dx, *base, *follow, *_ivig()), "tis")
        assert D(str(obs_tis["valueQuantity"]["value"])) == D(tis)
        assert _category(obs_tis) == want


def test_onset_before_18_makes_a_patient_juvenile_without_a_jdm_code() -> None:
    # born 2008-03-01, dermatomyositis (396230008) since 2023-06-01: onset at 15 → juvenile
    # criteria; 62.5 → moderate (not major)
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    base = _visit(
        "b", BASE_DAY, pga=6, ptga=7, mmt=("mmt8-150", 100), haq=("chaq", 1.5), em=4, ck=(3000, 200)
    )
    follow = _visit(
        "f",
        FOLLOW_DAY,
        pga=3,
        ptga=5,
        mmt=("mmt8-150", 130),
        haq=("chaq", 1.2),
        em=3,
        ck=(1200, 200),
    )
    (tis,) = _derived(_evaluate(patient(birth="2008-03-01"), dm, *base, *follow, *_ivig()), "tis")
    assert tis["method"]["coding"][0]["code"] == "juvenile-criteria"
    assert _category(tis) == "moderate"


def test_an_implausible_weight_from_fhir_is_not_the_dosing_weight() -> None:
    # 70 kg on 01-05, "700 kg" on 01-08 (outside 0.5–350): the cycle doses on 70 kg
    r = _exposure(
        obs("w1", "29463-7", 70, "kg", "2024-01-05", system=LOINC),
        obs("w2", "29463-7", 700, "kg", "2024-01-08", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(1400, "mL")),
    )
    (cycle,) = _derived(r, "ivig-cycle-dose")
    assert _value(_component(cycle, "dosing-weight")) == 70
    assert _value(cycle) == 2
    # a weight in pounds: 154.32 [lb_av] = 70.0 kg (0.45359237 kg/lb) → 140 g / 70.0 kg
    r = _exposure(
        obs("w1", "29463-7", 154.3236, "[lb_av]", "2024-01-08", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(1400, "mL")),
    )
    (cycle,) = _derived(r, "ivig-cycle-dose")
    assert _value(_component(cycle, "dosing-weight")).quantize(D("0.01")) == D("70.00")


# -- §4 cycles, stale weight, rateRatio; §5.1 the remaining factor kinds --------------------------


@pytest.mark.parametrize(("second", "cycles"), [("2024-01-16T09:00:00Z", 1), ("2024-01-17", 2)])
def test_cycle_gap_edge(second: str, cycles: int) -> None:
    # §4: an administration that starts more than 7 days after the previous one starts a cycle
    r = _exposure(
        obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", dose=qty(700, "mL")),
        administration(
            "b", second if "T" in second else f"{second}T09:00:00Z", dose=qty(700, "mL")
        ),
    )
    assert len(_derived(r, "ivig-cycle-dose")) == cycles


def test_stale_weight_is_used_with_a_warning() -> None:
    # weight 31 days before the cycle: used (140 g / 70 kg = 2 g/kg), said stale in the written
    # Observation (spec §4: "an older one is used with a 'stale weight' warning")
    r = _exposure(
        obs("w", "29463-7", 70, "kg", "2023-12-09", system=LOINC),
        administration("a", "2024-01-09T09:00:00Z", dose=qty(1400, "mL")),
    )
    (cycle,) = _derived(r, "ivig-cycle-dose")
    assert _value(cycle) == 2
    assert any("31 days before the cycle start" in n["text"] for n in cycle["note"])


def test_rate_ratio_is_read() -> None:
    # rateRatio 300 mL / 1 h, 10 %, 70 kg: 300 × 100 / (60 × 70) = 7.142857 mg/kg/min > 4
    a = administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:40:00Z", dose=qty(1400, "mL"))
    a["dosage"]["rateRatio"] = {"numerator": qty(300, "mL"), "denominator": qty(1, "h")}
    r = _exposure(obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC), a)
    (cycle,) = _derived(r, "ivig-cycle-dose")
    rate = _value(_component(cycle, "max-infusion-rate"))
    assert rate.quantize(D("0.01")) == D("7.14")
    assert [d.resource["resourceType"] for d in r.derived].count("DetectedIssue") == 1


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("441762006", "immobilisation"),
        ("307091009", "hypercoagulable"),
        ("93143009", "malignancy"),
        ("109989006", "hyperviscosity"),
        ("399211009", "thrombosis-history"),
        ("22298006", "thrombosis-history"),  # an MI before any IVIG
    ],
)
def test_condition_risk_factor_kinds(code: str, kind: str) -> None:
    kinds = _risk_kinds(condition("c", SCT, code, "2020-01-01"))
    assert kinds.get(kind) == ["Condition/c"]


def test_resolved_or_refuted_conditions() -> None:
    resolved = condition(
        "c",
        SCT,
        "93143009",
        "2015-01-01",
        abatementDateTime="2016-01-01",
        clinicalStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "resolved",
                }
            ]
        },
    )
    assert "malignancy" not in _risk_kinds(resolved)
    refuted = condition(
        "c",
        SCT,
        "93143009",
        "2015-01-01",
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "refuted",
                }
            ]
        },
    )
    assert "malignancy" not in _risk_kinds(refuted)


def test_deterioration_from_a_zero_baseline_uses_the_range() -> None:
    # ptga 0 → 3: relative undefined at 0, so absolute 3/10 = 30 % (≥ 30); with pga 5 → 6.5 and
    # haq 1 → 1.3: 3 of 5 worse by ≥ 30 % → deterioration, confirmed at the second
    base = _full("b", BASE_DAY, ptga=0)
    worse = [
        _full(f"w{i}", d, pga=6.5, ptga=3, haq=("haq-di", 1.3))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *worse])["valueBoolean"] is True
    # ptga 0 → 2.9: 29 %, only 2 of 5
    two = [
        _full(f"w{i}", d, pga=6.5, ptga=2.9, haq=("haq-di", 1.3))
        for i, d in enumerate(("2024-02-05", "2024-03-04"))
    ]
    assert _deterioration([base, *two])["valueBoolean"] is False


def test_same_day_values_latest_issued_wins() -> None:
    # two final PGAs at the follow-up: 3 (issued 10:00) and 4 (issued 11:00, a correction):
    # 4 is used: 6 → 4 = 20 % → 15
    first = obs("pga-f", "pga", 3, "cm", FOLLOW_DAY, issued=f"{FOLLOW_DAY}T10:00:00Z")
    later = obs("pga-f2", "pga", 4, "cm", FOLLOW_DAY, issued=f"{FOLLOW_DAY}T11:00:00Z")
    follow = [o for o in _full("f", FOLLOW_DAY) if not o["id"].startswith("pga")]
    r = _course(_full("b", BASE_DAY, pga=6), [*follow, first, later])
    (tis,) = _derived(r, "tis")
    assert _components(tis)["score-pga"] == 15
    # "if the candidates disagree, say so in the result's warnings"
    assert "conflicting-values" in [n.code for n in r.evaluation.course.notes]


def test_an_existing_adverse_event_in_the_window_is_associated() -> None:
    ae = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": _DVT}]},
        "date": "2024-01-15T10:00:00Z",
    }
    (out,) = _events(_cycle_with(ae))
    assert out["event"]["coding"] == [{"system": SCT, "code": _DVT}]
    assert len(out["suspectEntity"]) == 4  # every administration of cycle 1 started before
    assert _early(out) is False  # 01-15 is 3 days after the last end


def test_an_event_without_onset_is_reported_not_dropped() -> None:
    r = _cycle_with(condition("dvt", SCT, _DVT, None, recordedDate="2024-01-15"))
    assert _events(r) == []
    assert [(i.code, i.resource) for i in r.issues] == [("required", "Condition/dvt")]


def test_a_rate_per_kg_needs_no_weight() -> None:
    # 5 mg/kg/min with no body weight recorded: above 4 → a DetectedIssue all the same
    r = _exposure(
        administration(
            "a",
            "2024-01-09T09:00:00Z",
            "2024-01-09T13:00:00Z",
            dose=qty(35, "g"),
            rate=qty(5, "mg/kg/min"),
        )
    )
    assert [d.resource["resourceType"] for d in r.derived].count("DetectedIssue") == 1


def test_the_pga_rule_reads_the_latest_assessment_before_each_cycle() -> None:
    # pga 8 before cycle 1 (limit 3.3), pga 3 before cycle 2 (limit 4); 145 mL/h = 3.45 mg/kg/min:
    # above 3.3 in cycle 1 only
    r = _cycle_with(
        obs("p0", "pga", 8, "cm", "2024-01-08"),
        obs("p1", "pga", 3, "cm", "2024-02-05"),
        second_cycle=True,
        rate=145,
    )
    issues = [d.resource for d in r.derived if d.resource["resourceType"] == "DetectedIssue"]
    assert sorted(i["implicated"][0]["reference"] for i in issues) == [
        f"MedicationAdministration/a{k}" for k in range(4)
    ]
