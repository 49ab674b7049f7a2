"""Security labels (session s39, helper left): two ways a restrictive label was lost.

(a) A sensitivity code sent under the Confidentiality code system. HL7 v3 Confidentiality
(``urn:oid:2.16.840.1.113883.5.25``, R4 ``http://terminology.hl7.org/CodeSystem/v3-Confidentiality``)
once held, besides the levels U L M N R V, the codes B C D I ETH HIV PSY S SDV T; they are retired
there, most "replaced by ActCode.<code>" (ETH, HIV, PSY, SDV; C by ActCode CEL, T by ActCode
TBOO), and older data (DS4P / Consent2Share era, HL7 v2/CDA conversions) still sends them so.
fhirtis read only the six levels under that system and dropped the rest: a weight labelled
"Confidentiality ETH" (substance abuse related) gave an unlabelled dose. Now a retired code with
one replacement is carried as that ActCode label; any other code under the system is carried as
it is (never dropped), and takes no part in the confidentiality high water mark.

(b) A Medication read by id through an administration (its ``medicationReference``) or through
a statement (an estrogen). What is computed from the administration is computed from it too:
the product is recognised as IVIG by it, the grams of a dose in mL come from its strength, the
rate in mg/kg/min from its concentration, the estrogen factor from its code. Its labels reached
only the Provenance (s37) while a *contained* Medication's labels reached every resource derived
from its administration (s38): the same Medication labelled R left the cycle dose unlabelled
when referenced. Now a Medication (or catheter Device) read by id through a source labels what
is derived from that source, as a contained one does.
"""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.fhir.security import covers, high_water, kept_on_update, labels_of
from tests.fhir.patients import responder
from tests.fhir.test_s37seclab_security_labels import (
    ACT,
    CONF,
    R,
    _by_code,
    _evaluate,
    _label,
    _security,
)
from tests.fhir.test_s38dev_referenced_device_provenance import _with_catheter
from tests.fhir.test_s38rev_estrogen_medication_provenance import _with_estrogen

Json = dict[str, Any]
OID_CONF = "urn:oid:2.16.840.1.113883.5.25"
STU3_CONF = "http://hl7.org/fhir/v3/Confidentiality"


# -- (a) sensitivity codes under the Confidentiality system -------------------------------------


@pytest.mark.parametrize("system", [OID_CONF, CONF, STU3_CONF])
@pytest.mark.parametrize(
    ("code", "act"),
    [("ETH", "ETH"), ("HIV", "HIV"), ("PSY", "PSY"), ("SDV", "SDV"), ("C", "CEL"), ("T", "TBOO")],
)
def test_a_retired_confidentiality_code_is_read_as_its_actcode(
    system: str, code: str, act: str
) -> None:
    assert labels_of({"security": [{"system": system, "code": code}]}) == {(ACT, act)}


@pytest.mark.parametrize("code", ["S", "D", "I", "B", "XYZ"])
def test_another_code_under_confidentiality_is_kept_as_it_is(code: str) -> None:
    assert labels_of({"security": [{"system": OID_CONF, "code": code}]}) == {(CONF, code)}


def test_a_kept_code_is_no_confidentiality_level() -> None:
    both = high_water([frozenset({(CONF, "S")}), frozenset({(CONF, "R")}), frozenset()])
    assert both == {(CONF, "S"), (CONF, "R")}
    assert high_water([frozenset({(CONF, "S")})]) == {(CONF, "S")}
    # a stored resource covers what it holds, never a kept code it lacks
    assert covers(frozenset({(CONF, "V"), (CONF, "S")}), frozenset({(CONF, "S"), (CONF, "R")}))
    assert not covers(frozenset({(CONF, "V")}), frozenset({(CONF, "S")}))
    assert not covers(frozenset({(CONF, "S")}), frozenset({(CONF, "R")}))
    stored = {"meta": {"security": [{"system": OID_CONF, "code": "S"}]}}
    body = kept_on_update({"resourceType": "Observation", "meta": {"security": [R]}}, stored)
    assert body["meta"]["security"] == [R, {"system": CONF, "code": "S"}]


