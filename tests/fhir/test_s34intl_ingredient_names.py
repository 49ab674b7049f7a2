"""The immunoglobulin ingredient of an IVIG Medication named in German, Nordic or Latin (clinical
spec §4: "the concentration is the strength of the immunoglobulin ingredient, identified by its
code or name; never simply the first ingredient listed").

European product information names the active ingredient "Normales Immunglobulin vom Menschen"
(Privigen's EU SmPC in German: "Ein Milliliter enthält: Normales Immunglobulin vom Menschen
100 mg", excipient "L-Prolin"; Octagam 10 % and Gamunex 10 % German package leaflets: "Normales
Immunglobulin vom Menschen (IVIg)"), Swissmedic "immunoglobulinum humanum normale 100 g, prolinum,
... Wasser ad iniectabilia ... für 1000 ml" (Privigen), and Swedish/Norwegian "humant normalt
immunglobulin"; German Medication resources code it with the ASK substance code and its German
name, and list the solvent too (MII KDS Medikation example ``mii-exa-medikation-medication-
glucoseloesung``: ingredient ASK 00343 "Wasser für Injektionszwecke", isActive false;
medizininformatik-initiative/kerndatensatzmodul-medikation: input/fsh/instances/Instances.fsh).

fhirtis recognised the immunoglobulin ingredient by English names only and its stabilisers by
their English names only. So an immunoglobulin ingredient named in German without a strength, next
to a stabiliser "Glycin" with one, gave the product the stabiliser's strength as its
concentration: 15 mg/mL instead of unknown, 350 mL counted as 5.25 g instead of 35 g, and an
infusion at 300 mL/h on 70 kg as 1.07 mg/kg/min instead of 7.14, under the 4 mg/kg/min limit
(no finding) where it is above it. With both strengths recorded, the concentration was unknown.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
ASK = "http://fhir.de/CodeSystem/ask"
ATC_DE = "http://fhir.de/CodeSystem/bfarm/atc"


def _ingredient(name: str | None, strength: tuple[int, str, int, str] | None) -> Json:
    coding: Json = {"system": ASK, "code": "99999"}
    if name is not None:
        coding["display"] = name
    ing: Json = {"isActive": True, "itemCodeableConcept": {"coding": [coding]}}
    if strength is not None:
        num, num_unit, den, den_unit = strength
        ing["strength"] = {"numerator": qty(num, num_unit), "denominator": qty(den, den_unit)}
    return ing


def _concentration(*ingredients: Json) -> Decimal | None:
    """The concentration read for a 350 mL infusion at 300 mL/h of an IVIG (ATC J06BA02 under
    the German ATC URI, named by its brand) with ``ingredients``."""
    med = {
        "resourceType": "Medication",
        "id": "octa",
        "code": {"coding": [{"system": ATC_DE, "code": "J06BA02"}], "text": "Gamunex 10%"},
        "ingredient": list(ingredients),
    }
    ma = administration(
        "a1", "2025-03-03T09:00:00+01:00", dose=qty(350, "mL"), rate=qty(300, "mL/h")
    )
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    data = extract(patient(), weight, med, ma)
    assert [a.dose_ml for a in data.administrations] == [Decimal(350)]
    return data.administrations[0].concentration_mg_per_ml


@pytest.mark.parametrize(
    ("ig_name", "stabiliser"),
    [
        ("Normales Immunglobulin vom Menschen", "Glycin"),
        ("Immunglobulin G vom Menschen", "Polysorbat 80"),
        ("humant normalt immunglobulin", "glycin"),
        ("Normales Immunglobulin vom Menschen", "Saccharose"),
    ],
)
def test_a_stabiliser_strength_is_never_the_concentration(ig_name: str, stabiliser: str) -> None:
    """The immunoglobulin, named in German or Swedish, has no strength; the stabiliser has
    one: the concentration is unknown (said by the dose summary), never the stabiliser's.
    Before: the stabiliser's strength (15 mg/mL of glycine)."""
    concentration = _concentration(
        _ingredient(ig_name, None), _ingredient(stabiliser, (15, "mg", 1, "mL"))
    )
    assert concentration is None


@pytest.mark.parametrize(
    ("ig", "other"),
    [
        # Privigen as its German SmPC lists it
        (
            ("Normales Immunglobulin vom Menschen", (100, "mg", 1, "mL")),
            ("Glycin", (15, "mg", 1, "mL")),
        ),
        # Swissmedic's Latin composition of Privigen (100 g per 1000 mL, prolinum)
        (
            ("immunoglobulinum humanum normale", (100, "g", 1000, "mL")),
            ("prolinum", (29, "mg", 1, "mL")),
        ),
        # an immunoglobulin coded by ASK alone, beside L-Prolin (Privigen's German excipient)
        ((None, (100, "mg", 1, "mL")), ("L-Prolin", (29, "mg", 1, "mL"))),
        # beside the solvent as MII lists it, here with an amount
        ((None, (100, "mg", 1, "mL")), ("Wasser für Injektionszwecke", (1, "mL", 1, "mL"))),
    ],
)
def test_the_immunoglobulin_strength_is_the_concentration(
    ig: tuple[str | None, tuple[int, str, int, str]], other: tuple[str, tuple[int, str, int, str]]
) -> None:
    """Both ingredients have a strength: the immunoglobulin's (100 mg/mL) is the concentration,
    whichever is listed first. Before: unknown (two candidates, neither recognised)."""
    for order in ((ig, other), (other, ig)):
        assert _concentration(*(_ingredient(n, s) for n, s in order)) == Decimal(100)


def test_english_names_unchanged() -> None:
    """The English names read as before."""
    assert _concentration(
        _ingredient("Glycine", (15, "mg", 1, "mL")),
        _ingredient("human normal immunoglobulin", (100, "mg", 1, "mL")),
    ) == Decimal(100)
