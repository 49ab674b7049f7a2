"""The ``patient`` parameter of ``$myositis-evaluate`` as an absolute reference
(fhirtis/api/evaluate.py, fhirtis/api/app.py).

The parameter is a ``Reference(Patient)`` (profiles/OperationDefinition-myositis-evaluate.json).
R4 references.html, "Literal References": ``Reference.reference`` is "a relative URL, which is
relative to the Service Base URL, or an absolute URL that resolves to the location where the
resource is found". The patient lives on the EHR's FHIR server, not on fhirtis's base, so a
client that names it exactly writes the absolute URL (``https://ehr.example.org/fhir/Patient/p1``);
a version-specific reference (``Patient/p1/_history/2``) names the same Patient. fhirtis answered
both 400 "parameter patient is not a valid Patient id". Now an absolute reference whose base is
a FHIR server on the allow-list evaluates that Patient there (as the ``server`` parameter would
name it); one on another server is 403 as that ``server`` would be, and one that contradicts the
``server`` given is 400.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.test_evaluate_api import AUTH, service
from tests.e2e.test_run import load
from tests.fhir.patients import responder

TYPE_OP = "/Patient/$myositis-evaluate"
INSTANCE_OP = "/Patient/p1/$myositis-evaluate"


def _parameters(*params: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(params)}


def _patient(reference: str) -> dict[str, Any]:
    return {"name": "patient", "valueReference": {"reference": reference}}


def _derived(r: httpx.Response) -> list[Any]:
    assert r.status_code == 200, r.text
    return [e["resource"]["resourceType"] for e in r.json()["entry"][1:]]


async def test_an_absolute_reference_on_the_server_is_evaluated(fhir_base: str) -> None:
    load(fhir_base, responder())
    async with service(fhir_base) as api:
        relative = await api.post(TYPE_OP, headers=AUTH, json=_parameters(_patient("Patient/p1")))
        for reference in (
            f"{fhir_base}/Patient/p1",
            f"{fhir_base}/Patient/p1/_history/1",
            "Patient/p1/_history/1",
        ):
            r = await api.post(TYPE_OP, headers=AUTH, json=_parameters(_patient(reference)))
            assert _derived(r) == _derived(relative), reference
        # the instance level: the same Patient as the URL's
        r = await api.post(
            INSTANCE_OP, headers=AUTH, json=_parameters(_patient(f"{fhir_base}/Patient/p1"))
        )
        assert _derived(r) == _derived(relative)


async def test_an_absolute_reference_elsewhere_is_refused(fhir_base: str) -> None:
    async with service(fhir_base) as api:
        r = await api.post(
            TYPE_OP,
            headers=AUTH,
            json=_parameters(_patient("https://evil.example.org/fhir/Patient/p1")),
        )
        assert r.status_code == 403, r.text  # as server=https://evil.example.org/fhir is
        assert r.json()["resourceType"] == "OperationOutcome"
        # the server named twice, differently: by the patient's reference and by server
        r = await api.post(
            TYPE_OP,
            headers={**AUTH, "X-FHIR-Server": "https://other.example.org/fhir"},
            json=_parameters(_patient(f"{fhir_base}/Patient/p1")),
        )
        assert r.status_code in (400, 403), r.text
        r = await api.post(
            TYPE_OP,
            headers=AUTH,
            json=_parameters(
                _patient(f"{fhir_base}/Patient/p1"),
                {"name": "server", "valueUri": "https://other.example.org/fhir"},
            ),
        )
        assert r.status_code in (400, 403), r.text


async def test_an_absolute_reference_agreeing_with_server_is_taken(fhir_base: str) -> None:
    load(fhir_base, responder())
    async with service(fhir_base) as api:
        r = await api.post(
            TYPE_OP,
            headers={**AUTH, "X-FHIR-Server": fhir_base + "/"},
            json=_parameters(_patient(f"{fhir_base}/Patient/p1")),
        )
        assert "Observation" in _derived(r)


async def test_what_is_no_patient_reference_stays_400(fhir_base: str) -> None:
    async with service(fhir_base) as api:
        for reference in (
            f"{fhir_base}/Observation/p1",
            f"{fhir_base}/Patient/",
            "urn:uuid:6f0c2a3e-8d4b-4a55-9a43-0c6f2e1f7a10",
            "#p1",
            "Patient/p1/_history/",
            "ftp://ehr.example.org/fhir/Patient/p1",
        ):
            r = await api.post(TYPE_OP, headers=AUTH, json=_parameters(_patient(reference)))
            assert r.status_code == 400, (reference, r.text)
            assert r.json()["issue"][0]["expression"] == ["patient"], r.text