def test_a_weight_labelled_eth_under_confidentiality_labels_the_doses() -> None:
    doc = _label(responder(), "w0", {"system": OID_CONF, "code": "ETH"})
    result = _evaluate(doc)
    eth = [{"system": ACT, "code": "ETH"}]
    by = _by_code(result)
    # w0 (70 kg) is every cycle's dosing weight
    assert [_security(d) for d in by["ivig-cycle-dose"]] == [eth] * 4
    assert _security(by["ivig-cumulative-dose"][0]) == eth
    assert all(_security(t) is None for t in by["tis"])
    bundle = result.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) == eth


def test_a_pga_labelled_s_under_confidentiality_keeps_it() -> None:
    doc = _label(responder(), "pga3", {"system": OID_CONF, "code": "S"}, R)
    tis = _by_code(_evaluate(doc))["tis"]
    assert _security(tis[-1]) == [R, {"system": CONF, "code": "S"}]


# -- (b) a Medication read by id labels what is derived from its administration ----------------


def _labelled_medication(doc: Json, *security: Json) -> Json:
    for e in doc["entry"]:
        if e["resource"]["resourceType"] == "Medication":
            e["resource"]["meta"] = {"versionId": "2", "security": list(security)}
    return doc


def test_a_referenced_medications_label_reaches_every_resource_of_its_administrations() -> None:
    doc = _labelled_medication(responder(fast_admin=True, dvt_after_cycle=2), R)
    result = _evaluate(doc)
    by_type: dict[str, list[Json]] = {}
    for d in result.derived:
        by_type.setdefault(d.resource["resourceType"], []).append(d.resource)
    by = _by_code(result)
    # every administration names Medication/octa: every dose, rate issue and suspected event
    assert [_security(d) for d in by["ivig-cycle-dose"]] == [[R]] * 4
    assert _security(by["ivig-cumulative-dose"][0]) == [R]
    assert by_type["DetectedIssue"]  # fast administrations: above the maximum rate
    assert all(_security(i) == [R] for i in by_type["DetectedIssue"])
    (ae,) = by_type["AdverseEvent"]
    assert _security(ae) == [R]
    # the TIS and the risk Flag are not computed from the product
    assert all(_security(t) is None for t in by["tis"])
    (flag,) = by_type["Flag"]
    assert _security(flag) is None


def test_a_referenced_medication_labels_as_a_contained_one_does() -> None:
    doc = responder()
    ma = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "ma10")
    med = {
        **next(
            e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Medication"
        ),
        "id": "octa-eth",
        "meta": {"security": [{"system": ACT, "code": "ETH"}]},
    }
    doc["entry"].append({"fullUrl": "Medication/octa-eth", "resource": med})
    ma["medicationReference"] = {"reference": "Medication/octa-eth"}
    doses = _by_code(_evaluate(doc))["ivig-cycle-dose"]
    assert _security(doses[1]) == [{"system": ACT, "code": "ETH"}]  # cycle 2 holds ma10
    assert [_security(d) for d in (doses[0], doses[2], doses[3])] == [None] * 3


def test_an_estrogen_medications_label_reaches_the_risk_flag() -> None:
    doc = _with_estrogen("MedicationStatement", {"security": [R]})
    result = _evaluate(doc)
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    assert "estrogen" in str(flag)
    assert _security(flag) == [R]


def test_a_referenced_catheter_devices_label_reaches_the_risk_flag() -> None:
    doc = _with_catheter({"security": [R]})
    result = _evaluate(doc)
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    assert "central-venous-catheter" in str(flag)
    assert _security(flag) == [R]
    # the doses are not computed from the catheter
    assert all(_security(d) is None for d in _by_code(result)["ivig-cycle-dose"])
