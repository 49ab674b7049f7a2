"""A small FHIR server faked with pytest-httpx for the s25 server-pull tests: a
CapabilityStatement built per test, one patient's data by type, ``_include`` of the referenced
resources and ``_id`` searches, every request recorded."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import httpx

from fhirtis.fhir.needs import NEEDS
from tests.io._support import BASE

Json = dict[str, Any]
SCT = "http://snomed.info/sct"


def resource_entry(
    rtype: str,
    params: Sequence[str] = ("subject", "patient", "_id"),
    includes: Sequence[str] | None = None,
    interactions: Sequence[str] = ("read", "search-type"),
) -> Json:
    entry: Json = {
        "type": rtype,
        "interaction": [{"code": c} for c in interactions],
        "searchParam": [{"name": p, "type": "reference"} for p in params],
    }
    if includes is not None:
        entry["searchInclude"] = list(includes)
    return entry


def statement(overrides: Mapping[str, Json | None] | None = None, *, batch: bool = False) -> Json:
    """Every needed type searchable by subject and patient, with its ``_include``; batch only
    with ``batch``. ``overrides``: per type, its entry (None: the type is not listed)."""
    entries: dict[str, Json | None] = {"Patient": resource_entry("Patient", ("_id",))}
    for need in NEEDS:
        entries[need.resource_type] = resource_entry(
            need.resource_type, includes=[need.include] if need.include else []
        )
    entries["Medication"] = resource_entry("Medication", ("_id",))
    entries["Device"] = resource_entry("Device", ("patient", "_id"))
    entries.update(overrides or {})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "batch"}] if batch else [],
                "resource": [e for e in entries.values() if e is not None],
            }
        ],
    }


def patient() -> Json:
    return {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01"}


def active_dvt() -> Json:
    """An active deep venous thrombosis (SNOMED CT 128053003) with its onset time."""
    return {
        "resourceType": "Condition",
        "id": "dvt",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SCT, "code": "128053003"}]},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "onsetDateTime": "2024-02-13T10:00:00Z",
    }


def ivig_medication(medication_id: str = "med1") -> Json:
    """An IVIG Medication coded in ATC (J06BA02, immunoglobulins normal human, for
    intravascular administration)."""
    return {
        "resourceType": "Medication",
        "id": medication_id,
        "code": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
            "text": "Immune globulin, intravenous",
        },
    }


def catheter(device_id: str = "line") -> Json:
    """A central venous catheter with no patient of its own (IPS / R4 example shape)."""
    return {
        "resourceType": "Device",
        "id": device_id,
        "type": {"coding": [{"system": SCT, "code": "52124006"}], "text": "CVC"},
    }


def use_statement(device_id: str = "line", **extra: Any) -> Json:
    return {
        "resourceType": "DeviceUseStatement",
        "id": "dus",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": f"Device/{device_id}"},
        "timingPeriod": {"start": "2024-01-05T10:00:00Z"},
        **extra,
    }


Handler = Callable[[httpx.Request], httpx.Response | None]


class FakeServer:
    """``data``: the patient's resources searched by type; ``others``: resources only read by
    id or brought by ``_include``. ``before``: handlers tried first (a vendor's quirk)."""

    def __init__(
        self,
        caps: Json | None,
        data: Sequence[Json] = (),
        others: Sequence[Json] = (),
        before: Sequence[Handler] = (),
        *,
        batch: bool = False,
    ) -> None:
        self.caps = caps
        self.batch = batch  # takes searches in a batch (each entry answered as its GET)
        self.data = list(data)
        self.by_ref = {f"{r['resourceType']}/{r['id']}": r for r in [*data, *others]}
        self.before = list(before)
        self.requests: list[httpx.Request] = []

    def paths(self) -> list[str]:
        """Each request as ``METHOD path?query`` relative to the base (decoded)."""
        prefix = httpx.URL(BASE).path.rstrip("/") + "/"
        out = []
        for r in self.requests:
            path = r.url.path[len(prefix) :] if r.url.path.startswith(prefix) else r.url.path
            query = unquote(r.url.query.decode())
            out.append(f"{r.method} {path}" + (f"?{query}" if query else ""))
        return out

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for handler in self.before:
            answer = handler(request)
            if answer is not None:
                return answer
        prefix = httpx.URL(BASE).path.rstrip("/") + "/"
        path = request.url.path[len(prefix) :]
        if request.method == "POST" and path == "":
            if not self.batch:  # no batch: R4 http.html, 405
                return httpx.Response(405, json=_outcome("not-supported", "batch"))
            return httpx.Response(200, json=self._batch(request))
        if path == "metadata":
            if self.caps is None:
                return httpx.Response(404, json={"resourceType": "OperationOutcome"})
            return httpx.Response(200, json=self.caps)
        if "/" in path:
            found = self.by_ref.get(path)
            if found is None:
                return httpx.Response(404, json=_outcome("not-found"))
            return httpx.Response(200, json=found)
        return httpx.Response(200, json=self.search(path, request.url.params))

    def _batch(self, request: httpx.Request) -> Json:
        bundle = json.loads(request.content)
        entries = []
        for e in bundle["entry"]:
            inner = httpx.Request("GET", f"{BASE}/{e['request']['url']}")
            answer = self(inner)
            entries.append(
                {"resource": answer.json(), "response": {"status": str(answer.status_code)}}
            )
        return {"resourceType": "Bundle", "type": "batch-response", "entry": entries}

    def search(self, rtype: str, params: httpx.QueryParams) -> Json:
        ids = params.get("_id")
        if ids is not None:
            wanted = ids.split(",")
            matches = [self.by_ref[f"{rtype}/{i}"] for i in wanted if f"{rtype}/{i}" in self.by_ref]
        else:
            matches = [r for r in self.data if r["resourceType"] == rtype]
        entries = [_entry(r, "match") for r in matches]
        for include in params.get_list("_include"):
            element = include.split(":")[1]
            for r in matches:
                ref = (r.get(element) or r.get(f"{element}Reference") or {}).get("reference")
                if isinstance(ref, str) and ref in self.by_ref:
                    entries.append(_entry(self.by_ref[ref], "include"))
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def _entry(r: Json, mode: str) -> Json:
    return {
        "fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}",
        "resource": r,
        "search": {"mode": mode},
    }


def _outcome(code: str, text: str = "") -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def outcome(code: str, text: str = "") -> Json:
    return _outcome(code, text)
