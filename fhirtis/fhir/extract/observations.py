"""Observations → core set measures, enzymes, weights, heights, BMIs and smoking status. Pure: no
network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    FhirTime,
    Instrument,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    RiskEvidence,
    RiskFactorKind,
)
from fhirtis.fhir.codes import (
    CORE_SET_SYSTEM,
    SNOMED,
    Membership,
    TerminologyError,
    canonical_system,
)
from fhirtis.fhir.extract.common import (
    CORE_SET_CODES,
    ENZYME_VALUE_SETS,
    MEMO_LIMIT,
    ExcludedError,
    ExtractorBase,
    Json,
    PatientData,
    TimeElements,
    coded_quantity,
    concept_codings,
    first_time,
    modifier_extension_error,
    read_quantity,
    ref_of,
    to_unit,
)
from fhirtis.fhir.extract.patient import patient_facts
from fhirtis.fhir.extract.reference_ranges import is_normal, range_fits
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    ID_FULLMATCH,
    PrimitiveError,
    json_array,
    parse_date_time,
    parse_date_time_text,
)

_OBS_STATUS = {s.value: s for s in ResultStatus}
_UNKNOWN = object()  # not in a memo
#: an Observation's time: its ``effective[x]`` (what its ``date`` search parameter orders by)
OBSERVATION_TIME = TimeElements.of("effectiveDateTime", "effectivePeriod.start", "effectiveInstant")


# the values a panel component may give fhirtis (valueInteger: a score without a unit)
_COMPONENT_VALUES = ("valueQuantity", "valueInteger")
# what of the panel itself is not part of a component read as an Observation
# the panel's own elements, never a component's: its value and its reference range (R4: a range
# is for the value it is on; a component has its own component.referenceRange)
_PANEL_OWN = frozenset({"component", "hasMember", "referenceRange", *_COMPONENT_VALUES})

_VOID = frozenset({ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED})  # never used
# statuses whose Observation may well have no value: never used, or no result yet (R4
# observation-status "registered": "there is no result yet available")
_NO_VALUE_YET = _VOID | {ResultStatus.REGISTERED}


def _absent_reason(concept: object) -> str:
    """How an issue names a ``dataAbsentReason``: its first coding's code (data-absent-reason
    ``unknown``, ``masked`` …, or SNOMED CT's), quoted; never its free text."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        code = coding.get("code") if isinstance(coding, dict) else None
        if isinstance(code, str) and code:
            return repr(code)
    return "given without a code"


_ULN_NOT_TAKEN = "ULN not taken from referenceRange ({}); the site's default ULN is used if set"


def _with_labels(meta: object, part: Json) -> object:
    """The ``meta`` of a contained result read as its container (a report, a panel): the
    container's, with the result's own ``meta.security`` added (a contained resource is part of
    its container, R4 references.html, and carries no version of its own, dom-4); ``meta``
    itself when the result has none."""
    own = part.get("meta")
    if type(own) is not dict or "security" not in own:
        return meta
    base: Json = meta if type(meta) is dict else {}
    theirs, added = base.get("security"), own["security"]
    security = [
        *(theirs if isinstance(theirs, list) else []),
        *(added if isinstance(added, list) else []),
    ]
    return {**base, "security": security}


# R4 diagnostic-report-status → the observation-status a contained result without a status of
# its own is read with: ``partial`` ("some results are available") is not yet final;
# ``appended`` is a kind of ``amended`` in R4's status hierarchy
_REPORT_STATUS = {
    "registered": "registered",
    "partial": "preliminary",
    "preliminary": "preliminary",
    "final": "final",
    "amended": "amended",
    "corrected": "corrected",
    "appended": "amended",
    "cancelled": "cancelled",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}
_VOID_REPORT = frozenset({"cancelled", "entered-in-error"})
_NOT_AN_OBJECT = object()  # what a result that is no JSON object references
# a DiagnosticReport's time (R4 effective[x]: dateTime or Period), given to a contained result
# without an effective[x] of its own
_REPORT_TIME = ("effectiveDateTime", "effectivePeriod")


