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
        "b", BASE_DAY, pga=6, ptga=7, mmt=("mmt8-150", 100), haq=("haq-di", 1.5), em=4,
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
    assert {"Observation/pga-b", "Observation/pga-f", "Observation/ck-b", "Observation/ck-f"} <= refs


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
        "f", FOLLOW_DAY, pga=4.5, ptga=5, mmt=("mmt8-80", 62), haq=("haq-di", 1), em=2,
        ck=(450, 200),
    )
    r = _evaluate(patient(), condition("dm", SCT, "396230008", "2023-06-01"), *base, *follow, *_ivig())
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
        "b", BASE_DAY, pga=2.2, ptga=5, mmt=("mmt8-150", 100), haq=("haq-di", 1), em=2,
        ck=(500, 200),
    )
    follow = _visit(
        "f", FOLLOW_DAY, pga=0.7, ptga=5, mmt=("mmt8-150", 100), haq=("haq-di", 1), em=2,
        ck=(500, 200),
    )
    r = _evaluate(patient(), condition("dm", SCT, "396230008", "2023-06-01"), *base, *follow, *_ivig())
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
    r = _evaluate(patient(birth="2012-03-01" if juvenile else "1970-03-01"), dx, *base, *follow, *_ivig())
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
def test_juvenile_instrument_edges(
    arg: str, before: Any, after: Any, key: str, score: str
) -> None:
    comps = _one_measure(arg, before, after, juvenile=True)
    assert comps[f"score-{key}"] == D(score)
