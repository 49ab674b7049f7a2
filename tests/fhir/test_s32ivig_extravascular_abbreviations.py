"""Immune globulins named as given under the skin or into a muscle by the abbreviations drug
references use are not IVIG (clinical spec §4: "Subcutaneous products (J06BA01) are not IVIG";
intramuscular is not IVIG either). Session 31 taught fhirtis the spelled-out names ("Immune
Globulin Subcutaneous (Human)", "Immune Globulin Intramuscular (Human)"); the abbreviated ones
were still counted as IVIG when no route was recorded (60 g, a cycle, with only the warning that
the route was not recorded, as for a name that gives no route):

* "immune globulin SC": the Medscape monograph of the subcutaneous products (Hizentra, HyQvia,
  Cuvitru, Xembify, Cutaquig), https://reference.medscape.com/drug/hizentra-cutaquig-immune-globulin-sc-343219
* "immune globulin IM (IGIM)": the Medscape monograph of GamaSTAN / GamaSTAN S/D (dosed IM only),
  https://reference.medscape.com/drug/gamastan-s-d-immune-globulin-im-igim-343137
* "Immu globulin,gamma (igg) intramusc." (brands Gamastan, Gammar; "administered by injection
  into a muscle"), https://www.patientassistance.com/G10099-immuglobulingammaiggintramusc.html
* GamaSTAN itself, "Immune Globulin Intramuscular (Human), Brand Name(s): Gamastan"
  (https://www.safemedication.com/drug-library/a/6/2/4/0/a624079): named beside the generic
  "immune globulin (human)" it was counted; it is now an extravascular product (scig-products,
  as Subgam is).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir.builders import LOINC, SCT, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
IV = {"coding": [{"system": SCT, "code": "47625008"}]}


def administered(text: str, route: Json | None) -> Json:
    """60 g of a medicationCodeableConcept named ``text`` on 2025-03-02, by ``route``."""
    ma = administration("a1", "2025-03-02T09:00:00Z", dose=qty(60, "g"), med="Medication/none")
    del ma["medicationReference"]
    ma["medicationCodeableConcept"] = {"text": text}
    if route is not None:
        ma["dosage"]["route"] = route
    return ma


@pytest.mark.parametrize(
    ("text", "way"),
    [
        ("immune globulin SC", "subcutaneous"),
        ("immune globulin IM (IGIM)", "intramuscular"),
        ("Immu globulin,gamma (igg) intramusc.", "intramuscular"),
        ("GamaSTAN S/D immune globulin (human)", "subcutaneous"),  # the scig-products wording
    ],
)
def test_an_extravascular_product_by_abbreviation_is_not_ivig(text: str, way: str) -> None:
    data = extract(patient(), WEIGHT, administered(text, None))
    assert data.administrations == []
    said = [i.diagnostics for i in data.issues if i.resource == "MedicationAdministration/a1"]
    assert any("not counted" in d and way in d for d in said), said


def test_a_name_giving_no_route_is_still_counted_with_a_warning() -> None:
    data = extract(patient(), WEIGHT, administered("immune globulin", None))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert any("route not recorded" in i.diagnostics for i in data.issues)


def test_an_intravenous_name_is_still_counted_without_a_warning() -> None:
    data = extract(patient(), WEIGHT, administered("immune globulin IV (IGIV)", None))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert not [i for i in data.issues if "route not recorded" in i.diagnostics]
