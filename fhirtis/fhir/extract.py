"""FHIR R4 resources → the clinical core's facts. Pure: no network, no clinical rules.

Reading is the hot path of registry runs, so resources stay plain dicts (from ``orjson``) and
only the elements the computation uses are validated — strictly: type, format, code system
membership, unit. A resource that fails is excluded with an :class:`Issue` naming where; the
rest still counts. Resources fhirtis does not use (a blood pressure, an antibiotic) are passed
over without a word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    ResultStatus,
    RiskEvidence,
    RiskFactorKind,
    Sex,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.patient import PatientFactsBundle
from fhirtis.fhir.codes import (
    CORE_SET_SYSTEM,
    IDENTIFIER_SYSTEM,
    UCUM,
    Terminology,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    PrimitiveError,
    is_id,
    parse_date,
    parse_date_time,
    parse_decimal,
)
from fhirtis.fhir.units import UnitError, convert

Json = dict[str, Any]

# core set code → (measure, instrument, canonical unit)
CORE_SET_CODES: Mapping[str, tuple[Measure, Instrument, str]] = {
    "pga": (Measure.PGA, Instrument.VAS, "cm"),
    "ptga": (Measure.PTGA, Instrument.VAS, "cm"),
    "extramuscular": (Measure.EXTRAMUSCULAR, Instrument.VAS, "cm"),
    "pga-likert": (Measure.PGA, Instrument.LIKERT, "1"),
    "ptga-likert": (Measure.PTGA, Instrument.LIKERT, "1"),
    "mmt8-80": (Measure.MMT8, Instrument.MMT8_80, "1"),
    "mmt8-150": (Measure.MMT8, Instrument.MMT8_150, "1"),
    "cmas": (Measure.MMT8, Instrument.CMAS, "1"),
    "haq-di": (Measure.HAQ, Instrument.HAQ_DI, "1"),
    "chaq": (Measure.HAQ, Instrument.CHAQ, "1"),
    "das": (Measure.EXTRAMUSCULAR, Instrument.DAS, "1"),
    "chq-phs": (Measure.ENZYME, Instrument.CHQ_PHS, "1"),
}
ENZYME_VALUE_SETS: Mapping[str, Instrument] = {
    "enzyme-ck": Instrument.CK,
    "enzyme-aldolase": Instrument.ALDOLASE,
    "enzyme-ldh": Instrument.LDH,
    "enzyme-ast": Instrument.AST,
    "enzyme-alt": Instrument.ALT,
}
_OBS_STATUS = {s.value: s for s in ResultStatus}
_MA_USED = {"completed", "in-progress"}
_CONDITION_VOID = {"entered-in-error", "refuted"}
_CONDITION_ENDED = {"inactive", "remission", "resolved"}
_MED_VOID = {"entered-in-error", "not-taken", "cancelled", "draft"}
_GENDER = {"male": Sex.MALE, "female": Sex.FEMALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}


@dataclass
class PatientData:
    """Everything of one patient that the clinical core needs, as facts, with the issues met."""

    patient_ref: str
    patient_source: str
    patient: PatientFacts = field(default_factory=PatientFacts)
    measures: list[MeasureValue] = field(default_factory=list)
    administrations: list[IvigAdministration] = field(default_factory=list)
    weights: list[BodyWeight] = field(default_factory=list)
    heights: list[BodyHeight] = field(default_factory=list)
    bmis: list[BodyMassIndex] = field(default_factory=list)
    evidence: list[RiskEvidence] = field(default_factory=list)
    events: list[TeeEvent] = field(default_factory=list)
    jdm_coded: bool = False
    dm_onset: date | None = None
    issues: list[Issue] = field(default_factory=list)
    used: dict[str, str] = field(default_factory=dict)  # ref → versioned ref, every source used
    existing_derived: list[Json] = field(default_factory=list)  # fhirtis's own earlier output
    latest: datetime | None = None  # the latest clinical time seen (the default "as of")

    def facts(self) -> PatientFactsBundle:
        """What the clinical core reads of this patient."""
        return PatientFactsBundle(
            **{f.name: getattr(self, f.name) for f in fields(PatientFactsBundle)}
        )


@dataclass(frozen=True)
class ExtractSettings:
    """Site settings the mapping needs."""

    default_uln_u_per_l: Mapping[Instrument, Decimal] = field(default_factory=dict)


class ExcludedError(Exception):
    def __init__(self, code: str, message: str, path: str) -> None:
        self.issue_code, self.message, self.path = code, message, path
        super().__init__(message)


def _ref_of(resource: Json) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _versioned(resource: Json) -> str:
    version = (resource.get("meta") or {}).get("versionId")
    base = _ref_of(resource)
    return f"{base}/_history/{version}" if isinstance(version, str) and version else base


def _codings(concept: object, path: str) -> list[tuple[str | None, str | None]]:
    if concept is None:
        return []
    if not isinstance(concept, dict):
        raise ExcludedError("structure", "CodeableConcept must be an object", path)
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        raise ExcludedError("structure", "coding must be an array", f"{path}.coding")
    out: list[tuple[str | None, str | None]] = []
    for i, c in enumerate(codings):
        if not isinstance(c, dict):
            raise ExcludedError("structure", "Coding must be an object", f"{path}.coding[{i}]")
        system, code = c.get("system"), c.get("code")
        if (system is not None and not isinstance(system, str)) or (
            code is not None and not isinstance(code, str)
        ):
            raise ExcludedError(
                "value", "Coding system and code must be strings", f"{path}.coding[{i}]"
            )
        out.append((system, code))
    return out


def _text(concept: object) -> str:
    if isinstance(concept, dict):
        text = concept.get("text")
        if isinstance(text, str):
            return text
        for c in concept.get("coding", []) or []:
            if isinstance(c, dict) and isinstance(c.get("display"), str):
                return str(c["display"])
    return ""


def read_quantity(q: object, path: str) -> tuple[Decimal, str | None]:
    """(value, UCUM unit or None). The UCUM ``code`` is preferred; a bare ``unit`` is used
    only when no system is given or the system is UCUM."""
    if not isinstance(q, dict):
        raise ExcludedError("structure", "Quantity must be an object", path)
    if "value" not in q:
        raise ExcludedError("required", "Quantity has no value", f"{path}.value")
    try:
        value = parse_decimal(q["value"])
    except PrimitiveError as exc:
        raise ExcludedError("value", f"Quantity.value: {exc}", f"{path}.value") from None
    system, code, unit = q.get("system"), q.get("code"), q.get("unit")
    if system is not None and system != UCUM:
        raise ExcludedError("code-invalid", "Quantity unit is not a UCUM unit", f"{path}.system")
    chosen = code if isinstance(code, str) and code else unit if isinstance(unit, str) else None
    return value, chosen


def _convert(value: Decimal, unit: str | None, target: str, path: str) -> Decimal:
    if unit is None:
        if target == "1":
            return value
        raise ExcludedError("required", f"Quantity has no unit (expected {target})", path)
    try:
        return convert(value, unit, target)
    except UnitError:
        raise ExcludedError(
            "value", f"unit {unit!r} is unknown or cannot convert to {target!r}", path
        ) from None


def _when(resource: Json, keys: Sequence[str], path: str) -> tuple[datetime, bool, str]:
    """The first present of the time elements in ``keys`` ("effectiveDateTime",
    "effectivePeriod.start" …) as (aware datetime, date-only?, element path)."""
    for key in keys:
        head, _, tail = key.partition(".")
        value = resource.get(head)
        if tail and isinstance(value, dict):
            value = value.get(tail)
        if value is None:
            continue
        try:
            when, date_only = parse_date_time(value)
        except PrimitiveError as exc:
            raise ExcludedError("value", f"{key}: {exc}", f"{path}.{key}") from None
        return when, date_only, key
    raise ExcludedError("required", f"no {' or '.join(keys)}", path)


class Extractor:
    """Reads one patient's resources. Create one per patient."""

    def __init__(
        self,
        terminology: Terminology,
        settings: ExtractSettings | None = None,
    ) -> None:
        self.t = terminology
        self.settings = settings or ExtractSettings()
        self._enzymes = {vs: terminology.value_set(vs) for vs in ENZYME_VALUE_SETS}
        self._weight = terminology.value_set("body-weight")
        self._height = terminology.value_set("body-height")
        self._bmi = terminology.value_set("body-mass-index")
        self._tee = {TeeKind(k): v for k, v in terminology.with_value_sets("tee-").items()}
        self._risk = {RiskFactorKind(k): v for k, v in terminology.with_value_sets("risk-").items()}
        self._ivig = terminology.value_set("ivig-products")
        self._scig = terminology.value_sets.get("scig-products")
        self._dm = [
            terminology.value_sets[v]
            for v in ("dermatomyositis", "juvenile-dermatomyositis")
            if v in terminology.value_sets
        ]
        self._jdm = terminology.value_sets.get("juvenile-dermatomyositis")

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
        handlers = {
            "Patient": self._patient,
            "Observation": self._observation,
            "MedicationAdministration": self._administration,
            "Condition": self._condition,
            "AdverseEvent": self._adverse_event,
            "MedicationStatement": self._medication_use,
            "MedicationRequest": self._medication_use,
            "Device": self._device,
            "Procedure": self._procedure,
        }
        ae_conditions: set[str] = set()
        for _, resource in resources:
            if resource.get("resourceType") == "AdverseEvent":
                for rc in resource.get("resultingCondition", []) or []:
                    if isinstance(rc, dict) and isinstance(rc.get("reference"), str):
                        ae_conditions.add(rc["reference"])
        self._skip_conditions = ae_conditions
        for path, resource in resources:
            handler = handlers.get(str(resource.get("resourceType")))
            if handler is None:
                continue
            try:
                handler(data, path, resource, resolve)
            except ExcludedError as exc:
                data.issues.append(
                    Issue(
                        "error",
                        exc.issue_code,
                        f"{_ref_of(resource)} excluded: {exc.message}",
                        exc.path,
                        _ref_of(resource),
                    )
                )
        return data

    # -- helpers -----------------------------------------------------------------------------

    def _use(self, data: PatientData, resource: Json, when: datetime | None = None) -> str:
        ref = _ref_of(resource)
        data.used[ref] = _versioned(resource)
        if when is not None and (data.latest is None or when > data.latest):
            data.latest = when
        return data.used[ref]

    def _check_subject(self, data: PatientData, resource: Json, key: str, path: str) -> None:
        subject = resource.get(key)
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(ref, str):
            raise ExcludedError("required", f"no {key}.reference", f"{path}.{key}")
        if ref != data.patient_ref and not ref.endswith("/" + data.patient_ref):
            raise ExcludedError("invalid", f"{key} is another patient", f"{path}.{key}")

    def _require_id(self, resource: Json, path: str) -> None:
        if not is_id(resource.get("id")):
            raise ExcludedError("required", "resource has no valid id", f"{path}.id")

    # -- Patient -----------------------------------------------------------------------------

    def _patient(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        self._require_id(r, path)
        birth: date | None = None
        if "birthDate" in r:
            try:
                birth = parse_date(r["birthDate"])
            except PrimitiveError:
                data.issues.append(
                    Issue(
                        "warning",
                        "value",
                        f"{_ref_of(r)}: birthDate is not a full date; age unknown",
                        f"{path}.birthDate",
                    )
                )
        gender = r.get("gender")
        sex = _GENDER.get(gender, Sex.UNKNOWN) if isinstance(gender, str) else Sex.UNKNOWN
        data.patient = PatientFacts(birth_date=birth, sex=sex)
        data.patient_source = self._use(data, r)

    # -- Observation -------------------------------------------------------------------------

    def _classify_observation(
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
        return None

    def _observation(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        kind = self._classify_observation(_codings(r.get("code"), f"{path}.code"))
        if kind is None:
            return
        self._require_id(r, path)
        status = _OBS_STATUS.get(r.get("status"))  # type: ignore[arg-type]
        if status is None:
            raise ExcludedError(
                "code-invalid", "status is not an Observation status", f"{path}.status"
            )
        self._check_subject(data, r, "subject", path)
        when, _date_only, _key = _when(
            r, ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant"), path
        )
        if "valueQuantity" not in r:
            reason = "dataAbsentReason given" if "dataAbsentReason" in r else "no valueQuantity"
            raise ExcludedError("required", reason, f"{path}.valueQuantity")
        value, unit = read_quantity(r["valueQuantity"], f"{path}.valueQuantity")
        qpath = f"{path}.valueQuantity"
        tag, detail = kind
        if tag == "measure":
            measure, instrument, target = detail
            value = _convert(value, unit, target, qpath)
            self._measure(data, r, status, when, measure, instrument, value, None)
        elif tag == "enzyme":
            value = _convert(value, unit, "U/L", qpath)
            uln = self._uln(r, path, detail)
            self._measure(data, r, status, when, Measure.ENZYME, detail, value, uln)
        else:
            if status in {ResultStatus.ENTERED_IN_ERROR, ResultStatus.CANCELLED}:
                return
            if tag == "weight":
                kg = _convert(value, unit, "kg", qpath)
                data.weights.append(BodyWeight(self._use(data, r, when), when, kg))
            elif tag == "height":
                cm = _convert(value, unit, "cm", qpath)
                data.heights.append(BodyHeight(self._use(data, r, when), when, cm))
            else:
                bmi = _convert(value, unit, "kg/m2", qpath)
                data.bmis.append(BodyMassIndex(self._use(data, r, when), when, bmi))

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
            try:
                issued, _ = parse_date_time(r["issued"])
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
            if isinstance(rr, dict) and "high" in rr:
                hpath = f"{path}.referenceRange[{i}].high"
                value, unit = read_quantity(rr["high"], hpath)
                return _convert(value, unit, "U/L", hpath)
        return self.settings.default_uln_u_per_l.get(instrument)

    # -- MedicationAdministration -----------------------------------------------------------

    def _medication(
        self, r: Json, path: str, resolve: Mapping[str, Json]
    ) -> tuple[Json | None, list[tuple[str | None, str | None]], str]:
        """The Medication resource (if referenced), its codings and text."""
        if "medicationCodeableConcept" in r:
            concept = r["medicationCodeableConcept"]
            return None, _codings(concept, f"{path}.medicationCodeableConcept"), _text(concept)
        ref = r.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str):
            raise ExcludedError("required", "no medication[x]", f"{path}.medication[x]")
        med: Json | None = None
        if target.startswith("#"):
            for c in r.get("contained", []) or []:
                if isinstance(c, dict) and c.get("id") == target[1:]:
                    med = c
        else:
            med = resolve.get(target)
        if med is None or med.get("resourceType") != "Medication":
            raise ExcludedError(
                "not-found",
                "medicationReference does not resolve to a Medication",
                f"{path}.medicationReference",
            )
        code = med.get("code")
        return med, _codings(code, "Medication.code"), _text(code)

    def _is_ivig(self, codings: list[tuple[str | None, str | None]], text: str) -> bool:
        if self._scig is not None and self._scig.matches_any(codings):
            return False
        if self._ivig.matches_any(codings):
            return True
        # No code matched (RxNorm and local codes are not in the value set yet): the product
        # names of the value sets decide, subcutaneous names first.
        lowered = text.lower()
        if not lowered:
            return False
        if self._scig is not None and any(n and n in lowered for n in self._scig.names):
            return False
        return any(n and n in lowered for n in self._ivig.names)

    def _administration(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        med, codings, text = self._medication(r, path, resolve)
        if self._risk_medication(data, r, codings, path):
            return
        if not self._is_ivig(codings, text):
            return
        self._require_id(r, path)
        status = r.get("status")
        if status not in _MA_USED:
            data.issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{_ref_of(r)} not counted: status {status}",
                    f"{path}.status",
                )
            )
            return
        self._check_subject(data, r, "subject", path)
        start, _, _ = _when(r, ("effectiveDateTime", "effectivePeriod.start"), path)
        end: datetime | None = None
        period = r.get("effectivePeriod")
        if isinstance(period, dict) and period.get("end") is not None:
            end, _, _ = _when(r, ("effectivePeriod.end",), path)
        dose_g = dose_ml = rate_ml_h = rate_mg_h = None
        dosage = r.get("dosage") or {}
        if not isinstance(dosage, dict):
            raise ExcludedError("structure", "dosage must be an object", f"{path}.dosage")
        if "dose" in dosage:
            dose_g, dose_ml = self._mass_or_volume(dosage["dose"], f"{path}.dosage.dose")
        if "rateQuantity" in dosage:
            rate_mg_h, rate_ml_h = self._rate(dosage["rateQuantity"], f"{path}.dosage.rateQuantity")
        elif "rateRatio" in dosage:
            rate_mg_h, rate_ml_h = self._rate_ratio(dosage["rateRatio"], f"{path}.dosage.rateRatio")
        concentration = self._concentration(med, path) if med is not None else None
        source = self._use(data, r, start)
        if med is not None and isinstance(med.get("id"), str) and med is not r:
            data.used.setdefault(_ref_of(med), _versioned(med))
        data.administrations.append(
            IvigAdministration(
                source,
                start,
                end,
                in_progress=status == "in-progress",
                dose_g=dose_g,
                dose_ml=dose_ml,
                concentration_mg_per_ml=concentration,
                rate_ml_per_h=rate_ml_h,
                rate_mg_per_h=rate_mg_h,
                product=text or None,
            )
        )

    def _mass_or_volume(self, q: object, path: str) -> tuple[Decimal | None, Decimal | None]:
        value, unit = read_quantity(q, path)
        if unit is None:
            raise ExcludedError("required", "dose has no unit", path)
        try:
            return convert(value, unit, "g"), None
        except UnitError:
            pass
        return None, _convert(value, unit, "mL", path)

    def _rate(self, q: object, path: str) -> tuple[Decimal | None, Decimal | None]:
        value, unit = read_quantity(q, path)
        if unit is None:
            raise ExcludedError("required", "rate has no unit", path)
        try:
            return convert(value, unit, "mg/h"), None
        except UnitError:
            pass
        return None, _convert(value, unit, "mL/h", path)

    def _rate_ratio(self, ratio: object, path: str) -> tuple[Decimal | None, Decimal | None]:
        if not isinstance(ratio, dict) or "numerator" not in ratio or "denominator" not in ratio:
            raise ExcludedError("structure", "rateRatio needs numerator and denominator", path)
        num, num_unit = read_quantity(ratio["numerator"], f"{path}.numerator")
        den, den_unit = read_quantity(ratio["denominator"], f"{path}.denominator")
        if den <= 0:
            raise ExcludedError(
                "value", "rateRatio denominator must be positive", f"{path}.denominator"
            )
        hours = _convert(den, den_unit, "h", f"{path}.denominator")
        if num_unit is None:
            raise ExcludedError("required", "rateRatio numerator has no unit", f"{path}.numerator")
        try:
            return convert(num, num_unit, "mg") / hours, None
        except UnitError:
            pass
        return None, _convert(num, num_unit, "mL", f"{path}.numerator") / hours

    def _concentration(self, med: Json, path: str) -> Decimal | None:
        for i, ing in enumerate(med.get("ingredient", []) or []):
            strength = ing.get("strength") if isinstance(ing, dict) else None
            if not isinstance(strength, dict):
                continue
            spath = f"Medication.ingredient[{i}].strength"
            if "numerator" not in strength or "denominator" not in strength:
                raise ExcludedError("structure", "strength needs numerator and denominator", spath)
            num, num_unit = read_quantity(strength["numerator"], f"{spath}.numerator")
            den, den_unit = read_quantity(strength["denominator"], f"{spath}.denominator")
            if den <= 0:
                raise ExcludedError("value", "strength denominator must be positive", spath)
            mg = _convert(num, num_unit, "mg", f"{spath}.numerator")
            ml = _convert(den, den_unit, "mL", f"{spath}.denominator")
            return mg / ml
        return None

    # -- Condition and AdverseEvent -----------------------------------------------------------

    def _tee_kind(self, codings: list[tuple[str | None, str | None]]) -> TeeKind | None:
        for kind, index in self._tee.items():
            if index.matches_any(codings):
                return kind
        return None

    def _condition(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = _codings(r.get("code"), f"{path}.code")
        tee = self._tee_kind(codings)
        risks = [k for k, index in self._risk.items() if index.matches_any(codings)]
        is_dm = any(vs.matches_any(codings) for vs in self._dm)
        if tee is None and not risks and not is_dm:
            return
        self._require_id(r, path)
        verification = _codings(r.get("verificationStatus"), f"{path}.verificationStatus")
        if any(code in _CONDITION_VOID for _, code in verification):
            return
        self._check_subject(data, r, "subject", path)
        clinical = {code for _, code in _codings(r.get("clinicalStatus"), f"{path}.clinicalStatus")}
        onset: datetime | None = None
        try:
            onset, _, _ = _when(r, ("onsetDateTime", "onsetPeriod.start"), path)
        except ExcludedError as exc:
            if exc.issue_code != "required":
                raise
        end: date | None = None
        if r.get("abatementDateTime") is not None:
            end = _when(r, ("abatementDateTime",), path)[0].date()
        if is_dm:
            self._use(data, r)
            if self._jdm is not None and self._jdm.matches_any(codings):
                data.jdm_coded = True
            if onset is not None and (data.dm_onset is None or onset.date() < data.dm_onset):
                data.dm_onset = onset.date()
        if tee is not None and r.get("id") and f"Condition/{r['id']}" not in self._skip_conditions:
            if onset is None:
                raise ExcludedError(
                    "required", "a thromboembolic event needs its onset", f"{path}.onset[x]"
                )
            source = self._use(data, r, onset)
            data.events.append(TeeEvent(tee, source, onset, _text(r.get("code")) or None))
        ended = bool(clinical & _CONDITION_ENDED)
        for kind in risks:
            if ended and end is None and kind is not RiskFactorKind.THROMBOSIS_HISTORY:
                continue  # resolved, with no date: not active at any time we can name
            source = self._use(data, r)
            start = onset.date() if onset is not None else None
            data.evidence.append(
                RiskEvidence(kind, source, start, end, _text(r.get("code")) or None)
            )

    def _adverse_event(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        identifiers = r.get("identifier")
        idents = identifiers if isinstance(identifiers, list) else [identifiers]
        if any(isinstance(i, dict) and i.get("system") == IDENTIFIER_SYSTEM for i in idents):
            data.existing_derived.append(r)
            return  # fhirtis's own output is never read back as an input event
        tee = self._tee_kind(_codings(r.get("event"), f"{path}.event"))
        if tee is None:
            return
        self._require_id(r, path)
        if r.get("actuality") == "potential":
            return
        self._check_subject(data, r, "subject", path)
        onset, _, _ = _when(r, ("date", "detected"), path)
        source = self._use(data, r, onset)
        data.events.append(TeeEvent(tee, source, onset, _text(r.get("event")) or None))

    # -- medications, devices and procedures as risk evidence ---------------------------------

    def _risk_medication(
        self, data: PatientData, r: Json, codings: list[tuple[str | None, str | None]], path: str
    ) -> bool:
        index = self._risk.get(RiskFactorKind.ESTROGEN)
        if index is None or not index.matches_any(codings):
            return False
        if r.get("status") in _MED_VOID:
            return True
        self._require_id(r, path)
        subject_key = "subject"
        self._check_subject(data, r, subject_key, path)
        start: date | None = None
        end: date | None = None
        for key in ("effectivePeriod.start", "effectiveDateTime", "authoredOn"):
            try:
                start = _when(r, (key,), path)[0].date()
                break
            except ExcludedError as exc:
                if exc.issue_code != "required":
                    raise
        period = r.get("effectivePeriod")
        if isinstance(period, dict) and period.get("end") is not None:
            end = _when(r, ("effectivePeriod.end",), path)[0].date()
        elif r.get("status") in {"completed", "stopped"}:
            end = start
        source = self._use(data, r)
        data.evidence.append(RiskEvidence(RiskFactorKind.ESTROGEN, source, start, end))
        return True

    def _medication_use(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        _, codings, _ = self._medication(r, path, resolve)
        self._risk_medication(data, r, codings, path)

    def _device(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        index = self._risk.get(RiskFactorKind.CENTRAL_VENOUS_CATHETER)
        if index is None or not index.matches_any(_codings(r.get("type"), f"{path}.type")):
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
                _text(r.get("type")) or None,
            )
        )

    def _procedure(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = _codings(r.get("code"), f"{path}.code")
        kinds = [k for k, index in self._risk.items() if index.matches_any(codings)]
        if not kinds:
            return
        self._require_id(r, path)
        if r.get("status") in {"entered-in-error", "not-done", "preparation"}:
            return
        self._check_subject(data, r, "subject", path)
        start = _when(r, ("performedDateTime", "performedPeriod.start"), path)[0].date()
        source = self._use(data, r)
        for kind in kinds:
            data.evidence.append(
                RiskEvidence(kind, source, start, None, _text(r.get("code")) or None)
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
                ref = value["reference"]
                if ref.startswith("Patient/") or "/Patient/" in ref:
                    refs.add("Patient/" + ref.rsplit("Patient/", 1)[1])
    return refs
