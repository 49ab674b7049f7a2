"""IVIG administrations that name their Medication by its absolute URL on the FHIR server read.

FHIR R4 Reference.reference: "A reference to a location at which the other resource is found.
The reference may be a relative reference, in which case it is relative to the service base
URL, or an absolute URL that resolves to the location where the resource is found"
(hl7.org/fhir/R4/references-definitions.html#Reference.reference); ``[base]/Medication/octa``
read from the server at ``[base]`` names the same resource as ``Medication/octa``. Servers
return references as they were stored: HAPI FHIR (and Smile CDR) treat an absolute URL of
their own base as an external reference unless ``treatBaseUrlsAsLocal`` is configured, and
Azure Health Data Services and Google Cloud Healthcare store references as written, so data
loaded with absolute references comes back with them.

The CDS service reads such a reference on ``fhirServer`` (tests/api/
test_s27g_cds_absolute_medication_reference.py). ``fhirtis run`` did not: the pull keyed
every resource as ``Type/id``, so neither ``_include`` nor the reads by id resolved the
administration's Medication, and the evaluation passed over every IVIG administration in
silence -- no cycle, no dose, no baseline, no TIS, and not one issue (clinical spec §4: an
immune globulin that cannot be used "is reported, never ignored silently"). Now the pull reads
a reference on its own base as ``Type/id``: the run gives what the relative references give.
"""

from __future__ import annotations

from typing import Any

from fhirtis.pipeline.server import PatientRun, RunStatus
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load
from tests.e2e.test_vendor_shapes import _run
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


def _with_absolute_medication(base: str) -> Json:
    doc = responder(dvt_after_cycle=2)
    for entry in doc["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationAdministration":
            r["medicationReference"] = {"reference": f"{base}/Medication/octa"}
    return doc


def _derived(run: PatientRun) -> list[Json]:
    assert run.result is not None, run.error
    return [d.resource for d in run.result.derived]


def _kinds(run: PatientRun) -> set[str]:
    assert run.result is not None, run.error
    return {d.identifier.rsplit("-", 1)[0] for d in run.result.derived}


def _plain(fhir_server: FhirTestServer, fhir_base: str, profile: str) -> PatientRun:
    fhir_server.reset()
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    try:
        return _run(fhir_base, Forwarding())
    finally:
        fhir_server.set_profile("full")
        fhir_server.reset()


def _absolute(fhir_server: FhirTestServer, fhir_base: str, profile: str) -> PatientRun:
    load(fhir_base, _with_absolute_medication(fhir_base))
    fhir_server.set_profile(profile)
    try:
        return _run(fhir_base, Forwarding())
    finally:
        fhir_server.set_profile("full")


def test_absolute_medication_reference_with_include(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    plain = _plain(fhir_server, fhir_base, "full")
    run = _absolute(fhir_server, fhir_base, "full")
    assert run.status is RunStatus.WRITTEN, run.error
    assert {"ivig-cycle-dose", "ivig-cumulative-dose", "tis"} <= _kinds(run), _kinds(run)
    assert _kinds(run) == _kinds(plain)
    assert run.result is not None and plain.result is not None
    assert run.result.evaluation == plain.result.evaluation


def test_absolute_medication_reference_read_by_id(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """A server without ``_include`` (``oracle-like``): the Medication is read by id."""
    plain = _plain(fhir_server, fhir_base, "oracle-like")
    run = _absolute(fhir_server, fhir_base, "oracle-like")
    assert run.status is RunStatus.WRITTEN, run.error
    assert {"ivig-cycle-dose", "ivig-cumulative-dose", "tis"} <= _kinds(run), _kinds(run)
    assert run.result is not None and plain.result is not None
    assert run.result.evaluation == plain.result.evaluation
    assert [i for i in run.result.issues if i.severity == "error"] == []
