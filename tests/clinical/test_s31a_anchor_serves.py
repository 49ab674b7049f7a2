"""An anchor measure's value serves a nearby assessment that lacks it (clinical spec §2.5).

"An *assessment* is anchored on a date with a `pga` or `mmt8` value; each other measure takes
the value nearest that date within ±7 days" and "A value may serve more than one assessment".
For an assessment anchored on a PGA alone, the MMT-8 is one of its other measures (and the PGA
of one anchored on an MMT-8 alone): it takes the nearest within the window, as the other
measures do. The usual case: a screening visit records the full core set, the baseline visit a
few days later (just before the first IVIG) records everything but the MMT-8.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fhirtis.clinical.assessments import choose_baseline, group_assessments
from fhirtis.clinical.facts import Measure
from fhirtis.clinical.policy import Policy
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.clinical.helpers import mv
from tests.fhir.builders import (
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

P = Policy()
D0 = date(2024, 1, 10)
Json = dict[str, Any]


def _day(n: int) -> date:
    return D0 + timedelta(days=n)


def test_a_pga_only_assessment_takes_the_mmt8_of_a_visit_within_the_window() -> None:
    values = [
        mv("pga", 7, _day(0), source="Observation/pga-screening"),
        mv("mmt8-150", 100, _day(0), source="Observation/mmt-screening"),
        mv("pga", 6, _day(7), source="Observation/pga-baseline"),  # a repeat: its own visit
    ]
    g = group_assessments(values, P)
    screening, baseline = g.assessments
    assert baseline.day == _day(7)
    assert baseline.values[Measure.PGA].source == "Observation/pga-baseline"
    assert baseline.values[Measure.MMT8].source == "Observation/mmt-screening"
    # the screening keeps its own values
    assert screening.values[Measure.PGA].source == "Observation/pga-screening"
    assert screening.values[Measure.MMT8].source == "Observation/mmt-screening"


def test_an_mmt8_only_assessment_takes_the_pga_of_a_visit_within_the_window() -> None:
    values = [
        mv("pga", 7, _day(0), source="Observation/pga-screening"),
        mv("mmt8-150", 100, _day(0), source="Observation/mmt-screening"),
        mv("mmt8-150", 104, _day(5), source="Observation/mmt-baseline"),
    ]
    _, baseline = group_assessments(values, P).assessments
    assert baseline.values[Measure.MMT8].source == "Observation/mmt-baseline"
    assert baseline.values[Measure.PGA].source == "Observation/pga-screening"


def test_the_nearest_anchor_value_is_taken_and_none_beyond_the_window() -> None:
    values = [
        mv("pga", 7, _day(0)),
        mv("mmt8-150", 100, _day(0), source="Observation/mmt-far"),
        mv("pga", 6, _day(4)),  # lacks an MMT-8: day 7's is nearer than day 0's
        mv("pga", 5, _day(7)),
        mv("mmt8-150", 110, _day(7), source="Observation/mmt-near"),
        mv("pga", 4, _day(15)),  # 8 days from the nearest MMT-8: none
    ]
    g = group_assessments(values, P)
    assert [a.day for a in g.assessments] == [_day(0), _day(4), _day(7), _day(15)]
    assert g.assessments[1].values[Measure.MMT8].source == "Observation/mmt-near"
    assert Measure.MMT8 not in g.assessments[3].values


# -- the FHIR path ---------------------------------------------------------------------------

SCREENING, BASELINE, IVIG, FOLLOW = "2024-01-05", "2024-01-12", "2024-01-15", "2024-04-08"


def _visit(tag: str, day: str, *, pga: Any, mmt: Any, ck: Any, **vas: Any) -> list[Json]:
    out: list[Json] = []
    if pga is not None:
        out.append(obs(f"pga-{tag}", "pga", pga, "cm", day))
    if mmt is not None:
        out.append(obs(f"mmt-{tag}", "mmt8-150", mmt, "{score}", day))
    out.append(obs(f"ptga-{tag}", "ptga", vas["ptga"], "cm", day))
    out.append(obs(f"em-{tag}", "extramuscular", vas["em"], "cm", day))
    out.append(obs(f"haq-{tag}", "haq-di", vas["haq"], "{score}", day))
    out.append(enzyme(f"ck-{tag}", "2157-6", ck, day, uln=200))
    return out


def test_example_a_with_the_baseline_mmt8_from_the_screening_visit() -> None:
    # clinical spec §8 example A; the baseline visit (3 days before the first IVIG) records no
    # MMT-8, the screening visit 7 days earlier does: the baseline takes it (62.5, major)
    resources = [
        patient(),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w", "29463-7", 70, "kg", BASELINE, system=LOINC),
        administration(
            "ma",
            f"{IVIG}T09:00:00Z",
            f"{IVIG}T18:20:00Z",
            dose=qty(1400, "mL"),
            rate=qty(150, "mL/h"),
        ),
        *_visit("s", SCREENING, pga=6.5, mmt=100, ck=3000, ptga=7, em=4, haq=1.5),
        *_visit("b", BASELINE, pga=6, mmt=None, ck=3000, ptga=7, em=4, haq=1.5),
        *_visit("f", FOLLOW, pga=3, mmt=130, ck=1200, ptga=5, em=3, haq=1.2),
    ]
    result = evaluate_patient_resources(
        read_patient_bundle(json.dumps(bundle(*resources))), Settings()
    )
    (tis,) = [
        d.resource
        for d in result.derived
        if any(c.get("code") == "tis" for c in d.resource.get("code", {}).get("coding", []))
    ]
    assert tis["effectivePeriod"]["start"] == BASELINE
    assert Decimal(str(tis["valueQuantity"]["value"])) == Decimal("62.5")
    refs = {x["reference"] for x in tis["derivedFrom"]}
    assert "Observation/mmt-s" in refs


# -- a named baseline date on the second day of a split visit ---------------------------------


def test_a_named_baseline_date_may_be_the_second_day_of_a_split_visit() -> None:
    # clinical spec §2.5: a PGA and an MMT-8 on different days within the window are one
    # assessment, dated at the earlier; a caller naming the MMT-8's day names that visit (there
    # is a PGA or MMT-8 on it), not "no assessment on the named date"
    values = [
        mv("pga", 6, _day(0)),
        mv("mmt8-150", 100, _day(3)),
        mv("pga", 3, _day(40)),
        mv("mmt8-150", 130, _day(40)),
    ]
    g = group_assessments(values, P)
    assert [a.day for a in g.assessments] == [_day(0), _day(40)]
    choice = choose_baseline(g.assessments, P, None, _day(3))
    assert choice.index == 0
    assert choice.notes == ()
    # the assessment's own date still names it, and a day with no PGA or MMT-8 names none
    assert choose_baseline(g.assessments, P, None, _day(0)).index == 0
    assert choose_baseline(g.assessments, P, None, _day(2)).index is None


def test_a_named_date_is_never_matched_through_a_borrowed_anchor_value() -> None:
    values = [
        mv("pga", 7, _day(0)),  # lacks an MMT-8: takes day 5's
        mv("pga", 6, _day(3)),
        mv("mmt8-150", 100, _day(5)),  # its own visit: the split visit of day 3
    ]
    g = group_assessments(values, P)
    assert [a.day for a in g.assessments] == [_day(0), _day(3)]
    assert choose_baseline(g.assessments, P, None, _day(5)).index == 1