class ObservationReader(ExtractorBase):
    # (the listed resources, the facts of their Patient): see _range_patient
    _listed_patient: tuple[Sequence[tuple[str, Json]], PatientFacts] | None = None
    # (the listed resources, the result keys of their Observations): see _standalone_results
    _standalone: tuple[Sequence[tuple[str, Json]], set[tuple[object, ...]]] | None = None

    # -- Observation -------------------------------------------------------------------------

    def _observation_kind(self, concept: object, path: str) -> tuple[str, Any] | None:
        """:meth:`_classify_observation` of a CodeableConcept. A concept of one well-formed
        coding (the usual case) is looked up in the memo directly: a key found there was stored
        from the same coding, which :func:`concept_codings` reads without complaint as
        ``[(system, code)]``; anything else is read by :func:`concept_codings`."""
        if type(concept) is dict:
            codings = concept.get("coding")
            if type(codings) is list and len(codings) == 1 and type(codings[0]) is dict:
                coding = codings[0]
                try:  # a key stored is (str or None, str or None): nothing else finds one
                    found = self._coding_kinds.get(
                        (coding.get("system"), coding.get("code")), _UNKNOWN
                    )
                except TypeError:  # an unhashable system or code: concept_codings refuses it
                    found = _UNKNOWN
                if found is not _UNKNOWN:
                    return found  # type: ignore[no-any-return]
        return self._classify_observation(concept_codings(concept, f"{path}.code"))

    def _classify_observation(
        self, codings: list[tuple[str | None, str | None]]
    ) -> tuple[str, Any] | None:
        key = tuple(codings)
        try:
            return self._kinds[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        kind = self._classify_codings(codings)
        if len(self._kinds) >= MEMO_LIMIT:
            self._kinds.clear()
        self._kinds[key] = kind
        if len(codings) == 1:  # the usual concept, found by its coding (_observation_kind)
            if len(self._coding_kinds) >= MEMO_LIMIT:
                self._coding_kinds.clear()
            self._coding_kinds[codings[0]] = kind
        return kind

    def _classify_codings(
        self, codings: list[tuple[str | None, str | None]]
    ) -> tuple[str, Any] | None:
        candidates = list(codings)
        for system, code in codings:
            candidates.extend(self.t.translations(system, code))
        return self._kind_of(candidates)

    def check_concept_map(self) -> None:
        """TerminologyError for a site's ConceptMap that makes one code two different things
        fhirtis reads: a local code mapped exactly to a core set measure in one group and to an
        enzyme's (or a weight's) LOINC code in another, or a code fhirtis reads itself (an
        enzyme's LOINC code, a core set code) mapped to another measure. The reading would
        depend on which fhirtis looks at first (a CK read as a PGA, in U/L), and the CDS
        prefetch would fetch the code with the other; R4 "equivalent" and "equal" say the
        concepts mean the same, so such a map contradicts itself. Checked once per
        terminology."""
        memo = self.t.memo_for("extract.concept-map-checked")
        if memo or not self.t.concept_map:
            return
        # the targets of a code under every name of its system (LOINC and LOINC's OID)
        merged: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for (source, local), targets in self.t.concept_map.items():
            merged.setdefault((canonical_system(source), local), []).extend(targets)
        for (system, code), mapped in merged.items():
            kinds = {
                kind: coding
                for coding in ((system, code), *mapped)
                if (kind := self._kind_of([coding])) is not None
            }
            if len(kinds) > 1:
                named = " and ".join(f"{c!r} of {s}" for s, c in kinds.values())
                raise TerminologyError(
                    f"ConceptMap maps {code!r} of {system} exactly to codes that fhirtis reads "
                    f"as different things ({named}): say which one it is"
                )
        memo["checked"] = True

    def _kind_of(self, candidates: list[tuple[str | None, str | None]]) -> tuple[str, Any] | None:
        """What fhirtis reads an Observation coded with any of ``candidates`` as (the core set
        first), without the site's ConceptMap."""
        for system, code in candidates:
            if (
                canonical_system(system) == CORE_SET_SYSTEM
                and code is not None
                and code in CORE_SET_CODES
            ):
                return ("measure", CORE_SET_CODES[code])
        for vs_id, index in self._enzymes.items():
            if index.matches_any(candidates):
                return ("enzyme", ENZYME_VALUE_SETS[vs_id])
        if self._weight.matches_any(candidates):
            return ("weight", None)
        if self._height.matches_any(candidates):
            return ("height", None)
        if self._bmi.matches_any(candidates):
            return ("bmi", None)
        if self._smoking_status.matches_any(candidates):
            return ("smoking", None)
        return None

    def _observation(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        kind = self._observation_kind(r.get("code"), path)
        if kind is None:
            self._panel(data, path, r, _resolve)
            return
        ident = r.get("id")  # the usual id here; _require_id says what is wrong with another
        if type(ident) is not str or ID_FULLMATCH(ident) is None:
            self._require_id(r, path)
        code = r.get("status")
        status = _OBS_STATUS.get(code) if type(code) is str else None
        if status is None:
            raise ExcludedError(
                "code-invalid", "status is not an Observation status", f"{path}.status"
            )
        subject = r.get("subject")  # the usual subject here; _check_subject reads another
        if type(subject) is not dict or subject.get("reference") != data.patient_ref:
            self._check_subject(data, r, "subject", path)
        if ("dataAbsentReason" in r or status in _NO_VALUE_YET) and not any(
            k[:5] == "value" for k in r
        ):
            self._without_value(data, r, status, path)
            return
        effective = r.get("effectiveDateTime")
        parsed: tuple[datetime, bool] | None
        try:  # the usual effectiveDateTime text, without first_time's search and tuples
            parsed = parse_date_time_text(effective) if type(effective) is str else None
        except PrimitiveError:
            parsed = None  # first_time raises, saying so
        if parsed is None:
            when, date_only, _ = first_time(r, OBSERVATION_TIME, path)
        else:
            when, date_only = parsed
        # the time of the record (the evaluation's "now", data.latest): a date-only value
        # counts up to the end of its day, as every other date-only record does, never at
        # its midnight (UTC), before an evening time of the day before in another offset
        at: datetime | FhirTime = FhirTime(when.date()) if date_only else when
        tag, detail = kind
        if tag == "smoking":
            self._smoking(data, r, status, when, at, path)
            return
        quantity = r.get("valueQuantity")
        if quantity is None and "valueQuantity" not in r:
            if tag == "measure" and detail[2] == "1" and "valueInteger" in r:
                # a score on a scale without a unit, as a whole number (R4 value[x])
                measure, instrument, _ = detail
                score = _score_integer(r["valueInteger"], f"{path}.valueInteger")
                self._measure(data, r, status, when, at, measure, instrument, score, None)
                return
            reason = "dataAbsentReason given" if "dataAbsentReason" in r else "no valueQuantity"
            raise ExcludedError("required", reason, f"{path}.valueQuantity")
        coded: tuple[Decimal, str | None] | None = coded_quantity(quantity)
        if coded is None:
            coded = read_quantity(quantity, f"{path}.valueQuantity")
        value, unit = coded
        # a value in the unit wanted is kept as it is (as to_unit keeps it); any other unit is
        # converted by to_unit, which says why it cannot be
        if tag == "measure":
            measure, instrument, target = detail
            if unit != target:
                value = to_unit(value, unit, target, f"{path}.valueQuantity")
            self._measure(data, r, status, when, at, measure, instrument, value, None)
        elif tag == "enzyme":
            if unit != "U/L":
                value = to_unit(value, unit, "U/L", f"{path}.valueQuantity")
            uln = self._uln(data, r, path, detail, unit, when)
            self._measure(data, r, status, when, at, Measure.ENZYME, detail, value, uln)
        else:
            self._body_measure(data, r, path, tag, status, when, at, value, unit)

    @staticmethod
    def _without_value(data: PatientData, r: Json, status: ResultStatus, path: str) -> None:
        """An Observation with no value[x] that is cancelled or entered in error (never used:
        silent, as with a value), that has no result yet (``registered``), or that says why
        its value is missing (R4 ``dataAbsentReason``, obs-6): honest missing data, kept out
        of the computation and said as information, never as an error (it is not
        malformed)."""
        if status in _VOID:
            return
        ref = ref_of(r)
        if "dataAbsentReason" in r:
            reason = _absent_reason(r["dataAbsentReason"])
            said, where = f"no value (dataAbsentReason {reason})", f"{path}.dataAbsentReason"
        else:
            said, where = "no result yet (status registered)", f"{path}.status"
        data.issues.append(
            Issue(
                "information",
                "informational",
                f"{ref} has {said}: missing data, not used",
                where,
                ref,
            )
        )

    def _body_measure(
        self,
        data: PatientData,
        r: Json,
        path: str,
        tag: str,
        status: ResultStatus,
        when: datetime,
        at: datetime | FhirTime,
        value: Decimal,
        unit: str | None,
    ) -> None:
        """A weight, height or BMI (``tag``) in its canonical unit (``at``: the time of the
        record, as :meth:`_use` reads it)."""
        if status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}:
            return
        qpath = f"{path}.valueQuantity"
        if tag == "weight":
            kg = to_unit(value, unit, "kg", qpath)
            timed = not isinstance(at, FhirTime)
            data.weights.append(BodyWeight(self._use(data, r, at), when, kg, timed))
        elif tag == "height":
            cm = to_unit(value, unit, "cm", qpath)
            data.heights.append(BodyHeight(self._use(data, r, at), when, cm))
        else:
            bmi = to_unit(value, unit, "kg/m2", qpath)
            data.bmis.append(BodyMassIndex(self._use(data, r, at), when, bmi))

    def _smoking(
        self,
        data: PatientData,
        r: Json,
        status: ResultStatus,
        when: datetime,
        at: datetime | FhirTime,
        path: str,
    ) -> None:
        """A smoking status Observation (US Core: LOINC 72166-2): its value is a current smoker
        (a cardiovascular risk factor, clinical spec §5.1) when ValueSet risk-cardiovascular
        holds it, a non-smoker (former, never) when that ValueSet's ``compose.exclude`` lists
        it. Kept until :meth:`_finish_smoking`, which ends a smoker status at a later
        non-smoker one. Any other value (unknown if ever smoked, a code no ValueSet lists) is
        reported, and neither shows nor ends the risk factor: an unknown status is not a
        non-smoker's."""
        if status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}:
            return
        vpath = f"{path}.valueCodeableConcept"
        if "valueCodeableConcept" not in r:
            raise ExcludedError("required", "smoking status without valueCodeableConcept", vpath)
        codings = concept_codings(r["valueCodeableConcept"], vpath)
        index = self._risk.get(RiskFactorKind.CARDIOVASCULAR)
        if index is not None and index.classify_any(codings, self.t.oracle) is Membership.MEMBER:
            self._smoking_statuses.append((when.date(), self._use(data, r, at)))
        elif index is not None and any(index.excludes(*c) for c in codings):
            self._smoking_statuses.append((when.date(), None))  # a non-smoker
        else:
            ref = ref_of(r)
            codes = ", ".join(_coding_name(s, c) for s, c in codings if s and c) or "no code"
            data.issues.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"{ref}: smoking status ({codes}) could not be classified as a current "
                    "smoker (ValueSet risk-cardiovascular) or a non-smoker: not counted as a "
                    "risk factor, and it does not end an earlier smoker status",
                    vpath,
                    ref,
                )
            )

    def _finish_smoking(self, data: PatientData) -> None:
        """Each current-smoker status is evidence from its date to the day before the next
        later non-smoker status (or still, without one; an unclassified status is not kept)."""
        statuses = sorted(self._smoking_statuses, key=lambda s: s[0])
        for i, (day, source) in enumerate(statuses):
            if source is None:
                continue
            stop: date | None = next(
                (d for d, other in statuses[i + 1 :] if other is None and d > day), None
            )
            end = None if stop is None else stop - timedelta(days=1)
            data.evidence.append(RiskEvidence(RiskFactorKind.CARDIOVASCULAR, source, day, end))

    def _panel(self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]) -> None:
        """A panel (e.g. vital signs 85353-1) whose values fhirtis uses are its ``component``s
        or contained ``hasMember`` Observations: each is read as an Observation of the panel
        (its source is the panel). Members that are resources of their own are read as such."""
        if "component" not in r and "hasMember" not in r and "contained" not in r:
            return  # not a panel (most Observations fhirtis does not use): nothing to read
        for i, comp in enumerate(json_array(r.get("component"))):
            if not isinstance(comp, dict):
                continue
            value_key = next((k for k in _COMPONENT_VALUES if k in comp), None)
            if value_key is None:
                continue
            cpath = f"{path}.component[{i}]"
            if self._classify_observation(concept_codings(comp.get("code"), f"{cpath}.code")):
                if comp.get("modifierExtension"):
                    error = modifier_extension_error(f"{cpath}.modifierExtension")
                    data.issues.append(error.as_issue(r, f"component {i}"))
                    continue
                as_obs = {k: v for k, v in r.items() if k not in _PANEL_OWN}
                as_obs["code"], as_obs[value_key] = comp.get("code"), comp[value_key]
                if "referenceRange" in comp:
                    as_obs["referenceRange"] = comp["referenceRange"]
                self._member(data, r, f"component {i}", cpath, as_obs, resolve)
        contained = {
            c["id"]: c
            for c in json_array(r.get("contained"))
            if isinstance(c, dict) and isinstance(c.get("id"), str)
        }
        for i, member in enumerate(json_array(r.get("hasMember"))):
            ref = member.get("reference") if isinstance(member, dict) else None
            target = contained.get(ref[1:]) if isinstance(ref, str) and ref[:1] == "#" else None
            if target is None or target.get("resourceType") != "Observation":
                continue
            as_obs = dict(target)
            as_obs["id"], as_obs["meta"] = r.get("id"), _with_labels(r.get("meta"), target)
            as_obs.setdefault("subject", r.get("subject"))
            self._member(data, r, f"hasMember {i}", f"{path}.hasMember[{i}]", as_obs, resolve)

    def _diagnostic_report(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        """A DiagnosticReport whose ``result``s are contained Observations (``"#r1"``: R4
        diagnosticreport-example.json, lab messages converted to FHIR): each is read as an
        Observation of the report, as a panel's contained members are. Its subject, time
        (``effective[x]``) and ``issued`` are the report's where it has none; its status is its
        own, else the report's; a report ``entered-in-error`` or ``cancelled`` voids them all.
        The report is the source (R4: a contained resource cannot be referenced from outside
        its container). A result also listed as an Observation of its own with the same code,
        time and value is that Observation, read once. Results that are resources of their own
        are read as such; a ``#`` reference that names no contained Observation is reported."""
        results = r.get("result")
        if not isinstance(results, list):
            if results is not None and "contained" in r:
                raise ExcludedError("structure", "result must be an array", f"{path}.result")
            return
        # the results this reads: each a contained one ("#id"), or a malformed entry that may
        # have been one; a report with neither (results of their own, an imaging report) is
        # not read, nor checked, here
        local = 0
        for entry in results:
            ref = entry.get("reference") if isinstance(entry, dict) else _NOT_AN_OBJECT
            if ref is not None and (not isinstance(ref, str) or ref[:1] == "#"):
                local += 1
        if not local:
            return
        code = r.get("status")
        report_status = _REPORT_STATUS.get(code) if type(code) is str else None
        if report_status is None:
            raise ExcludedError(
                "code-invalid", "status is not a DiagnosticReport status", f"{path}.status"
            )
        if r.get("modifierExtension"):
            raise modifier_extension_error(f"{path}.modifierExtension")
        self._require_id(r, path)
        if "subject" in r:
            self._check_subject(data, r, "subject", path)
        contained = {
            c["id"]: (j, c)
            for j, c in enumerate(json_array(r.get("contained")))
            if isinstance(c, dict) and isinstance(c.get("id"), str)
        }
        unread = 0
        for i, entry in enumerate(results):
            ref = entry.get("reference") if isinstance(entry, dict) else _NOT_AN_OBJECT
            if not isinstance(ref, str):
                unread += ref is not None  # malformed: no Reference to follow
                continue
            if ref[:1] != "#":
                continue  # a resource of its own: read as listed
            found = contained.get(ref[1:])
            if found is None or found[1].get("resourceType") != "Observation":
                unread += 1
                continue
            j, target = found
            as_obs = dict(target)
            # the report is the resource that can be cited (its type, id and version)
            as_obs["resourceType"], as_obs["id"] = "DiagnosticReport", r.get("id")
            as_obs["meta"] = _with_labels(r.get("meta"), target)
            if report_status in _VOID_REPORT or "status" not in as_obs:
                as_obs["status"] = report_status
            if "subject" not in as_obs and "subject" in r:
                as_obs["subject"] = r["subject"]
            if not any(k[:9] == "effective" for k in as_obs):
                for key in _REPORT_TIME:
                    if key in r:
                        as_obs[key] = r[key]
            if "issued" not in as_obs and "issued" in r:
                as_obs["issued"] = r["issued"]
            rpath = f"{path}.contained[{j}]"
            result = self._result_key(as_obs, rpath)
            if result is not None and result in self._standalone_results(data):
                continue  # also sent as an Observation of its own: read as that one
            self._member(data, r, f"result {i}", rpath, as_obs, resolve)
        if unread:
            report = ref_of(r)
            plural = "result names" if unread == 1 else "results name"
            data.issues.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"{report}: {unread} {plural} no Observation contained in the report: not read",
                    f"{path}.result",
                    report,
                )
            )

    def _result_key(self, r: Json, path: str) -> tuple[object, ...] | None:
        """What makes two Observations one result: what fhirtis reads their code as, their
        time and their value (a number and its unit); None for one fhirtis does not use or
        cannot read (its own reading says why)."""
        try:
            kind = self._observation_kind(r.get("code"), path)
            if kind is None:
                return None
            when, date_only, _ = first_time(r, OBSERVATION_TIME, path)
            if "valueQuantity" in r:
                q = r["valueQuantity"]
                value: object = coded_quantity(q) or read_quantity(q, f"{path}.valueQuantity")
            else:  # another value[x] (an integer score, a smoking status), as given
                value = tuple(
                    sorted(
                        (k, orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
                        for k, v in r.items()
                        if k[:5] == "value"
                    )
                )
            return (kind, when, date_only, value)
        except (ExcludedError, TypeError, orjson.JSONEncodeError):
            return None

    def _standalone_results(self, data: PatientData) -> set[tuple[object, ...]]:
        """The :meth:`_result_key` of each Observation of the patient listed as a resource of
        its own (never one entered in error or cancelled), found once per patient when a
        report first asks."""
        found = self._standalone
        if found is None or found[0] is not self._listed:
            keys: set[tuple[object, ...]] = set()
            for path, resource in self._listed:
                if resource.get("resourceType") != "Observation":
                    continue
                status = resource.get("status")
                if type(status) is str and status in _VOID_REPORT:
                    continue  # never used: the contained result is read
                key = self._result_key(resource, path)
                if key is not None:
                    keys.add(key)
            found = self._standalone = (self._listed, keys)
        return found[1]

    def _member(
        self,
        data: PatientData,
        panel: Json,
        part: str,
        path: str,
        as_obs: Json,
        resolve: Mapping[str, Json],
    ) -> None:
        """One value of a panel, read as an Observation: one that cannot be used (a censored
        ``<6 U/L``, an unknown unit) is excluded by itself, saying which, never the panel's
        other values (an exclusion of the whole panel kept the values read before it and
        dropped those after it)."""
        try:
            self._observation(data, path, as_obs, resolve)
        except ExcludedError as exc:
            data.issues.append(exc.as_issue(panel, part))

    def _measure(
        self,
        data: PatientData,
        r: Json,
        status: ResultStatus,
        when: datetime,
        at: datetime | FhirTime,
        measure: Measure,
        instrument: Instrument,
        value: Decimal,
        uln: Decimal | None,
    ) -> None:
        issued: datetime | None = None
        if "issued" in r:
            text = r["issued"]
            try:
                issued = (
                    parse_date_time_text(text) if type(text) is str else parse_date_time(text)
                )[0]
            except PrimitiveError:
                raise ExcludedError("value", "issued is not an instant", "issued") from None
        source = self._use(data, r, at)
        # the date as recorded, in the offset it was recorded in
        data.measures.append(
            MeasureValue(measure, instrument, value, when.date(), source, status, issued, uln)
        )

    def _uln(
        self,
        data: PatientData,
        r: Json,
        path: str,
        instrument: Instrument,
        unit: str | None,
        when: datetime,
    ) -> Decimal | None:
        """The ULN in U/L: the ``high`` of the reference range that applies to this patient (see
        :meth:`_chosen_uln`), else the configured default. ``unit``: the value's own unit, in
        which a ``high`` without a unit is read. A single range for everyone in U/L (the usual
        case) is read here directly."""
        ranges = r.get("referenceRange")
        if not ranges:
            return self.settings.default_uln_u_per_l.get(instrument)
        if not isinstance(ranges, list):
            raise ExcludedError(
                "structure", "referenceRange must be an array", f"{path}.referenceRange"
            )
        if len(ranges) == 1:
            rr = ranges[0]
            if (
                type(rr) is dict
                and "type" not in rr
                and "appliesTo" not in rr
                and "age" not in rr
                and not rr.get("modifierExtension")
            ):
                if "high" not in rr:
                    return self.settings.default_uln_u_per_l.get(instrument)
                coded = coded_quantity(rr["high"])  # the usual Quantity in U/L
                if coded is not None and coded[1] == "U/L":
                    return coded[0]
        return self._chosen_uln(data, r, path, ranges, instrument, unit, when.date())

    def _chosen_uln(
        self,
        data: PatientData,
        r: Json,
        path: str,
        ranges: list[Any],
        instrument: Instrument,
        unit: str | None,
        day: date,
    ) -> Decimal | None:
        """The ``high`` of the one normal range (``type`` normal or none) that applies to this
        patient (``appliesTo`` sex, ``age`` on ``day``). Ranges that may apply but cannot be
        told apart (several that apply, the patient's sex or age unknown, a population fhirtis
        does not read) are not guessed between: unless their highs agree, the ULN is the
        configured default, with a warning. A high that cannot be read is never the ULN."""
        default = self.settings.default_uln_u_per_l.get(instrument)
        rpath = f"{path}.referenceRange"
        facts: PatientFacts | None = None
        applying: list[Decimal | None] = []  # highs of the ranges that apply (None: unreadable)
        unsure: list[Decimal | None] = []  # highs of the ranges that may apply
        any_high = False
        for i, rr in enumerate(ranges):
            if not isinstance(rr, dict):
                continue
            if rr.get("modifierExtension"):
                raise modifier_extension_error(f"{rpath}[{i}].modifierExtension")
            if "high" not in rr:
                continue
            any_high = True
            if not is_normal(rr.get("type")):
                continue
            fits: bool | None = True
            if "appliesTo" in rr or "age" in rr:
                if facts is None:
                    facts = self._range_patient(data)
                fits = range_fits(rr, facts, day)
            if fits is False:
                continue
            high = self._range_high(data, r, rr["high"], f"{rpath}[{i}].high", unit)
            (applying if fits else unsure).append(high)
        highs = {*applying, *unsure}
        if len(highs) == 1:  # one range, or ranges that agree
            (high,) = highs
            return default if high is None else high  # unreadable: said by _range_high
        if not highs:
            if any_high:
                self._uln_warning(data, r, rpath, "no normal range applies to this patient")
            return default
        if len({h for h in applying if h is not None}) > 1:
            why = "several ranges apply to this patient with different highs"
        elif None in highs:
            why = "a range that may apply has a high that cannot be read"
        else:
            why = (
                "which range applies cannot be told: the patient's sex or birth date is not "
                "known, or a range is for a population fhirtis does not read"
            )
        self._uln_warning(data, r, rpath, why)
        return default

    def _uln_warning(self, data: PatientData, r: Json, rpath: str, why: str) -> None:
        ref = ref_of(r)
        message = f"{ref}: {_ULN_NOT_TAKEN.format(why)}"
        data.issues.append(Issue("warning", "incomplete", message, rpath, ref))

    def _range_high(
        self, data: PatientData, r: Json, high: object, hpath: str, unit: str | None
    ) -> Decimal | None:
        """A range's ``high`` in U/L; one without a unit in the value's ``unit`` (a reference
        range is stated in the result's unit), with a warning. None, with a warning, when it
        cannot be read: only the ULN is then unknown, never the value."""
        ref = ref_of(r)
        try:
            value, high_unit = coded_quantity(high) or read_quantity(high, hpath)
            if high_unit is None:
                high_unit = unit
                data.issues.append(
                    Issue(
                        "warning",
                        "value",
                        f"{ref}: the reference range's high has no unit; read in the unit of "
                        "the Observation's valueQuantity",
                        hpath,
                        ref,
                    )
                )
            return value if high_unit == "U/L" else to_unit(value, high_unit, "U/L", hpath)
        except ExcludedError as exc:
            data.issues.append(exc.as_warning(r, _ULN_NOT_TAKEN.format(exc.message)))
            return None

    def _range_patient(self, data: PatientData) -> PatientFacts:
        """The patient's sex and birth date, to choose a reference range: as read, or, when the
        Patient comes later in the Bundle, from the Patient resource listed (once per
        patient)."""
        if data.patient_ref in data.used:  # the Patient is read
            return data.patient
        found = self._listed_patient
        if found is None or found[0] is not self._listed:
            resource = self._patient_resource(data)
            facts = PatientFacts() if resource is None else patient_facts(resource)
            found = self._listed_patient = (self._listed, facts)
        return found[1]


def _coding_name(system: str, code: str) -> str:
    """A code as a report names it (as the unclassified-code warnings do)."""
    return f"SNOMED CT {code}" if system == SNOMED else f"{system}|{code}"


def _score_integer(value: object, path: str) -> Decimal:
    """``valueInteger`` as a score: a JSON integer (a boolean is not one)."""
    if type(value) is not int:
        raise ExcludedError("value", "valueInteger is not an integer", path)
    return Decimal(value)
