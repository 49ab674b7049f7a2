"""Conditions, AdverseEvents, Devices, Procedures and medication use → thromboembolic events
and risk evidence. Pure: no network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from fhirtis.clinical.facts import (
    FhirTime,
    RiskEvidence,
    RiskFactorKind,
    TeeEvent,
    TeeKind,
)
from fhirtis.fhir.codes import (
    IDENTIFIER_SYSTEM,
)
from fhirtis.fhir.extract.common import (
    ExcludedError,
    Json,
    PatientData,
    concept_codings,
    concept_text,
    first_fhir_time,
    first_time,
    ref_of,
)
from fhirtis.fhir.extract.medications import MedicationReader, UnresolvedMedicationError

_CONDITION_VOID = {"entered-in-error", "refuted"}
_CONDITION_ENDED = {"inactive", "remission", "resolved"}


class EventReader(MedicationReader):
    # -- Condition and AdverseEvent -----------------------------------------------------------

    def _tee_kind(self, codings: list[tuple[str | None, str | None]]) -> TeeKind | None:
        for kind, index in self._tee.items():
            if index.matches_any(codings):
                return kind
        return None

    def _tee_coding(self, codings: list[tuple[str | None, str | None]]) -> tuple[str, str] | None:
        """The event's own coding (the first that a TEE ValueSet holds), for the AdverseEvent."""
        for system, code in codings:
            if system and code and any(i.matches_any([(system, code)]) for i in self._tee.values()):
                return (system, code)
        return None

    def _condition(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = concept_codings(r.get("code"), f"{path}.code")
        tee = self._tee_kind(codings)
        risks = [k for k, index in self._risk.items() if index.matches_any(codings)]
        is_dm = any(vs.matches_any(codings) for vs in self._dm)
        if tee is None and not risks and not is_dm:
            return
        self._require_id(r, path)
        verification = concept_codings(r.get("verificationStatus"), f"{path}.verificationStatus")
        if any(code in _CONDITION_VOID for _, code in verification):
            return
        self._check_subject(data, r, "subject", path)
        clinical = {
            code for _, code in concept_codings(r.get("clinicalStatus"), f"{path}.clinicalStatus")
        }
        onset: FhirTime | None = None
        try:
            onset = first_fhir_time(r, ("onsetDateTime", "onsetPeriod.start"), path)
        except ExcludedError as exc:
            if exc.issue_code != "required":
                raise
        end: date | None = None
        if r.get("abatementDateTime") is not None:
            end = first_time(r, ("abatementDateTime",), path)[0].date()
        if is_dm:
            self._use(data, r)
            if self._jdm is not None and self._jdm.matches_any(codings):
                data.jdm_coded = True
            if onset is not None and (data.dm_onset is None or onset.day < data.dm_onset):
                data.dm_onset = onset.day
        if tee is not None and r.get("id"):
            if onset is None:
                raise ExcludedError(
                    "required", "a thromboembolic event needs its onset", f"{path}.onset[x]"
                )
            source = self._use(data, r, onset)
            data.events.append(
                TeeEvent(
                    tee,
                    source,
                    onset,
                    concept_text(r.get("code")) or None,
                    self._tee_coding(codings),
                )
            )
        ended = bool(clinical & _CONDITION_ENDED)
        for kind in risks:
            if ended and end is None and kind is not RiskFactorKind.THROMBOSIS_HISTORY:
                continue  # resolved, with no date: not active at any time we can name
            source = self._use(data, r)
            start = onset.day if onset is not None else None
            data.evidence.append(
                RiskEvidence(kind, source, start, end, concept_text(r.get("code")) or None)
            )

    def _adverse_event(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        identifiers = r.get("identifier")
        idents = identifiers if isinstance(identifiers, list) else [identifiers]
        if any(isinstance(i, dict) and i.get("system") == IDENTIFIER_SYSTEM for i in idents):
            data.existing_derived.append(r)
            return  # fhirtis's own output is never read back as an input event
        tee = self._tee_kind(concept_codings(r.get("event"), f"{path}.event"))
        if tee is None:
            return
        self._require_id(r, path)
        if r.get("actuality") == "potential":
            return
        for rc in r.get("resultingCondition", []) or []:
            ref = rc.get("reference") if isinstance(rc, dict) else None
            if not isinstance(ref, str):
                continue
            target = self._resolve.get(ref)
            if (ref_of(target) if target is not None else ref) in self._conditions:
                return  # the same event as a Condition read here: counted once, there
        self._check_subject(data, r, "subject", path)
        onset = first_fhir_time(r, ("date", "detected"), path)
        source = self._use(data, r, onset)
        data.events.append(
            TeeEvent(
                tee,
                source,
                onset,
                concept_text(r.get("event")) or None,
                self._tee_coding(concept_codings(r.get("event"), f"{path}.event")),
            )
        )

    def _medication_use(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        try:
            _, codings, _ = self._medication(r, path, resolve)
        except UnresolvedMedicationError:
            return  # an unknown medication shows no risk factor
        self._risk_medication(data, r, codings, path)

    def _device(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        index = self._risk.get(RiskFactorKind.CENTRAL_VENOUS_CATHETER)
        if index is None or not index.matches_any(concept_codings(r.get("type"), f"{path}.type")):
            return
        self._require_id(r, path)
        if r.get("status") != "active":
            return
        self._check_subject(data, r, "patient", path)
        source = self._use(data, r)
        data.evidence.append(
            RiskEvidence(
                RiskFactorKind.CENTRAL_VENOUS_CATHETER,
                source,
                None,
                None,
                concept_text(r.get("type")) or None,
            )
        )

    def _procedure(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = concept_codings(r.get("code"), f"{path}.code")
        kinds = [k for k, index in self._risk.items() if index.matches_any(codings)]
        if not kinds:
            return
        self._require_id(r, path)
        if r.get("status") in {"entered-in-error", "not-done", "preparation"}:
            return
        self._check_subject(data, r, "subject", path)
        start = first_time(r, ("performedDateTime", "performedPeriod.start"), path)[0].date()
        source = self._use(data, r)
        for kind in kinds:
            data.evidence.append(
                RiskEvidence(kind, source, start, None, concept_text(r.get("code")) or None)
            )
