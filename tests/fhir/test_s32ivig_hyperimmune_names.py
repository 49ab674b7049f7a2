"""Antigen-specific (hyperimmune) immune globulins named as real records name them are not IVIG
(clinical spec §4: IVIG is intravenous *normal* human immune globulin, ATC J06BA02; the specific
immunoglobulins are ATC J06BB, "Spezifische Immunglobuline", J06BB01 "Anti-D(rh)-Immunglobulin",
hl7germany/forschungsnetz-covid19: input/fsh/valuesets/ImmunoglobulinsATC.fsh).

Before, each of these, given intravenously, was counted as an IVIG administration (grams, a
cycle, a dose in g/kg, TEE association), because its name holds a generic immune globulin name
("immune globulin", "intravenous immunoglobulin") and none of the antigen words fhirtis knew:

* anti-D written "Rh", "Rh0(D)" (digit zero) or "Rh o (D)" rather than "Rho(D)": IV anti-D
  (WinRho SDF, Rhophylac) is given for ITP and to Rh-negative women. "Rh immune globulin (RhIg)
  preparation for intravenous use", "RhIg-intravenous (RhIg-IV)" (Institute for Transfusion
  Medicine, http://www.itxm.org/tmu/tmu1995/tmu9-95.htm); "intravenous Rh(D) immunoglobulin
  (IV RhIG)" (http://www.clinlabnavigator.com/rh-immune-globulin-for-itp.html); other names
  "Rh0(D) immune globulin, anti-D (Rh0) immunoglobulin" (Wikipedia "Rho(D) immune globulin",
  as copied at https://review.clateway.com/wiki/view_html.php?lang=en&q=Rho%28D%29_immune_globulin);
  "antibodies to Rh o (D)" (WinRho SDF monograph, http://www.healthdigest.org/topics/category/
  1609-rh-dosage-interactions-side-effects-how-to-use).
* CVX 71 "RSV-IGIV", "respiratory syncytial virus immune globulin, intravenous" (RespiGam), the
  CDC CVX table (https://www2a.cdc.gov/vaccines/iis/iisstandards/vaccines.asp?rpt=cvx; US Core
  ValueSet us-core-vaccines-cvx, https://hl7.org/fhir/us/core/stu3.1.1/ValueSet-us-core-vaccines-cvx.html).
* "hyperimmune intravenous immunoglobulin (hIVIG)" to SARS-CoV-2 (ITAC, Lancet 2022;399:530-40,
  PubMed 35093205, https://pubmed.ncbi.nlm.nih.gov/35093205/).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, SCT, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
IV = {"coding": [{"system": SCT, "code": "47625008"}]}
CVX = "http://hl7.org/fhir/sid/cvx"


def administered(concept: Json, route: Json | None = IV) -> Json:
    """60 g of an inline ``medicationCodeableConcept`` on 2025-03-02, by ``route``."""
    ma = administration("a1", "2025-03-02T09:00:00Z", dose=qty(60, "g"), med="Medication/none")
    del ma["medicationReference"]
    ma["medicationCodeableConcept"] = concept
    if route is not None:
        ma["dosage"]["route"] = route
    return ma


HYPERIMMUNE = [
    "Rh immune globulin intravenous (RhIg-IV)",
    "Rh immune globulin",
    "Rh(D) immune globulin intravenous",
    "Rh0(D) immune globulin",
    "Rh o (D) immune globulin",
    "anti-D (Rh0) immunoglobulin",
    "Respiratory syncytial virus immune globulin, intravenous",
    "SARS-CoV-2 hyperimmune intravenous immunoglobulin (hIVIG)",
]


@pytest.mark.parametrize("route", [IV, None], ids=["iv", "no-route"])
@pytest.mark.parametrize("text", HYPERIMMUNE)
def test_a_hyperimmune_globulin_is_not_counted_as_ivig(text: str, route: Json | None) -> None:
    data = extract(patient(), WEIGHT, administered({"text": text}, route))
    assert data.administrations == []
    # known not to be IVIG (as "Rho(D) immune globulin" and "hepatitis B immune globulin" are):
    # not reported as an unrecognised immune globulin either
    assert not [i for i in data.issues if "looks like an immune globulin" in i.diagnostics]


def test_cvx_71_rsv_igiv_is_not_counted_as_ivig() -> None:
    """CVX 71 with its CDC display, as an Immunization-derived record sends it."""
    concept = {
        "coding": [
            {
                "system": CVX,
                "code": "71",
                "display": "respiratory syncytial virus immune globulin, intravenous",
            }
        ]
    }
    data = extract(patient(), WEIGHT, administered(concept))
    assert data.administrations == []


def test_cvx_87_igiv_is_still_counted() -> None:
    """Control: CVX 87 "IGIV", "immune globulin, intravenous" (CDC CVX table) is normal immune
    globulin given intravenously: counted, 60 g."""
    concept = {"coding": [{"system": CVX, "code": "87", "display": "immune globulin, intravenous"}]}
    data = extract(patient(), WEIGHT, administered(concept))
    assert [(a.source, a.dose_g) for a in data.administrations] == [
        ("MedicationAdministration/a1", Decimal(60))
    ]


@pytest.mark.parametrize(
    "text",
    [
        "immune globulin G, human 100 MG/ML Injectable Solution",
        "Privigen 100 MG/ML Injectable Solution",
        "GAMMAGARD LIQUID, Immune Globulin Infusion (Human), 10% Solution",
        "human normal immunoglobulin",
    ],
)
def test_normal_immune_globulin_is_still_counted(text: str) -> None:
    """Control: the new antigen words do not catch normal immune globulin names."""
    data = extract(patient(), WEIGHT, administered({"text": text}))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
