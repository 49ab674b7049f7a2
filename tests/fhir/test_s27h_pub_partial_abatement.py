"""Conditions whose end (``abatementDateTime``) is recorded to the year or month only, as the
International Patient Summary publishes it: HL7/fhir-ips ``input/examples/
allergyIntolerance-with-abatement.xml`` (commit 64c1b1dac1259827d8cf5603e6a95c00aff0de7d) gives
a resolved item's abatement as ``valueDateTime value="2010"``, and the IPS Condition examples
(``condition-39-07-1.xml``, ``condition-rubella-immune.xml``) give dates to the year ("2014").
"2025" is a valid R4 dateTime (http://hl7.org/fhir/R4/datatypes.html#dateTime) and
``Condition.abatementDateTime`` is a dateTime (http://hl7.org/fhir/R4/condition.html).
Fixtures and sources in tests/data/s27h-pub.

Before, such a Condition was excluded with an error, coding and all: a resolved hypertension
(a cardiovascular risk factor, clinical spec §5.1) that may still have been active during the
infusions was not counted, nor was a resolved DVT (a history of thrombosis, which "does not end
when the thrombosis resolves", clinical spec, implementation decisions), and the maximum rate
stayed 4 mg/kg/min where 3.3 applies. An end known only to the year or month is read as its
last possible day (the safe side for the maximum rate, as an onset known only to the month is
read as its first possible day)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import LOINC, SCT, administration, condition, medication, obs, patient, qty
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture
from tests.fhir.test_s25_pub_onset import _evaluate

DATA = Path(__file__).parents[1] / "data" / "s27h-pub"
ABATEMENT = "Bundle.entry[5].resource.abatementDateTime"
IVIG = ["MedicationAdministration/ivig-1", "MedicationAdministration/ivig-2"]


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s27h_*.py"))
    )


def test_a_hypertension_resolved_in_the_year_of_the_infusions_is_a_risk_factor() -> None:
    """``ips-year-abatement-hypertension.json``: hypertension (38341003), onset 2011-08-15,
    resolved, ``abatementDateTime`` "2025"; IVIG 10 g/100 mL, 700 mL at 150 mL/h on 2025-03-03
    and -04, 70 kg: 150 x 100 / (60 x 70) = 3.5714 mg/kg/min. It may have been active until
    2025-12-31, so the cardiovascular risk factor applies, the maximum is 3.3 and both
    administrations are rate findings; one warning names the abatementDateTime. Before: excluded
    with an error, maximum 4, no finding."""
    result = evaluate_fixture(DATA / "ips-year-abatement-hypertension.json")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.source, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.CARDIOVASCULAR, "Condition/htn-s27h", date(2011, 8, 15), date(2025, 12, 31))
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [f.administration_source for f in thrombosis.rate_findings] == IVIG
    (warning,) = result.issues
    assert (warning.severity, warning.expression, warning.resource) == (
        "warning",
        ABATEMENT,
        "Condition/htn-s27h",
    )
    assert "2025-12-31" in warning.diagnostics


def test_a_dvt_resolved_in_a_year_is_still_a_history_of_thrombosis() -> None:
    """``ips-year-abatement-dvt.json``: DVT (128053003) onset 2019-01-05, resolved "2019"; the
    same IVIG in March 2025. A history of thrombosis from 2019-01-05 (its end does not matter),
    maximum 3.3, both administrations rate findings, no issue (its end changes nothing).
    Before: excluded with an error, maximum 4, no finding."""
    result = evaluate_fixture(DATA / "ips-year-abatement-dvt.json")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.source, e.onset.day) for e in result.data.events] == [
        ("Condition/dvt-s27h", date(2019, 1, 5))
    ]
    thrombosis = result.evaluation.thrombosis
    assert [e.source for e in thrombosis.history_events] == ["Condition/dvt-s27h"]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [f.administration_source for f in thrombosis.rate_findings] == IVIG
    assert result.issues == []


def test_a_hypertension_resolved_in_a_month_before_the_infusions_is_not_counted() -> None:
    """Resolved "2025-02" (by 2025-02-28 at the latest), IVIG on 2025-03-03: the risk factor
    had ended; the maximum stays 4 (no finding at 3.5714), and the Condition is read, not
    excluded (no error)."""
    result = _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        condition(
            "htn",
            SCT,
            "38341003",
            "2011-08-15",
            clinicalStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "resolved",
                    }
                ]
            },
            abatementDateTime="2025-02",
        ),
    )
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.CARDIOVASCULAR, date(2025, 2, 28))
    ]
    assert result.evaluation.thrombosis.max_rate_now.limit_mg_kg_min == Decimal("4")
    assert result.evaluation.thrombosis.rate_findings == ()


def test_the_ips_breast_cancer_in_remission_is_read_and_over_before_the_infusions() -> None:
    """``ips-bundle-breast-cancer-remission.json``: the Condition of HL7/fhir-ips
    ``input/examples/IPS-bundle-01.xml`` as published (SNOMED CT 254837009 "Malignant tumor of
    breast" beside ICD-O-3 8500/3, clinicalStatus ``remission``, onset "2015-01", abatement
    "2015-03"), the same IVIG in March 2025. A malignancy from 2015-01-01 to 2015-03-31, not
    active in 2025: maximum 4, no finding (3.5714 < 4); two warnings (onset and end known to
    the month only), no error. Before: excluded with an error, coding and all."""
    result = evaluate_fixture(DATA / "ips-bundle-breast-cancer-remission.json")
    source = "Condition/a4f0c6e2-9d1b-4e7a-8c35-b2f6e1d9a047"
    assert [(e.kind, e.source, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.MALIGNANCY, source, date(2015, 1, 1), date(2015, 3, 31))
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("4")
    assert thrombosis.rate_findings == ()
    assert sorted((i.severity, i.expression) for i in result.issues) == [
        ("warning", ABATEMENT),
        ("warning", "Bundle.entry[5].resource.onsetDateTime"),
    ]
