"""Patient → the patient's facts; which patients a set of resources is about. Pure: no network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from fhirtis.clinical.facts import (
    PatientFacts,
    Sex,
)
from fhirtis.fhir.extract.common import (
    ExtractorBase,
    Json,
    PatientData,
    ref_of,
    unversioned,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    PrimitiveError,
    parse_date_bounds,
)

_GENDER = {"male": Sex.MALE, "female": Sex.FEMALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}


class PatientReader(ExtractorBase):
    # -- Patient -----------------------------------------------------------------------------

    def _patient(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        self._require_id(r, path)
        birth: date | None = None
        birth_latest: date | None = None  # a birth date recorded to the year or month only
        if "birthDate" in r:
            try:
                birth, birth_latest = parse_date_bounds(r["birthDate"])
            except PrimitiveError:
                data.issues.append(
                    Issue(
                        "warning",
                        "value",
                        f"{ref_of(r)}: birthDate is not a FHIR date; age unknown",
                        f"{path}.birthDate",
                    )
                )
        gender = r.get("gender")
        sex = _GENDER.get(gender, Sex.UNKNOWN) if isinstance(gender, str) else Sex.UNKNOWN
        data.patient_source = self._use(data, r)
        data.patient = PatientFacts(birth_date=birth, sex=sex, birth_date_latest=birth_latest)


def patient_refs(resources: Iterable[Json]) -> set[str]:
    """Every patient a set of resources is about (Patient ids and subject/patient references)."""
    refs: set[str] = set()
    for r in resources:
        if r.get("resourceType") == "Patient" and isinstance(r.get("id"), str):
            refs.add(f"Patient/{r['id']}")
            continue
        for key in ("subject", "patient"):
            value = r.get(key)
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                patient = patient_ref_in(value["reference"])
                if patient is not None:
                    refs.add(patient)
    return refs


def patient_ref_in(reference: str) -> str | None:
    """The "Patient/id" a subject/patient reference names (relative or absolute, version
    specific or not), or None."""
    reference = unversioned(reference)
    if reference.startswith("Patient/") or "/Patient/" in reference:
        return "Patient/" + reference.rsplit("Patient/", 1)[1]
    return None
