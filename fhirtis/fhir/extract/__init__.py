"""FHIR R4 resources → the clinical core's facts. Pure: no network, no clinical rules.

Reading is the hot path of registry runs, so resources stay plain dicts (from ``orjson``) and
only the elements the computation uses are validated — strictly: type, format, code system
membership, unit. A resource that fails is excluded with an :class:`Issue` naming where; the
rest still counts. Resources fhirtis does not use (a blood pressure, an antibiotic) are passed
over without a word; a Condition, AdverseEvent or Procedure coded in no code system the TEE and
risk-factor ValueSets use (ICD-11, ICD-10-PCS, text only) cannot be told apart from one that
matters, so it is reported as unclassified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fhirtis.fhir.codes import Terminology
from fhirtis.fhir.extract.common import (
    CORE_SET_CODES,
    ENZYME_VALUE_SETS,
    ExcludedError,
    ExtractSettings,
    Json,
    PatientData,
    read_quantity,
)
from fhirtis.fhir.extract.events import EventReader, hierarchy_questions
from fhirtis.fhir.extract.observations import ObservationReader
from fhirtis.fhir.extract.patient import (
    PatientReader,
    check_deceased,
    merged_message,
    patient_refs,
    replaced_by,
)

__all__ = [
    "CORE_SET_CODES",
    "ENZYME_VALUE_SETS",
    "ExcludedError",
    "ExtractSettings",
    "Extractor",
    "PatientData",
    "hierarchy_questions",
    "merged_message",
    "patient_refs",
    "read_quantity",
    "replaced_by",
]


class Extractor(PatientReader, ObservationReader, EventReader):
    """Reads one patient's resources. Create one per patient."""

    def __init__(self, terminology: Terminology, settings: ExtractSettings | None = None) -> None:
        super().__init__(terminology, settings)
        self.check_concept_map()  # a contradictory map is refused before any patient is read
        self._handlers: dict[str, Callable[[PatientData, str, Json, Mapping[str, Json]], None]] = {
            "Patient": self._patient,
            "Observation": self._observation,
            "DiagnosticReport": self._diagnostic_report,
            "MedicationAdministration": self._administration,
            "Condition": self._condition,
            "AdverseEvent": self._adverse_event,
            "MedicationStatement": self._medication_use,
            "MedicationRequest": self._medication_use,
            "Device": self._device,
            "DeviceUseStatement": self._device_use,
            "Procedure": self._procedure,
        }

    # -- entry point -------------------------------------------------------------------------

    def extract(
        self,
        patient_ref: str,
        resources: Sequence[tuple[str, Json]],
        resolve: Mapping[str, Json],
    ) -> PatientData:
        """``resources``: (location, resource) pairs of one patient; ``resolve``: every resource
        reachable by reference ("Medication/1", "urn:uuid:…")."""
        data = PatientData(patient_ref=patient_ref, patient_source=patient_ref)
        handlers = self._handlers
        self._listed = resources
        self._conditions = None  # found when an AdverseEvent asks (see _condition_refs)
        self._device_uses = None  # found when a Device without patient asks
        self._resolve = resolve
        self._unclassified.clear()
        self._recognised.clear()
        self._medications = {}
        self._med_containers = {}
        self._med_refs = {}
        self._smoking_statuses.clear()
        self._dm_onset_ranges.clear()
        self._tee_onset_ages.clear()
        self._ivig_orders.clear()
        self._ivig_identified.clear()
        for path, resource in resources:
            kind = resource.get("resourceType")
            handler = handlers.get(kind if isinstance(kind, str) else str(kind))
            if handler is None:
                continue
            self._path = path
            try:
                status, meta = resource.get("status"), resource.get("meta")
                if (status is not None and not isinstance(status, str)) or (
                    meta is not None and not isinstance(meta, dict)
                ):
                    _check_shared_elements(resource, path)  # raises, naming the element
                handler(data, path, resource, resolve)
            except ExcludedError as exc:
                data.issues.append(exc.as_issue(resource))
        self._finish_smoking(data)
        self._finish_dm_onset_ranges(data)
        self._finish_tee_onset_ages(data)
        self._finish_ivig_orders(data)
        self._report_unclassified(data)
        check_deceased(data)
        return data


def _check_shared_elements(resource: Json, path: str) -> None:
    """The elements every handler reads the same way have their JSON type: ``status`` a code
    (a string), ``meta`` an object. Anything else is malformed FHIR: the resource is excluded
    with an error naming the element (never a crash further on)."""
    status = resource.get("status")
    if status is not None and not isinstance(status, str):
        raise ExcludedError("structure", "status is not a code", f"{path}.status")
    meta = resource.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise ExcludedError("structure", "meta is not an object", f"{path}.meta")
