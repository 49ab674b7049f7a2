"""Patient → the patient's facts; which patients a set of resources is about; whether a Patient
is a merged record that another replaced (:func:`replaced_by`, read by every path that
evaluates a patient). Pure: no network."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from datetime import date

from fhirtis.clinical.facts import (
    PatientFacts,
    Sex,
)
from fhirtis.clinical.thrombosis import surely_before
from fhirtis.fhir.extract.common import (
    ExcludedError,
    ExtractorBase,
    Json,
    PatientData,
    TimeElements,
    first_fhir_time,
    ref_of,
    unversioned,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    PrimitiveError,
    parse_date_bounds,
)

_DECEASED = TimeElements.of("deceasedDateTime")
_GENDER = {"male": Sex.MALE, "female": Sex.FEMALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}


class PatientReader(ExtractorBase):
    # -- Patient -----------------------------------------------------------------------------

    def _patient(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        self._require_id(r, path)
        facts = patient_facts(r)
        if "birthDate" in r and facts.birth_date is None:
            data.issues.append(
                Issue(
                    "warning",
                    "value",
                    f"{ref_of(r)}: birthDate is not a FHIR date; age unknown",
                    f"{path}.birthDate",
                )
            )
        data.patient_source = self._use(data, r)
        if r.get("deceasedBoolean") is True:
            data.deceased = True
        elif "deceasedDateTime" in r:
            data.deceased = True
            try:
                data.deceased_on = first_fhir_time(r, _DECEASED, path)
            except ExcludedError as exc:
                data.issues.append(
                    Issue("warning", exc.issue_code, f"{ref_of(r)}: {exc.message}", exc.path)
                )
        data.patient = facts


def patient_facts(patient: Json) -> PatientFacts:
    """A Patient's sex and birth date (a birth date recorded to the year or month only is its
    first and last possible day); a birth date that is not a FHIR date is unknown (the reader
    says so)."""
    birth: date | None = None
    latest: date | None = None
    with contextlib.suppress(PrimitiveError):
        birth, latest = parse_date_bounds(patient.get("birthDate"))
    gender = patient.get("gender")
    sex = _GENDER.get(gender, Sex.UNKNOWN) if isinstance(gender, str) else Sex.UNKNOWN
    return PatientFacts(birth_date=birth, sex=sex, birth_date_latest=latest)


def check_deceased(data: PatientData) -> None:
    """A patient recorded deceased is still evaluated (the record, for a registry), but the
    result says so: "now" (the current risk factors, the maximum rate, the risk Flag) describes
    the record, not future care; and an administration after the recorded death is reported
    as contradictory data, never silently counted as if nothing were wrong."""
    if not data.deceased:
        return
    when = f" on {data.deceased_on.day.isoformat()}" if data.deceased_on is not None else ""
    data.issues.append(
        Issue(
            "warning",
            "informational",
            f"the patient is recorded deceased{when}: the current risk factors and maximum rate "
            "describe the record, not future care",
            "Patient.deceased[x]",
            data.patient_source,
        )
    )
    if data.deceased_on is None:
        return
    for admin in data.administrations:
        if surely_before(data.deceased_on, admin.start):
            ref = unversioned(admin.source)
            data.issues.append(
                Issue(
                    "warning",
                    "business-rule",
                    f"{ref} is dated after the patient's recorded death: counted as recorded; "
                    "check the record",
                    "MedicationAdministration.effective[x]",
                    ref,
                )
            )


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


#: ``Patient/[id]`` at the end of a reference (relative or absolute, R4 references.html).
_PATIENT_REF = re.compile(r"(?<![A-Za-z])Patient/[A-Za-z0-9\-.]{1,64}\Z")

#: What :func:`replaced_by` answers for a ``replaced-by`` link whose ``other`` names no Patient
#: (an identifier-only or a contained reference).
ANOTHER_RECORD = "another record"


def replaced_by(patient: Mapping[str, object] | None) -> str | None:
    """The record a Patient says replaced it (``link`` of type ``replaced-by``: "The patient
    resource containing this link must no longer be used", R4 patient.html), as its reference
    ``Patient/[id]`` or :data:`ANOTHER_RECORD`; None where it says none (``replaces``,
    ``refer`` and ``seealso`` leave the record in use). Oracle Health answers the read of a
    combined patient with such an inactive Patient, its data moved to the surviving record
    (cerner/fhir.cerner.com, Patient Combine Example); HAPI's ``$merge`` leaves the source
    Patient so."""
    links = patient.get("link") if patient is not None else None
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("type") == "replaced-by":
            other = link.get("other")
            ref = other.get("reference") if isinstance(other, dict) else None
            text = ref.partition("/_history/")[0] if isinstance(ref, str) else ""
            named = _PATIENT_REF.search(text)
            return named.group(0) if named is not None else ANOTHER_RECORD
    return None


def merged_message(patient_ref: str, successor: str) -> str:
    """The one sentence every path gives for a merged record (no patient data but the ids)."""
    return (
        f"{patient_ref} is a merged record (Patient.link replaced-by {successor}): "
        f"it must no longer be used; evaluate {successor} instead"
    )
