"""A MedicationAdministration whose product is coded only by NDC, with no name, session 29 "d"
(fixture and sources in tests/data/s29d-pub/README.md).

US pharmacy and claims-derived systems may code an administered product only by its National
Drug Code (`http://hl7.org/fhir/sid/ndc`), as the HL7 R4 example medicationadministration0303
does (there with a display). fhirtis reads IVIG by ATC, RxNorm, SNOMED CT or a name (clinical
spec §4) and lists no NDC codes: a product coded only by NDC *and* named nowhere cannot be told
from any other, IVIG included. It was passed over without a word: 70 g of Privigen (NDC
44206-439-40, openFDA, profiles/TERMINOLOGY.md) read as 0 g, no issue, exit 0. The spec says that
nothing is guessed silently and that what may be an immune globulin is reported, never ignored:
as a Condition coded in no code system fhirtis reads is (clinical spec, implementation
decisions), each such administration now gets one warning saying it could not be identified
and is not counted. A named product (an NDC with a display or text) is read by its name as
before: an immune globulin counted, anything else passed over silently.
"""

from __future__ import annotations

from pathlib import Path

from tests.fhir.builders import administration, medication, obs, patient, qty
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s29d-pub"
NDC = "http://hl7.org/fhir/sid/ndc"
LOINC = "http://loinc.org"


def test_an_ivig_coded_only_by_ndc_is_reported_not_silently_dropped() -> None:
    result = evaluate_fixture(DATA / "ndc-only-immune-globulin-administrations.json")
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.exposure.cycles == ()  # not counted: nothing identifies it as IVIG
    said = [i for i in result.issues if i.resource and "could not be identified" in i.diagnostics]
    assert [(i.severity, i.resource) for i in said] == [
        ("warning", "MedicationAdministration/ndc-ma1"),
        ("warning", "MedicationAdministration/ndc-ma2"),
    ]
    for issue in said:
        assert f"{NDC}|44206-439-40" in issue.diagnostics
        assert "not counted as IVIG" in issue.diagnostics
        assert issue.expression is not None and issue.expression.endswith("medicationReference")


def _data(code: tuple[str, str], text: str, status: str = "completed") -> list[str]:
    med = medication("m", code=code, text=text, grams_per_100ml=None)
    if not text:
        del med["code"]["text"]
    data = extract(
        patient(),
        obs("w", "29463-7", 70, "kg", "2025-01-01", system=LOINC),
        med,
        administration(
            "a", "2025-01-02T09:00:00Z", dose=qty(35, "g"), med="Medication/m", status=status
        ),
    )
    return [i.diagnostics for i in data.issues]


def test_a_named_ndc_product_is_read_by_its_name_as_before() -> None:
    # an immune globulin named by its brand: counted, nothing to say
    assert _data((NDC, "44206-439-40"), "PRIVIGEN 10% liquid, 40 g/400 mL") == []
    # anything else named (the R4 example's Zosyn): passed over silently, as before
    assert _data((NDC, "0206-8862-02"), "Zosyn (piperacillin/tazobactam) 4.5gm injection") == []


def test_an_unnamed_product_coded_in_a_system_fhirtis_reads_is_not_reported() -> None:
    # RxNorm: fhirtis reads it (ivig-products, risk-estrogen), so a code it does not list is
    # known not to be IVIG
    assert _data(("http://www.nlm.nih.gov/research/umls/rxnorm", "197361"), "") == []


def test_an_unnamed_ndc_product_recorded_as_not_given_is_not_reported() -> None:
    assert _data((NDC, "44206-439-40"), "", status="entered-in-error") == []
    assert _data((NDC, "44206-439-40"), "", status="not-done") == []


def test_a_reference_display_names_the_product_unless_it_names_an_immune_globulin() -> None:
    def said(display: str) -> list[str]:
        med = medication("m", code=(NDC, "44206-439-40"), text="", grams_per_100ml=None)
        del med["code"]["text"]
        given = administration("a", "2025-01-02T09:00:00Z", dose=qty(35, "g"), med="Medication/m")
        given["medicationReference"]["display"] = display
        data = extract(patient(), med, given)
        return [i.diagnostics for i in data.issues if "could not be identified" in i.diagnostics]

    assert said("Heparin 5,000 units/mL") == []  # named: not an immune globulin
    assert len(said("Immune globulin 10% IV")) == 1  # named as one, yet unidentifiable: said
