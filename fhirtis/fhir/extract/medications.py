"""MedicationAdministrations → IVIG administrations; medications as risk evidence.
Pure: no network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

from fhirtis.clinical.facts import (
    IvigAdministration,
    RiskEvidence,
    RiskFactorKind,
)

# core set code → (measure, instrument, canonical unit)
from fhirtis.fhir.extract.common import (
    ExcludedError,
    ExtractorBase,
    Json,
    PatientData,
    concept_codings,
    concept_text,
    first_time,
    read_quantity,
    ref_of,
    to_unit,
    versioned,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.units import UnitError, convert

_MA_USED = {"completed", "in-progress"}
_MED_VOID = {"entered-in-error", "not-taken", "cancelled", "draft"}


class MedicationReader(ExtractorBase):
    # -- MedicationAdministration -----------------------------------------------------------

    def _medication(
        self, r: Json, path: str, resolve: Mapping[str, Json]
    ) -> tuple[Json | None, list[tuple[str | None, str | None]], str]:
        """The Medication resource (if referenced), its codings and text."""
        if "medicationCodeableConcept" in r:
            concept = r["medicationCodeableConcept"]
            return (
                None,
                concept_codings(concept, f"{path}.medicationCodeableConcept"),
                concept_text(concept),
            )
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
        return med, concept_codings(code, "Medication.code"), concept_text(code)

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
                    f"{ref_of(r)} not counted: status {status}",
                    f"{path}.status",
                )
            )
            return
        self._check_subject(data, r, "subject", path)
        start, _, _ = first_time(r, ("effectiveDateTime", "effectivePeriod.start"), path)
        end: datetime | None = None
        period = r.get("effectivePeriod")
        if isinstance(period, dict) and period.get("end") is not None:
            end, _, _ = first_time(r, ("effectivePeriod.end",), path)
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
            data.used.setdefault(ref_of(med), versioned(med))
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
        return None, to_unit(value, unit, "mL", path)

    def _rate(self, q: object, path: str) -> tuple[Decimal | None, Decimal | None]:
        value, unit = read_quantity(q, path)
        if unit is None:
            raise ExcludedError("required", "rate has no unit", path)
        try:
            return convert(value, unit, "mg/h"), None
        except UnitError:
            pass
        return None, to_unit(value, unit, "mL/h", path)

    def _rate_ratio(self, ratio: object, path: str) -> tuple[Decimal | None, Decimal | None]:
        if not isinstance(ratio, dict) or "numerator" not in ratio or "denominator" not in ratio:
            raise ExcludedError("structure", "rateRatio needs numerator and denominator", path)
        num, num_unit = read_quantity(ratio["numerator"], f"{path}.numerator")
        den, den_unit = read_quantity(ratio["denominator"], f"{path}.denominator")
        if den <= 0:
            raise ExcludedError(
                "value", "rateRatio denominator must be positive", f"{path}.denominator"
            )
        hours = to_unit(den, den_unit, "h", f"{path}.denominator")
        if num_unit is None:
            raise ExcludedError("required", "rateRatio numerator has no unit", f"{path}.numerator")
        try:
            return convert(num, num_unit, "mg") / hours, None
        except UnitError:
            pass
        return None, to_unit(num, num_unit, "mL", f"{path}.numerator") / hours

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
            mg = to_unit(num, num_unit, "mg", f"{spath}.numerator")
            ml = to_unit(den, den_unit, "mL", f"{spath}.denominator")
            return mg / ml
        return None

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
                start = first_time(r, (key,), path)[0].date()
                break
            except ExcludedError as exc:
                if exc.issue_code != "required":
                    raise
        period = r.get("effectivePeriod")
        if isinstance(period, dict) and period.get("end") is not None:
            end = first_time(r, ("effectivePeriod.end",), path)[0].date()
        elif r.get("status") in {"completed", "stopped"}:
            end = start
        source = self._use(data, r)
        data.evidence.append(RiskEvidence(RiskFactorKind.ESTROGEN, source, start, end))
        return True
