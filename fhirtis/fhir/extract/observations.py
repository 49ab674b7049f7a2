"""Observations → core set measures, enzymes, weights, heights, BMIs and smoking status. Pure: no
network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    Instrument,
    Measure,
    MeasureValue,
    ResultStatus,
    RiskEvidence,
    RiskFactorKind,
)
from fhirtis.fhir.codes import (
    CORE_SET_SYSTEM,
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
    to_unit,
)
from fhirtis.fhir.primitives import (
    ID_FULLMATCH,
    PrimitiveError,
    json_array,
    parse_date_time,
    parse_date_time_text,
)

_OBS_STATUS = {s.value: s for s in ResultStatus}
_UNKNOWN = object()  # not in a memo
_EFFECTIVE = TimeElements.of("effectiveDateTime", "effectivePeriod.start", "effectiveInstant")


# the values a panel component may give fhirtis (valueInteger: a score without a unit)
_COMPONENT_VALUES = ("valueQuantity", "valueInteger")
# what of the panel itself is not part of a component read as an Observation
_PANEL_OWN = frozenset({"component", "hasMember", *_COMPONENT_VALUES})


class ObservationReader(ExtractorBase):
    # -- Observation -------------------------------------------------------------------------

    def _observation_kind(self, concept: object, path: str) -> tuple[str, Any] | None:
        """:meth:`_classify_observation` of a CodeableConcept. A concept of one well-formed
        coding (the usual case) is looked up in the memo directly: a key found there was stored
        from the same coding, which :func:`concept_codings` reads without complaint as
        ``[(system, code)]``; anything else is read by :func:`concept_codings`."""
        if type(concept) is dict:
            codings = concept.get("coding")
            if type(codings) is list and len(codings) == 1 and type(codings[0]) is dict:
                system, code = codings[0].get("system"), codings[0].get("code")
                if (system is None or type(system) is str) and (code is None or type(code) is str):
                    found = self._kinds.get(((system, code),), _UNKNOWN)
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
        return kind

    def _classify_codings(
        self, codings: list[tuple[str | None, str | None]]
    ) -> tuple[str, Any] | None:
        candidates = list(codings)
        for system, code in codings:
            mapped = self.t.translate(system, code)
            if mapped is not None:
                candidates.append(mapped)
        for system, code in candidates:
            if system == CORE_SET_SYSTEM and code is not None and code in CORE_SET_CODES:
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
        effective = r.get("effectiveDateTime")
        try:  # the usual effectiveDateTime text, without first_time's search and tuples
            when = parse_date_time_text(effective)[0] if type(effective) is str else None
        except PrimitiveError:
            when = None  # first_time raises, saying so
        if when is None:
            when = first_time(r, _EFFECTIVE, path)[0]
        if kind[0] == "smoking":
            self._smoking(data, r, status, when, path)
            return
        tag, detail = kind
        if "valueQuantity" not in r:
            if tag == "measure" and detail[2] == "1" and "valueInteger" in r:
                # a score on a scale without a unit, as a whole number (R4 value[x])
                measure, instrument, _ = detail
                score = _score_integer(r["valueInteger"], f"{path}.valueInteger")
                self._measure(data, r, status, when, measure, instrument, score, None)
                return
            reason = "dataAbsentReason given" if "dataAbsentReason" in r else "no valueQuantity"
            raise ExcludedError("required", reason, f"{path}.valueQuantity")
        quantity = r["valueQuantity"]
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
            self._measure(data, r, status, when, measure, instrument, value, None)
        elif tag == "enzyme":
            if unit != "U/L":
                value = to_unit(value, unit, "U/L", f"{path}.valueQuantity")
            uln = self._uln(r, path, detail)
            self._measure(data, r, status, when, Measure.ENZYME, detail, value, uln)
        else:
            if status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}:
                return
            qpath = f"{path}.valueQuantity"
            if tag == "weight":
                kg = to_unit(value, unit, "kg", qpath)
                data.weights.append(BodyWeight(self._use(data, r, when), when, kg))
            elif tag == "height":
                cm = to_unit(value, unit, "cm", qpath)
                data.heights.append(BodyHeight(self._use(data, r, when), when, cm))
            else:
                bmi = to_unit(value, unit, "kg/m2", qpath)
                data.bmis.append(BodyMassIndex(self._use(data, r, when), when, bmi))

    def _smoking(
        self, data: PatientData, r: Json, status: ResultStatus, when: datetime, path: str
    ) -> None:
        """A smoking status Observation (US Core: LOINC 72166-2): its value is a current smoker
        (a cardiovascular risk factor, clinical spec §5.1) when ValueSet risk-cardiovascular
        holds it. Kept until :meth:`_finish_smoking`, which ends a smoker status at a later
        non-smoker one (a former smoker)."""
        if status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}:
            return
        vpath = f"{path}.valueCodeableConcept"
        if "valueCodeableConcept" not in r:
            raise ExcludedError("required", "smoking status without valueCodeableConcept", vpath)
        codings = concept_codings(r["valueCodeableConcept"], vpath)
        index = self._risk.get(RiskFactorKind.CARDIOVASCULAR)
        smoker = index is not None and index.matches_any(codings)
        source = self._use(data, r, when) if smoker else None
        self._smoking_statuses.append((when.date(), source))

    def _finish_smoking(self, data: PatientData) -> None:
        """Each current-smoker status is evidence from its date to the day before the next
        later status that is not a smoker's (or still, without one)."""
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
                self._observation(data, cpath, as_obs, resolve)
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
            as_obs["id"], as_obs["meta"] = r.get("id"), r.get("meta")
            as_obs.setdefault("subject", r.get("subject"))
            self._observation(data, f"{path}.hasMember[{i}]", as_obs, resolve)

    def _measure(
        self,
        data: PatientData,
        r: Json,
        status: ResultStatus,
        when: datetime,
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
        source = self._use(data, r, when)
        # the date as recorded, in the offset it was recorded in
        day = when.date()
        data.measures.append(
            MeasureValue(measure, instrument, value, day, source, status, issued, uln)
        )

    def _uln(self, r: Json, path: str, instrument: Instrument) -> Decimal | None:
        ranges = r.get("referenceRange") or []
        if not isinstance(ranges, list):
            raise ExcludedError(
                "structure", "referenceRange must be an array", f"{path}.referenceRange"
            )
        for i, rr in enumerate(ranges):
            if isinstance(rr, dict) and rr.get("modifierExtension"):
                raise modifier_extension_error(f"{path}.referenceRange[{i}].modifierExtension")
            if isinstance(rr, dict) and "high" in rr:
                high = rr["high"]
                coded = coded_quantity(high)  # the usual Quantity in U/L: as read_quantity reads it
                if coded is not None and coded[1] == "U/L":
                    return coded[0]
                hpath = f"{path}.referenceRange[{i}].high"
                value, unit = coded or read_quantity(high, hpath)
                return to_unit(value, unit, "U/L", hpath)
        return self.settings.default_uln_u_per_l.get(instrument)


def _score_integer(value: object, path: str) -> Decimal:
    """``valueInteger`` as a score: a JSON integer (a boolean is not one)."""
    if type(value) is not int:
        raise ExcludedError("value", "valueInteger is not an integer", path)
    return Decimal(value)
