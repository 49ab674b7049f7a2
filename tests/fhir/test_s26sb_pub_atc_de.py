"""ATC codes under the German system URI ``http://fhir.de/CodeSystem/bfarm/atc`` (the BfArM's
official German ATC, which HL7 Deutschland's basis profile fixes as "the canonical CodeSystem URL
for ATC" and the Medical Informatics Initiative's medication module sends, with a yearly
``version``). Before, such a code was not read as ATC: an estrogen coded only so was no risk
factor and no issue said so (clinical spec §5.1), and an immune globulin named generically was
taken for a dual-route product whatever its ATC code said: a subcutaneous one (J06BA01) was
counted as IVIG (§4: ATC J06BA01 is not IVIG)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract

ATC_DE = "http://fhir.de/CodeSystem/bfarm/atc"
GENERIC = "Immunglobulin vom Menschen"  # a German generic name, no brand


def _statement(code: str, text: str) -> dict[str, Any]:
    """A MedicationStatement in the MII KDS example shape (``medicationCodeableConcept`` with
    one ATC-DE coding and its ``version``, ``text`` the product)."""
    return {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": ATC_DE, "version": "2024", "code": code}],
            "text": text,
        },
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-01-02T08:00:00+01:00"},
    }


def test_an_estrogen_coded_in_german_atc_is_the_risk_factor() -> None:
    """G03AA07 (levonorgestrel and ethinylestradiol) under ATC-DE, named by its brand only."""
    data = extract(patient(), _statement("G03AA07", "Microgynon 21"))
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.ESTROGEN, "MedicationStatement/ms1")
    ]


def _given(code: str) -> Any:
    med = medication(code=(ATC_DE, code), text=GENERIC)
    ma = administration("a1", "2025-03-03T09:00:00Z", dose=qty(35, "g"))  # no route recorded
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    return extract(patient(), weight, med, ma)


def test_german_atc_j06ba02_is_an_intravenous_product() -> None:
    """J06BA02 (intravascular) names an IV product: counted, no "route not recorded" warning."""
    data = _given("J06BA02")
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


def test_german_atc_j06ba01_is_not_ivig() -> None:
    """J06BA01 (extravascular: subcutaneous/intramuscular) is not IVIG, even named generically."""
    data = _given("J06BA01")
    assert data.administrations == []
    (issue,) = data.issues
    assert "not counted" in issue.diagnostics
