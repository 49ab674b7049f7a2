"""Security labels written with the v3 code systems' OIDs are carried, in their canonical URL.

R4 terminologies-systems.html: the URI listed for a code system "SHALL be used in preference to
any other identifying mechanisms" (``http://terminology.hl7.org/CodeSystem/v3-Confidentiality``,
``…/v3-ActCode``), yet systems converted from HL7 v2/CDA still send
``urn:oid:2.16.840.1.113883.5.25`` (Confidentiality) and ``urn:oid:2.16.840.1.113883.5.4``
(ActCode). Such a label was passed over as
a site's own: a TIS computed from a PGA labelled ``R`` by OID was written back unlabelled."""

from __future__ import annotations

from fhirtis.fhir.security import covers, kept_on_update, labels_of
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

OID_CONF = "urn:oid:2.16.840.1.113883.5.25"
OID_ACT = "urn:oid:2.16.840.1.113883.5.4"


def test_oid_labels_are_read_as_the_canonical_systems() -> None:
    meta = {"security": [{"system": OID_CONF, "code": "R"}, {"system": OID_ACT, "code": "HIV"}]}
    assert labels_of(meta) == {(CONF, "R"), (ACT, "HIV")}


def test_a_value_labelled_by_oid_labels_its_tis_with_the_canonical_url() -> None:
    doc = _label(
        responder(), "pga3", {"system": OID_CONF, "code": "R"}, {"system": OID_ACT, "code": "PSY"}
    )
    tis = _by_code(_evaluate(doc))["tis"]
    assert _security(tis[-1]) == [R, {"system": ACT, "code": "PSY"}]
    assert _security(tis[0]) is None


def test_a_stored_oid_label_counts_and_is_written_canonical_on_update() -> None:
    stored = {"meta": {"security": [{"system": OID_CONF, "code": "V"}]}}
    assert covers(labels_of(stored["meta"]), frozenset({(CONF, "R")}))
    body = kept_on_update({"resourceType": "Observation", "meta": {"security": [R]}}, stored)
    assert body["meta"]["security"] == [{"system": CONF, "code": "V"}]
