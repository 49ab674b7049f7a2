"""Conditions, AdverseEvents, Devices, Procedures and medication use → thromboembolic events
and risk evidence. Pure: no network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TypeVar

from fhirtis.clinical.facts import (
    FhirTime,
    RiskEvidence,
    RiskFactorKind,
    TeeEvent,
    TeeKind,
)
from fhirtis.fhir.codes import (
    IDENTIFIER_SYSTEM,
    SNOMED,
    Coding,
    Membership,
    Terminology,
    ValueSetIndex,
)
from fhirtis.fhir.extract.common import (
    MEMO_LIMIT,
    ExcludedError,
    Json,
    PatientData,
    TimeElements,
    concept_codings,
    concept_text,
    first_fhir_time,
    first_time,
    ref_of,
    resolve_reference,
    unversioned,
)
from fhirtis.fhir.extract.medications import MedicationReader, UnresolvedMedicationError
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import json_array

_CONDITION_VOID = {"entered-in-error", "refuted"}
# condition-ver-status codes below "unconfirmed": a thromboembolic event so recorded still counts
# (a suspected clot is not dropped from a safety watch) but the result says it is unconfirmed
_CONDITION_UNCONFIRMED = ("unconfirmed", "provisional", "differential")
_CONDITION_ENDED = {"inactive", "remission", "resolved"}

K = TypeVar("K")

_ONSET = TimeElements.of("onsetDateTime", "onsetPeriod.start")
_ABATEMENT = TimeElements.of("abatementDateTime", "abatementPeriod.end")
# R4 Condition.abatement[x] that give no date (abatementBoolean is STU3's); a Period without end
_ABATEMENT_OTHER = ("abatementAge", "abatementPeriod", "abatementRange", "abatementString")
_EVENT_DATE = TimeElements.of("date", "detected")
_PERFORMED = TimeElements.of("performedDateTime", "performedPeriod.start")

# the ValueSet families defined by hierarchy (clinical spec §6), as a report names them
TEE_FAMILY = "thromboembolic events (ValueSets tee-*)"
RISK_FAMILY = "thrombosis risk factors (ValueSets risk-*)"

# codes recognised as dermatomyositis are neither asked about nor reported as unclassified
_DM_VALUE_SETS = ("dermatomyositis", "juvenile-dermatomyositis")

# where the codes classified by hierarchy are: resource type → CodeableConcept element
_CODED: Mapping[str, str] = {
    "Condition": "code",
    "AdverseEvent": "event",
    "Procedure": "code",
    "Device": "type",
}


def hierarchy_questions(
    terminology: Terminology, resources: Iterable[tuple[str, Json]]
) -> set[tuple[str, str, str]]:
    """Every ``(system, code, parent)`` subsumption question the shipped expansions leave open
    for the codes of these Conditions, AdverseEvents, Procedures and Devices (their codes are
    classified into the TEE and risk-factor ValueSets). Asked of a terminology server before the
    pure extraction; the answers become an :class:`~fhirtis.fhir.codes.AnsweredOracle`."""
    indexes = [
        *terminology.with_value_sets("tee-").values(),
        *terminology.with_value_sets("risk-").values(),
    ]
    dm = [terminology.value_sets[v] for v in _DM_VALUE_SETS if v in terminology.value_sets]
    out: set[tuple[str, str, str]] = set()
    for path, r in resources:
        element = _CODED.get(str(r.get("resourceType")))
        if element is None:
            continue
        try:
            codings = concept_codings(r.get(element), f"{path}.{element}")
        except ExcludedError:
            continue  # reported by the extraction itself
        for system, code in codings:
            if any(v.contains(system, code) for v in dm):
                continue  # recognised as dermatomyositis: not a thromboembolism or risk factor
            for index in indexes:
                out.update(index.questions(system, code))
    return out


class EventReader(MedicationReader):
    # -- classification by hierarchy ------------------------------------------------------------

    def _members(
        self,
        family: str,
        indexes: Mapping[K, ValueSetIndex],
        codings: Sequence[Coding],
        resource: Json,
        path: str,
    ) -> list[K]:
        """The kinds whose ValueSet holds one of ``codings`` (asking the oracle, if any, about
        codes the expansions lack). When none does but a code could not be classified, the
        code is remembered for one warning per code (see :meth:`_report_unclassified`), unless
        the concept is recognised in another family (a DVT Condition is not also reported as
        an unclassified risk factor)."""
        key = (family, tuple(indexes), tuple(codings))
        known = self._members_memo.get(key)
        if known is None:
            known = self._classify_members(indexes, codings)
            if len(self._members_memo) >= MEMO_LIMIT:
                self._members_memo.clear()
            self._members_memo[key] = known
        kinds, pending = known
        if kinds:  # a recognised concept is not reported for the other families
            self._recognised.update((s, c) for s, c in codings if s is not None and c is not None)
        else:
            for coding in pending:
                families, _, _ = self._unclassified.setdefault(
                    coding, (set(), ref_of(resource), path)
                )
                families.add(family)
        return list(kinds)

    def _classify_members(
        self, indexes: Mapping[K, ValueSetIndex], codings: Sequence[Coding]
    ) -> tuple[tuple[K, ...], tuple[tuple[str, str], ...]]:
        """For :meth:`_members`, once per family and codings (the answers depend on the
        terminology and its oracle alone): the kinds whose ValueSet holds one of ``codings``,
        and the codes left unclassified."""
        kinds: list[K] = []
        pending: set[tuple[str, str]] = set()
        for kind, index in indexes.items():
            answer = index.classify_any(codings, self.t.oracle)
            if answer is Membership.MEMBER:
                kinds.append(kind)
            elif answer is Membership.UNCLASSIFIED:
                pending.update(
                    (s, c)
                    for s, c in codings
                    if s is not None
                    and c is not None
                    and not any(v.contains(s, c) for v in self._dm)
                    and index.classify(s, c, self.t.oracle) is Membership.UNCLASSIFIED
                )
        return tuple(kinds), tuple(pending)

    def _report_unclassified(self, data: PatientData) -> None:
        """One warning per code that could not be classified, naming its ValueSet families."""
        how = (
            "the terminology server did not answer"
            if self.t.oracle is not None
            else "no terminology server is configured (FHIRTIS_TERMINOLOGY__BASE_URL)"
        )
        for (system, code), (families, ref, path) in sorted(self._unclassified.items()):
            if (system, code) in self._recognised:
                continue
            name = f"SNOMED CT {code}" if system == SNOMED else f"{system}|{code}"
            data.issues.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"{name} could not be classified for {' and '.join(sorted(families))}: "
                    f"the shipped expansions do not list it and {how}; it is not counted there",
                    path,
                    ref,
                )
            )
        self._unclassified.clear()
        self._recognised.clear()

    # -- Condition and AdverseEvent -----------------------------------------------------------

    def _tee_kind(self, codings: list[Coding], resource: Json, path: str) -> TeeKind | None:
        kinds = self._members(TEE_FAMILY, self._tee, codings, resource, path)
        return kinds[0] if kinds else None

    def _tee_coding(self, codings: list[Coding]) -> tuple[str, str] | None:
        """The event's own coding (the first that a TEE ValueSet holds), for the AdverseEvent."""
        for system, code in codings:
            if (
                system
                and code
                and any(
                    i.classify(system, code, self.t.oracle) is Membership.MEMBER
                    for i in self._tee.values()
                )
            ):
                return (system, code)
        return None

    def _condition(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = concept_codings(r.get("code"), f"{path}.code")
        tee = self._tee_kind(codings, r, f"{path}.code")
        risks = self._members(RISK_FAMILY, self._risk, codings, r, f"{path}.code")
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
            onset = first_fhir_time(r, _ONSET, path)
        except ExcludedError as exc:
            if exc.issue_code != "required":
                raise
        end: date | None = None
        period = r.get("abatementPeriod")
        if r.get("abatementDateTime") is not None or (
            isinstance(period, dict) and period.get("end") is not None
        ):
            end = first_time(r, _ABATEMENT, path)[0].date()
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
            unconfirmed = next(
                (c for c in _CONDITION_UNCONFIRMED if any(code == c for _, code in verification)),
                None,
            )
            if unconfirmed is not None:
                data.issues.append(
                    Issue(
                        "warning",
                        "informational",
                        f"{source}: a thromboembolic event recorded as {unconfirmed}, not "
                        "confirmed: it is counted as an event (and, from its onset, as a history "
                        "of thrombosis) until the record confirms or refutes it",
                        f"{path}.verificationStatus",
                        source,
                    )
                )
        ended = bool(clinical & _CONDITION_ENDED)
        for kind in risks:
            if ended and end is None and kind is not RiskFactorKind.THROMBOSIS_HISTORY:
                # resolved, with no date: not active at any time we can name. An end recorded
                # otherwise (abatementAge, a Period without end …) is not read: say so.
                other = next((k for k in _ABATEMENT_OTHER if r.get(k) is not None), None)
                if other is not None:
                    data.issues.append(
                        Issue(
                            "warning",
                            "not-supported",
                            f"{ref_of(r)}: resolved, its end recorded as {other}, not "
                            f"abatementDateTime: the {kind.value} risk factor is not counted "
                            "(the time it was active cannot be dated)",
                            f"{path}.{other}",
                            ref_of(r),
                        )
                    )
                continue
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
        event_codings = concept_codings(r.get("event"), f"{path}.event")
        tee = self._tee_kind(event_codings, r, f"{path}.event")
        if tee is None:
            return
        self._require_id(r, path)
        if r.get("actuality") == "potential":
            return
        for rc in json_array(r.get("resultingCondition")):
            ref = rc.get("reference") if isinstance(rc, dict) else None
            if not isinstance(ref, str):
                continue
            target = resolve_reference(self._resolve, ref)
            if (ref_of(target) if target is not None else unversioned(ref)) in (
                self._condition_refs()
            ):
                return  # the same event as a Condition read here: counted once, there
        self._check_subject(data, r, "subject", path)
        onset = first_fhir_time(r, _EVENT_DATE, path)
        source = self._use(data, r, onset)
        data.events.append(
            TeeEvent(
                tee,
                source,
                onset,
                concept_text(r.get("event")) or None,
                self._tee_coding(event_codings),
            )
        )

    def _medication_use(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        try:
            medication = self._read_medication(r, path, resolve)
        except UnresolvedMedicationError:
            return  # an unknown medication shows no risk factor
        self._risk_medication(data, r, medication, path)

    def _device(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        index = self._risk.get(RiskFactorKind.CENTRAL_VENOUS_CATHETER)
        if index is None or not self._members(
            RISK_FAMILY,
            {RiskFactorKind.CENTRAL_VENOUS_CATHETER: index},
            concept_codings(r.get("type"), f"{path}.type"),
            r,
            f"{path}.type",
        ):
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
        kinds = self._members(RISK_FAMILY, self._risk, codings, r, f"{path}.code")
        if not kinds:
            return
        self._require_id(r, path)
        if r.get("status") in {"entered-in-error", "not-done", "preparation"}:
            return
        self._check_subject(data, r, "subject", path)
        start = first_time(r, _PERFORMED, path)[0].date()
        source = self._use(data, r)
        for kind in kinds:
            data.evidence.append(
                RiskEvidence(kind, source, start, None, concept_text(r.get("code")) or None)
            )
