"""Conditions, AdverseEvents, Devices, Procedures and medication use → thromboembolic events
and risk evidence. Pure: no network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import TypeVar

from fhirtis.clinical.facts import (
    FhirTime,
    RiskEvidence,
    RiskFactorKind,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.population import MyositisDiagnosis
from fhirtis.fhir.codes import (
    ICD10,
    ICD10CM,
    ICD10GM,
    IDENTIFIER_SYSTEM,
    SNOMED,
    Coding,
    Membership,
    Terminology,
    ValueSetIndex,
    canonical_system,
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
    is_open_end,
    optional_date,
    partial_days,
    read_quantity,
    ref_of,
    referenced,
    resolve_reference,
    to_unit,
    unversioned,
    use_began,
    use_days,
)
from fhirtis.fhir.extract.medications import (
    MedicationReader,
    UnresolvedMedicationError,
    records_no_use,
    unresolved_medication,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    PrimitiveError,
    json_array,
    parse_date_bounds,
    parse_date_time,
)

_CONDITION_VOID = {"entered-in-error", "refuted"}
# condition-ver-status codes below "unconfirmed": a thromboembolic event so recorded still counts
# (a suspected clot is not dropped from a safety watch) but the result says it is unconfirmed
_CONDITION_UNCONFIRMED = ("unconfirmed", "provisional", "differential")
_CONDITION_ENDED = {"inactive", "remission", "resolved"}
# ICD-10-GM's certainty of a diagnosis, an extension on its coding (HL7 Deutschland basis
# profile; codes of KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT), read as the R4 statuses it stands for:
# A (ausgeschlossen, ruled out) is refuted, V (Verdacht, suspected) provisional, Z (Zustand nach,
# status post) a condition that has ended (clinicalStatus resolved); G (gesichert) confirmed
_GM_CERTAINTY = "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit"
_GM_VERIFICATION: Mapping[str, str] = {"A": "refuted", "V": "provisional"}
_GM_STATUS_POST = "Z"

K = TypeVar("K")


def _unconfirmed(verification: list[Coding]) -> str | None:
    """The verification status below confirmed (:data:`_CONDITION_UNCONFIRMED`) a Condition's
    codes give, or None (confirmed, or not said)."""
    return next(
        (c for c in _CONDITION_UNCONFIRMED if any(code == c for _, code in verification)), None
    )


def _partial_onset(r: Json) -> tuple[date, date] | None:
    """The first and last day of an onset recorded to the year or month only ("2019",
    "2019-05", valid FHIR dateTimes); None for anything else."""
    partial = partial_days(r, _ONSET, "onset[x]")
    return None if partial is None else (partial[1], partial[2])


def _gm_certainties(concept: object) -> set[str]:
    """The ICD-10-GM certainty codes (A, G, V, Z) on the ICD-10-GM codings of ``concept``."""
    found: set[str] = set()
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        if not isinstance(coding, dict) or canonical_system(coding.get("system")) != ICD10GM:
            continue
        extensions = coding.get("extension")
        for ext in extensions if isinstance(extensions, list) else ():
            if not isinstance(ext, dict) or ext.get("url") != _GM_CERTAINTY:
                continue
            value = ext.get("valueCoding")
            code = value.get("code") if isinstance(value, dict) else ext.get("valueCode")
            if isinstance(code, str):
                found.add(code.strip().upper())
    return found


def _last_day(value: object) -> date | None:
    """The last day a dateTime (a day, or a year or month only) may name; None if it is none."""
    try:
        first, last = parse_date_bounds(value)
    except PrimitiveError:
        try:
            return parse_date_time(value)[0].date()
        except PrimitiveError:
            return None
    return first if last is None else last


def _high(value: object) -> object:
    """A Range's ``high`` (None when the value is no object)."""
    return value.get("high") if isinstance(value, dict) else None


def _plus_years(day: date, years: int) -> date:
    """The day ``years`` calendar years after ``day`` (29 February → 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _record_partial_onset(data: PatientData, partial: tuple[date, date]) -> None:
    """The earliest dermatomyositis onset decides (clinical spec §2.3): of several onsets known
    only to the year or month, it lies between the lowest first day and the lowest last day."""
    if data.dm_onset_partial is None:
        data.dm_onset_partial = partial
    else:
        first, last = data.dm_onset_partial
        data.dm_onset_partial = (min(first, partial[0]), min(last, partial[1]))


_ONSET = TimeElements.of("onsetDateTime", "onsetPeriod.start")
_RECORDED = TimeElements.of("recordedDate")
# R4 Condition.onset[x] choices that give no calendar date (an onsetPeriod read only by its start)
_ONSET_UNDATED = ("onsetAge", "onsetRange", "onsetString", "onsetPeriod")
_ABATEMENT = TimeElements.of("abatementDateTime", "abatementPeriod.end", open_end=True)
# R4 Condition.abatement[x] that give no date (abatementBoolean is STU3's); a Period without end
_ABATEMENT_OTHER = ("abatementAge", "abatementPeriod", "abatementRange", "abatementString")
_EVENT_DATE = TimeElements.of("date", "detected")
_PROCEDURE_VOID = frozenset({"entered-in-error", "not-done", "preparation"})
_PERFORMED = TimeElements.of("performedDateTime", "performedPeriod.start")
_DEVICE_NOT_IN_USE = frozenset({"inactive", "entered-in-error"})
"""R4 Device.status values that say the device is not the patient's now. The element is 0..1
and a modifier only for these: a Device with no status, or ``unknown``, is present (the QI-Core
central line example of the NHSN dQM IG has no status)."""
_USE_NOT_IN_PLACE = frozenset({"entered-in-error", "intended"})
"""R4 DeviceUseStatement.status values that show no device in the patient (void, or not yet)."""
_USE_ENDED = frozenset({"completed", "stopped"})
"""R4 DeviceUseStatement.status values of a use that has ended: it counts over its timing."""
_USE_TIMING = TimeElements.of("timingPeriod.start", "timingDateTime")
_USE_END = TimeElements.of("timingPeriod.end", open_end=True)


def _ended(value: object) -> bool:
    """An abatement given, other than the "no end" placeholder (:func:`is_open_end`)."""
    return value is not None and not is_open_end(value)


# the ValueSet families defined by hierarchy (clinical spec §6), as a report names them
TEE_FAMILY = "thromboembolic events (ValueSets tee-*)"
RISK_FAMILY = "thrombosis risk factors (ValueSets risk-*)"

# codes recognised as dermatomyositis are neither asked about nor reported as unclassified
_DM_VALUE_SETS = ("dermatomyositis", "juvenile-dermatomyositis")

# the ICD-10 / ICD-10-CM ranges the TEE and risk-factor ValueSets draw on: a code there that none
# of them holds is reported as unclassified (the ICD-10 counterpart of their is-a parents)
REVIEW_VALUE_SET = "problem-list-review-icd10"
_ICD_NAMES: Mapping[str, str] = {ICD10: "ICD-10", ICD10CM: "ICD-10-CM", ICD10GM: "ICD-10-GM"}
_CPT = "http://www.ama-assn.org/go/cpt"  # US procedure codes (risk-central-venous-catheter)

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
    myositis = (*_DM_VALUE_SETS, "polymyositis")
    dm = [terminology.value_sets[v] for v in myositis if v in terminology.value_sets]
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
                continue  # a myositis diagnosis: not a thromboembolism or risk factor
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
                    and not any(v.contains(s, c) for v in self._myositis)
                    and index.classify(s, c, self.t.oracle) is Membership.UNCLASSIFIED
                )
        if not kinds:
            pending.update(
                (s, c)
                for s, c in codings
                if s is not None and c is not None and self._near_miss(s, c)
            )
        return tuple(kinds), tuple(pending)

    def _near_miss(self, system: str, code: str) -> bool:
        """An ICD-10 code in a range the TEE and risk-factor ValueSets draw on (ValueSet
        ``problem-list-review-icd10``) that none of them, nor a dermatomyositis ValueSet, holds:
        it is reported as unclassified rather than ignored."""
        review = self.t.value_sets.get(REVIEW_VALUE_SET)
        if review is None or not review.contains(system, code):
            return False
        known = (*self._tee.values(), *self._risk.values(), *self._myositis)
        return not any(v.contains(system, code) for v in known)

    def _report_unclassified(self, data: PatientData) -> None:
        """One warning per code that could not be classified, naming its ValueSet families."""
        how = (
            "the terminology server did not answer"
            if self.t.oracle is not None
            else "no terminology server is configured (FHIRTIS_TERMINOLOGY__BASE_URL)"
        )
        review = self.t.value_sets.get(REVIEW_VALUE_SET)
        for (system, code), (families, ref, path) in sorted(self._unclassified.items()):
            if (system, code) in self._recognised:
                continue
            if (system, code) in IPS_NONE_KNOWN:
                data.issues.append(
                    _records_none(
                        ref, _code_name(system, code), " and ".join(sorted(families)), path
                    )
                )
                continue
            why = (
                f"it lies in a range they draw on (ValueSet {REVIEW_VALUE_SET}) but none of them "
                "lists it"
                if review is not None and review.contains(system, code)
                else f"the shipped expansions do not list it and {how}"
            )
            data.issues.append(
                Issue(
                    "warning",
                    "incomplete",
                    f"{_code_name(system, code)} could not be classified for "
                    f"{' and '.join(sorted(families))}: {why}; it is not counted there",
                    path,
                    ref,
                )
            )
        self._unclassified.clear()
        self._recognised.clear()

    def _report_unread(
        self,
        data: PatientData,
        r: Json,
        codings: Sequence[Coding],
        path: str,
        families: str = f"{TEE_FAMILY} and {RISK_FAMILY}",
    ) -> None:
        """A Condition, AdverseEvent or Procedure none of whose codings is in a code system the
        TEE, risk-factor and dermatomyositis ValueSets use (ICD-11, ICD-10-PCS, MedDRA, a local
        code, text only) cannot be classified at all: one warning says it is not counted for
        ``families``, rather than passing it over as if it were known not to matter."""
        read = _read_systems(self.t)
        coded = [(s, c) for s, c in codings if s is not None and c is not None]
        if any(canonical_system(s) in read for s, _ in coded):
            return  # classified (or reported as unclassified) by its code
        if coded and all(s == IPS_ABSENT_UNKNOWN for s, _ in coded):
            # an IPS "no known problems" / "no information about problems" entry states that
            # there is nothing (known) to record: no diagnosis or procedure to classify
            said = ", ".join(sorted({c for _, c in coded}))
            data.issues.append(_records_none(ref_of(r), said, families, path))
            return
        if coded:
            what = ", ".join(f"{s}|{c}" for s, c in coded)
            why = f"coded only as {what}, in no code system fhirtis reads ({_read_names(read)})"
        else:
            why = "no coding with a system and a code (text only, or no code)"
        data.issues.append(
            Issue(
                "warning",
                "incomplete",
                f"{ref_of(r)} could not be classified for {families}: {why}; it is not "
                "counted there",
                path,
                ref_of(r),
            )
        )

    # -- Condition and AdverseEvent -----------------------------------------------------------

    def _tee_without_onset(self, data: PatientData, r: Json, path: str) -> None:
        """A thromboembolic Condition with no onset[x] (US Core makes it optional; problem lists
        often leave it out): it cannot be placed in a cycle's window (§5.3), but the thrombosis
        happened on or before the day it was recorded, so it is a history of thrombosis (§5.1)
        from its ``recordedDate``, or at every time when it has none (the safe side). An onset
        recorded as an age (R4 ``onsetAge``, or an ``onsetRange`` by its upper end) is placed
        once the birth date is known (:meth:`_finish_tee_onset_ages`), an ``onsetPeriod`` with
        only an end by that end; one recorded otherwise without a date (``onsetString``) is
        named, and read as no onset."""
        recorded = optional_date(r, _RECORDED, path)
        element = next((k for k in _ONSET_UNDATED if r.get(k) is not None), None)
        if element in ("onsetAge", "onsetRange"):
            # an age, or an age range's upper end: the oldest the patient was at the onset
            apath = f"{path}.onsetAge" if element == "onsetAge" else f"{path}.onsetRange.high"
            age = r.get("onsetAge") if element == "onsetAge" else _high(r.get("onsetRange"))
            years = self._tee_onset_years(age, apath)
            if years is not None:
                self._tee_onset_ages.append((r, apath, years, recorded))
                return
        said = (
            "a thromboembolic event with no onset"
            if element is None
            else f"a thromboembolic event whose onset ({element}) gives no date"
        )
        where = f"{path}.{element}" if element is not None else f"{path}.onset[x]"
        period = r.get("onsetPeriod")
        end = _last_day(period.get("end")) if isinstance(period, dict) else None
        if end is not None and (recorded is None or end < recorded):
            # an onset Period with only an end: the event began on or before that end
            said = f"a thromboembolic event whose onset period has only an end ({end})"
            self._tee_history(data, r, (end, False), said, f"{where}.end")
            return
        self._tee_history(data, r, (recorded, True), said, where)

    def _tee_history(
        self,
        data: PatientData,
        r: Json,
        since: tuple[date | None, bool],
        said: str,
        where: str,
        code: str = "required",
        earliest: date | None = None,
    ) -> None:
        """A thromboembolic Condition that no day places: a history of thrombosis from
        ``since`` (its day, None for at every time; and whether that is its recordedDate), with
        a warning (issue type ``code``) that begins with ``said``. A day other than the
        recordedDate is the last the event may have begun, ``earliest`` the first (None: any
        before): at the evaluation's time, which may lie before that last day (it is no time of
        the record), the event counts if it may have begun by then (``RiskEvidence.bounded``)."""
        day, is_recorded = since
        # a recorded date is a time of the record, as an onset is: the evaluation's own time
        # (the latest record) is not before it (a date counts to its end)
        source = self._use(data, r, FhirTime(day) if is_recorded and day is not None else None)
        data.evidence.append(
            RiskEvidence(
                RiskFactorKind.THROMBOSIS_HISTORY,
                source,
                day,
                None,
                concept_text(r.get("code") if "code" in r else r.get("event")) or None,
                bounded=day is not None and not is_recorded,
                earliest=earliest,
            )
        )
        when = (
            "at every time"
            if day is None
            else f"from its recorded date {day.isoformat()}"
            if is_recorded
            else f"from {day.isoformat()} (and at the evaluation's time if it may have begun "
            "by then)"
        )
        data.issues.append(
            Issue(
                "warning",
                code,
                f"{source}: {said}: not assessed for a temporal association with IVIG; counted "
                f"as a history of thrombosis {when}",
                where,
                source,
            )
        )

    def _tee_onset_years(self, age: object, apath: str) -> int | None:
        """The completed years of a thromboembolic onset recorded as an age; None when there
        is none or it cannot be read (it is then said as an onset that gives no date)."""
        if age is None:
            return None
        try:
            value, unit = read_quantity(age, apath)
            years = to_unit(value, unit, "a", apath)
        except ExcludedError:
            return None
        return int(years) if years >= 0 else None

    def _finish_tee_onset_ages(self, data: PatientData) -> None:
        """Each thromboembolic onset recorded as an age, placed by the birth date: it happened
        before the (latest possible) birthday of the next year of age, so it is a history of
        thrombosis from the day before that birthday, or from its ``recordedDate`` when that is
        earlier; without a birth date, from its ``recordedDate`` (at every time without one)."""
        for r, apath, years, recorded in self._tee_onset_ages:
            born = data.patient.birth_date_latest or data.patient.birth_date
            if born is None:
                said = (
                    f"a thromboembolic event whose onset is recorded as an age (at most {years} "
                    "completed years), which cannot be placed without the patient's birth date"
                )
                self._tee_history(data, r, (recorded, True), said, apath)
                continue
            bound = _plus_years(born, years + 1) - timedelta(days=1)
            earlier = recorded is not None and recorded <= bound
            said = (
                f"a thromboembolic event whose onset is recorded as an age (at most {years} "
                f"completed years: on or before {bound.isoformat()})"
            )
            # an age (not a range's upper end) is reached on that birthday, at the earliest
            first = data.patient.birth_date
            reached = (
                _plus_years(first, years)
                if first is not None and apath.endswith(".onsetAge")
                else None
            )
            self._tee_history(
                data,
                r,
                (recorded if earlier else bound, earlier),
                said,
                apath,
                earliest=reached,
            )

    def _tee_partial_onset(
        self,
        data: PatientData,
        r: Json,
        path: str,
        partial: tuple[date, date, ExcludedError],
    ) -> None:
        """A thromboembolic Condition whose onset is recorded to the year or month only
        ("2024-08", as problem lists publish it): no day places it in a cycle's window (§5.3),
        but it happened on or before the last day it names, so it is a history of thrombosis
        (§5.1) from that day, or from its ``recordedDate`` when that is earlier (as a Condition
        with no onset at all is)."""
        first, last, exc = partial
        recorded = optional_date(r, _RECORDED, path)
        earlier = recorded is not None and recorded <= last
        said = (
            "a thromboembolic event whose onset is recorded only to the year or month "
            f"(between {first} and {last})"
        )
        self._tee_history(
            data,
            r,
            (recorded if earlier else last, earlier),
            said,
            exc.path,
            exc.issue_code,
            earliest=first,
        )

    def _tee_kind(self, codings: list[Coding], resource: Json, path: str) -> TeeKind | None:
        kinds = self._members(TEE_FAMILY, self._tee, codings, resource, path)
        return kinds[0] if kinds else None

    def _dm_recorded(self, data: PatientData, r: Json, path: str) -> None:
        """A dermatomyositis diagnosis with no onset that can be read (none recorded, or only
        as text): it had begun by the day it was recorded (``recordedDate``; recorded to the
        year or month only, its last possible day), which bounds the age at onset from above
        (spec §2.3; the earliest such day is kept). A recordedDate that is no date is left out
        (the diagnosis is read without it, as before)."""
        try:
            day = optional_date(r, _RECORDED, path)
        except ExcludedError:
            bounds = partial_days(r, _RECORDED, path)
            day = bounds[2] if bounds is not None else None
        if day is not None and (data.dm_recorded_by is None or day < data.dm_recorded_by):
            data.dm_recorded_by = day

    def _dm_onset_age(self, data: PatientData, r: Json, path: str) -> None:
        """A dermatomyositis onset recorded as an age (R4 ``onsetAge``, UCUM ``a``, ``mo``, …):
        its completed years, the lowest of the patient's (spec §2.3). An age that cannot be read
        is said, and the population is then decided without it."""
        apath = f"{path}.onsetAge"
        try:
            value, unit = read_quantity(r["onsetAge"], apath)
            years = to_unit(value, unit, "a", apath)
        except ExcludedError as exc:
            data.issues.append(
                exc.as_warning(r, f"its onset age cannot be read ({exc.message}); not used")
            )
            return
        if years < 0:
            data.issues.append(
                Issue("warning", "value", f"{ref_of(r)}: negative onset age; not used", apath)
            )
            return
        completed = int(years)  # completed years: 17.9 years old is 17
        if data.dm_onset_age is None or completed < data.dm_onset_age:
            data.dm_onset_age = completed

    def _dm_onset_range(self, data: PatientData, r: Json, path: str) -> None:
        """A dermatomyositis onset recorded as an age range (R4 ``onsetRange``: the search
        parameter ``onset-age`` reads ``Condition.onset.as(Range)`` as an age range): its ends in
        completed years, placed on the calendar once the birth date is known
        (:meth:`_finish_dm_onset_ranges`). A range without an upper end bounds nothing the
        population needs below it, and one that cannot be read is said, not used."""
        rpath = f"{path}.onsetRange"
        rng = r.get("onsetRange")
        years: dict[str, int | None] = {"low": None, "high": None}
        try:
            if not isinstance(rng, dict):
                raise ExcludedError("structure", "onsetRange is not a Range", rpath)
            for side in ("low", "high"):
                if rng.get(side) is None:
                    continue
                value, unit = read_quantity(rng[side], f"{rpath}.{side}")
                age = to_unit(value, unit, "a", f"{rpath}.{side}")
                if age < 0:
                    raise ExcludedError("value", "a negative age", f"{rpath}.{side}")
                years[side] = int(age)  # completed years: 17.9 years old is 17
        except ExcludedError as exc:
            data.issues.append(
                exc.as_warning(r, f"its onset age range cannot be read ({exc.message}); not used")
            )
            return
        low, high = years["low"] or 0, years["high"]
        if high is None or high < low:
            data.issues.append(
                Issue(
                    "warning",
                    "value",
                    f"{ref_of(r)}: its onset age range has "
                    f"{'no upper end' if high is None else 'its upper end below its lower end'}"
                    ", so it bounds no age at onset; not used",
                    rpath,
                    ref_of(r),
                )
            )
            return
        self._dm_onset_ranges.append((r, rpath, low, high))

    def _finish_dm_onset_ranges(self, data: PatientData) -> None:
        """Each onset age range (:meth:`_dm_onset_range`) as the days the onset may lie
        between: from the day the youngest birth date reaches ``low`` years to the day before
        the earliest one reaches ``high + 1``, so that the population's age bounds at onset are
        exactly ``low`` and ``high`` (clinical spec §2.3; several onsets: the earliest decides)."""
        for r, rpath, low, high in self._dm_onset_ranges:
            born = data.patient.birth_date
            if born is None:
                data.issues.append(
                    Issue(
                        "warning",
                        "required",
                        f"{ref_of(r)}: its onset is recorded as an age range, which cannot be "
                        "placed without the patient's birth date; not used",
                        rpath,
                        ref_of(r),
                    )
                )
                continue
            youngest = data.patient.birth_date_latest or born
            first = _plus_years(youngest, low)
            last = _plus_years(born, high + 1) - timedelta(days=1)
            _record_partial_onset(data, (first, max(first, last)))

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
        certainties = _gm_certainties(r.get("code"))
        if tee is None and not risks and not is_dm:
            verification = concept_codings(
                r.get("verificationStatus"), f"{path}.verificationStatus"
            )
            void = any(code in _CONDITION_VOID for _, code in verification)
            if void or "A" in certainties:
                return
            if self._pm is not None and self._pm.matches_any(codings):
                # polymyositis: the adult criteria's population (clinical spec §2.3)
                self._require_id(r, path)
                self._check_subject(data, r, "subject", path)
                source = self._use(data, r)
                data.pm_coded = True
                verification += [
                    (None, _GM_VERIFICATION[c]) for c in certainties if c in _GM_VERIFICATION
                ]
                data.diagnoses.append(MyositisDiagnosis(source, "pm", _unconfirmed(verification)))
                return
            self._report_unread(data, r, codings, f"{path}.code")
            return
        self._require_id(r, path)
        verification = concept_codings(r.get("verificationStatus"), f"{path}.verificationStatus")
        verification += [(None, _GM_VERIFICATION[c]) for c in certainties if c in _GM_VERIFICATION]
        if any(code in _CONDITION_VOID for _, code in verification):
            return
        self._check_subject(data, r, "subject", path)
        clinical = {
            code for _, code in concept_codings(r.get("clinicalStatus"), f"{path}.clinicalStatus")
        }
        if _GM_STATUS_POST in certainties:
            clinical.add("resolved")
        # a diagnosis of dermatomyositis alone: its coding decides the population (clinical spec
        # §2.3) whatever its dates say; an onset that cannot be placed on a day is not used
        dm_only = is_dm and tee is None and not risks
        onset: FhirTime | None = None
        # an onset recorded to the year or month only ("2011-08", a valid R4 dateTime): its first
        # and last possible day, and the refusal that names the element
        partial_onset: tuple[date, date, ExcludedError] | None = None
        try:
            onset = first_fhir_time(r, _ONSET, path)
        except ExcludedError as exc:
            if exc.issue_code == "required":
                pass
            elif not dm_only and (bounds := _partial_onset(r)) is not None:
                partial_onset = (bounds[0], bounds[1], exc)
            elif dm_only:
                partial = _partial_onset(r)
                if partial is None:
                    said = f"{exc.message}: the dermatomyositis diagnosis is read without its onset"
                else:
                    said = (
                        f"{exc.message}: the dermatomyositis diagnosis is read with its onset "
                        f"between {partial[0]} and {partial[1]}"
                    )
                    _record_partial_onset(data, partial)
                data.issues.append(exc.as_warning(r, said))
            else:
                raise
        end: date | None = None
        period = r.get("abatementPeriod")
        if not dm_only and (
            _ended(r.get("abatementDateTime"))
            or (isinstance(period, dict) and _ended(period.get("end")))
        ):
            try:
                end = first_time(r, _ABATEMENT, path)[0].date()
            except ExcludedError as exc:
                # an end recorded to the year or month only (IPS: "2010", a valid R4 dateTime):
                # it may have lasted until the last day named (the safe side for the rate)
                abated = partial_days(r, _ABATEMENT, path)
                if abated is None:
                    raise
                ended_by, _, end = abated
                lasting = [k for k in risks if k is not RiskFactorKind.THROMBOSIS_HISTORY]
                if lasting:  # a history of thrombosis has no end: nothing to say
                    kinds = ", ".join(k.value for k in lasting)
                    data.issues.append(
                        exc.as_warning(
                            r,
                            f"it ended on a day not recorded ({ended_by}): the {kinds} risk "
                            f"factor is counted until {end}, the last day it may have lasted",
                        )
                    )
        if is_dm:
            source = self._use(data, r)
            juvenile = self._jdm is not None and self._jdm.matches_any(codings)
            if juvenile:
                data.jdm_coded = True
            # a suspected diagnosis still codes it (clinical spec §2.3); the population
            # decision says when it rests on suspected diagnoses only
            data.diagnoses.append(
                MyositisDiagnosis(source, "jdm" if juvenile else "dm", _unconfirmed(verification))
            )
            if onset is not None and (data.dm_onset is None or onset.day < data.dm_onset):
                data.dm_onset = onset.day
            elif not any(key.startswith("onset") for key in r):
                self._dm_recorded(data, r, path)
            elif partial_onset is not None:
                _record_partial_onset(data, (partial_onset[0], partial_onset[1]))
            elif onset is None and "onsetAge" in r:
                self._dm_onset_age(data, r, path)
            elif onset is None and "onsetRange" in r:
                self._dm_onset_range(data, r, path)
            elif onset is None and "onsetString" in r:
                self._dm_recorded(data, r, path)
                data.issues.append(
                    Issue(
                        "warning",
                        "not-supported",
                        f"{ref_of(r)}: its onset is recorded as text (onsetString), from which "
                        "no date or age is read; the age at dermatomyositis onset is decided "
                        "without it",
                        f"{path}.onsetString",
                        ref_of(r),
                    )
                )
        if tee is not None and r.get("id") and partial_onset is not None:
            self._tee_partial_onset(data, r, path, partial_onset)
        elif tee is not None and r.get("id") and onset is None:
            self._tee_without_onset(data, r, path)
        elif tee is not None and r.get("id") and onset is not None:
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
            unconfirmed = _unconfirmed(verification)
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
        if partial_onset is not None and risks and tee is None:
            first, last, refusal = partial_onset
            kinds = ", ".join(k.value for k in risks)
            data.issues.append(
                refusal.as_warning(
                    r,
                    f"its onset is recorded only to the year or month (between {first} and "
                    f"{last}): the {kinds} risk factor is counted from {first}, the first day "
                    "it may have begun",
                )
            )
        ended = bool(clinical & _CONDITION_ENDED)
        if risks and not clinical and isinstance(r.get("clinicalStatus"), dict):
            # text only (R4: a required binding): its words are not guessed at; counted active
            data.issues.append(
                Issue(
                    "warning",
                    "code-invalid",
                    f"{ref_of(r)}: clinicalStatus has no code (text only): counted as active; "
                    "a condition that has ended needs a coded clinicalStatus",
                    f"{path}.clinicalStatus",
                    ref_of(r),
                )
            )
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
            # its onset is a time of the record: the evaluation's own time (the latest record)
            # is not before it, so a factor that began after the last infusion counts now
            source = self._use(data, r, onset)
            start = (
                onset.day
                if onset is not None
                else partial_onset[0]
                if partial_onset is not None
                else None
            )
            data.evidence.append(
                RiskEvidence(
                    kind,
                    source,
                    start,
                    end,
                    concept_text(r.get("code")) or None,
                    onset.instant if onset is not None else None,
                )
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
            if r.get("actuality") != "potential":
                self._report_unread(data, r, event_codings, f"{path}.event")
            return
        self._require_id(r, path)
        if r.get("actuality") == "potential":
            return
        cited = r.get("resultingCondition")
        unread = cited is not None and not isinstance(cited, list)
        for rc in json_array(cited):
            ref = rc.get("reference") if isinstance(rc, dict) else None
            if not isinstance(ref, str):
                unread = True
                continue
            target = resolve_reference(self._resolve, ref)
            if (ref_of(target) if target is not None else unversioned(ref)) in (
                self._condition_refs()
            ) and (target is None or self._carries_event(target, tee)):
                return  # the same event as a Condition read here: counted once, there
        if unread:  # it may cite a Condition of this event, which then counts it too
            data.issues.append(
                Issue(
                    "warning",
                    "structure",
                    f"{ref_of(r)}: resultingCondition is not a list of literal references; "
                    "the event is counted on its own, and twice if a Condition records it too",
                    f"{path}.resultingCondition",
                    ref_of(r),
                )
            )
        self._check_subject(data, r, "subject", path)
        try:
            onset = first_fhir_time(r, _EVENT_DATE, path)
        except ExcludedError as exc:
            # R4 AdverseEvent.date is 0..1, and may be a year or month: no day places the event
            # in a cycle's window, but it happened on or before its recordedDate (and the last
            # day its date names): a history of thrombosis, as such a Condition is
            recorded = optional_date(r, _RECORDED, path)
            partial = partial_days(r, _EVENT_DATE, path)
            if exc.issue_code != "required" and partial is None:
                raise
            last = partial[2] if partial is not None else None
            said = "a thromboembolic event with no date"
            if partial is not None:
                said = f"a thromboembolic event dated only to the year or month ({partial[0]})"
            earlier = recorded is not None and (last is None or recorded <= last)
            where = exc.path if last is not None else f"{path}.date"
            self._tee_history(
                data,
                r,
                (recorded if earlier else last, earlier),
                said,
                where,
                exc.issue_code,
                earliest=partial[1] if partial is not None else None,
            )
            return
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

    def _carries_event(self, condition: Json, tee: TeeKind) -> bool:
        """Whether a Condition an AdverseEvent cites as its ``resultingCondition`` carries the
        AdverseEvent's thromboembolism of kind ``tee``, which is then counted there only: a
        Condition of the same kind that places it on a day, or withdraws it (entered in error,
        refuted). R4 ``resultingCondition`` is what the event led to ("hives due to the exposure
        to a substance"): a Condition of something else (the hypoxaemia a pulmonary embolism
        caused), of another thromboembolism, or one no onset of which places it on a day leaves
        the AdverseEvent to count on its own (clinical spec §5.3), by its own date."""
        try:
            codings = concept_codings(condition.get("code"), "Condition.code")
        except ExcludedError:
            return False  # the Condition is excluded (and said so): it carries nothing
        if tee not in self._classify_members(self._tee, codings)[0]:
            return False
        try:
            verification = concept_codings(
                condition.get("verificationStatus"), "Condition.verificationStatus"
            )
        except ExcludedError:
            verification = []
        if any(code in _CONDITION_VOID for _, code in verification) or "A" in _gm_certainties(
            condition.get("code")
        ):
            return True
        try:
            first_fhir_time(condition, _ONSET, "Condition")
        except ExcludedError:
            return False  # no onset on a day: the AdverseEvent's date places the event
        return True

    def _medication_use(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        try:
            medication = self._read_medication(r, path, resolve)
        except UnresolvedMedicationError as exc:
            if not records_no_use(r):  # an unknown medication shows no risk factor: said
                unresolved_medication(
                    data, r, exc, "an estrogen it may record is not counted as a risk factor"
                )
            return
        if self._risk_medication(data, r, medication, path) or records_no_use(r):
            return
        if r.get("resourceType") == "MedicationRequest":
            if self.is_ivig_product(medication.med, medication.codings, medication.text):
                self._ivig_orders.append((ref_of(r), path))
            return
        if self.is_ivig_product(medication.med, medication.codings, medication.text):
            data.issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{ref_of(r)} records immune globulin use as a statement: IVIG exposure is "
                    "read from MedicationAdministrations (each infusion, its dose and rate), so "
                    "it is not counted",
                    path,
                    ref_of(r),
                )
            )

    def _finish_ivig_orders(self, data: PatientData) -> None:
        """IVIG orders (MedicationRequests of an immune globulin) of a patient of whom no IVIG
        administration was read: exposure is read from administrations only (clinical spec §4),
        so the 0 g shown is said to come from their absence (a server or export of the US Core
        types, which have no MedicationAdministration), not from no IVIG being ordered."""
        if data.administrations:
            return
        for source, path in self._ivig_orders:
            data.issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{source} orders immune globulin, but no IVIG administration of the "
                    "patient was read: IVIG exposure is read from MedicationAdministrations "
                    "(each infusion, its dose and rate), so none is counted",
                    path,
                    source,
                )
            )

    def _is_catheter(self, device: Json, path: str) -> bool:
        """``device`` (a Device) is coded as a central venous catheter."""
        index = self._risk.get(RiskFactorKind.CENTRAL_VENOUS_CATHETER)
        return index is not None and bool(
            self._members(
                RISK_FAMILY,
                {RiskFactorKind.CENTRAL_VENOUS_CATHETER: index},
                concept_codings(device.get("type"), f"{path}.type"),
                device,
                f"{path}.type",
            )
        )

    def _device(self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]) -> None:
        if not self._is_catheter(r, path):
            return
        self._require_id(r, path)
        if r.get("status") in _DEVICE_NOT_IN_USE:
            return
        if r.get("patient") is None and id(r) in self._used_devices():
            return  # a Device of nobody's, in use by the patient: read through the statement
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

    def _used_devices(self) -> set[int]:
        """The Devices (by identity) that a listed DeviceUseStatement names, found once per
        patient when first asked."""
        if self._device_uses is None:
            self._device_uses = {
                id(device)
                for _, r in self._listed
                if r.get("resourceType") == "DeviceUseStatement"
                and (device := _used_device(r, self._resolve)) is not None
            }
        return self._device_uses

    def _device_use(
        self, data: PatientData, path: str, r: Json, resolve: Mapping[str, Json]
    ) -> None:
        """A DeviceUseStatement of a central venous catheter: evidence over the statement's
        timing. A device that cannot be resolved, or is no catheter, shows no risk factor (as an
        unknown medication shows none)."""
        device = _used_device(r, resolve)
        if device is None or not self._is_catheter(device, f"{path}.device"):
            return
        self._require_id(r, path)
        status = r.get("status")
        if status in _USE_NOT_IN_PLACE or device.get("status") == "entered-in-error":
            return
        self._check_subject(data, r, "subject", path)
        owner = device.get("patient")
        if owner is not None:
            self._check_subject(data, device, "patient", f"{path}.device")
        catheter = RiskFactorKind.CENTRAL_VENOUS_CATHETER
        start, start_last = use_days(data, r, _USE_TIMING, path, catheter, latest=False)
        _, end = use_days(data, r, _USE_END, path, catheter, latest=True)
        if end is None and status in _USE_ENDED:
            if "timingDateTime" in r:
                end = start_last  # in use at that time (any day of its month or year), ended
            else:
                data.issues.append(
                    Issue(
                        "warning",
                        "incomplete",
                        f"{ref_of(r)}: a central venous catheter whose use is {status}, with no "
                        "end in timingPeriod: the risk factor is not counted (the time it was in "
                        "place cannot be dated)",
                        f"{path}.timing[x]",
                        ref_of(r),
                    )
                )
                return
        began = use_began(r, _USE_TIMING, path, (start, start_last))
        source = self._use(data, r, began)  # the Device is read through it, as a Medication is
        self._contained_labels(data, source, r, device)  # a contained Device's labels
        if not any(c is device for c in json_array(r.get("contained"))):
            self._name_read(data, device, source)  # read by id, as a Medication is
        data.evidence.append(
            RiskEvidence(
                RiskFactorKind.CENTRAL_VENOUS_CATHETER,
                source,
                start,
                end,
                concept_text(device.get("type")) or None,
                began.instant if began is not None else None,
            )
        )

    def _procedure(
        self, data: PatientData, path: str, r: Json, _resolve: Mapping[str, Json]
    ) -> None:
        codings = concept_codings(r.get("code"), f"{path}.code")
        kinds = self._members(RISK_FAMILY, self._risk, codings, r, f"{path}.code")
        if not kinds:
            if r.get("status") not in _PROCEDURE_VOID:
                self._report_unread(data, r, codings, f"{path}.code", RISK_FAMILY)
            return
        self._require_id(r, path)
        if r.get("status") in _PROCEDURE_VOID:
            return
        self._check_subject(data, r, "subject", path)
        performed: FhirTime | None = None
        try:
            performed = first_fhir_time(r, _PERFORMED, path)
            start = performed.day
        except ExcludedError as exc:
            # performed only to the year or month (Oracle Health sends "2025"): counted from
            # the first day it may have been done, as a risk-factor Condition's onset is
            partial = partial_days(r, _PERFORMED, path) if exc.issue_code != "required" else None
            if partial is None:
                raise
            _, start, last = partial
            kinds_said = ", ".join(k.value for k in kinds)
            data.issues.append(
                exc.as_warning(
                    r,
                    f"performed only to the year or month (between {start} and "
                    f"{last}): the {kinds_said} risk factor is counted from {start}, "
                    "the first day it may have begun",
                )
            )
        source = self._use(data, r, performed)  # a time of the record, as an onset is
        for kind in kinds:
            data.evidence.append(
                RiskEvidence(
                    kind,
                    source,
                    start,
                    None,
                    concept_text(r.get("code")) or None,
                    performed.instant if performed is not None else None,
                )
            )


# HL7 International Patient Summary 1.x: the codes of an entry that says a section has nothing
# ("no-known-problems", "no-problem-info", "no-known-procedures", ...; IPS 2.0 moved to SNOMED CT)
IPS_ABSENT_UNKNOWN = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"
# ... and the SNOMED CT concepts IPS 2.0 puts in their place (HL7/fhir-ips ValueSets
# problems-uv-ips, procedures-uv-ips, medical-devices-uv-ips): 160245001 "No current problems or
# disability", 787480003 "No known procedures", 787483001 "No known device use" (situations)
IPS_NONE_KNOWN = frozenset((SNOMED, c) for c in ("160245001", "787480003", "787483001"))


def _records_none(ref: str, said: str, families: str, path: str) -> Issue:
    """An entry that records that there is nothing (known) of its kind: information, not a code
    that could not be classified."""
    return Issue(
        "information",
        "informational",
        f"{ref} records no item, only {said} (an International Patient Summary absent/unknown "
        f"code): nothing to classify for {families}",
        path,
        ref,
    )


def _read_systems(terminology: Terminology) -> frozenset[str]:
    """The code systems of the TEE, risk-factor and dermatomyositis ValueSets (their concepts,
    regex filters and hierarchies), worked out once per terminology."""
    memo = terminology.memo_for("extract.condition-systems")
    found: frozenset[str] | None = memo.get("systems")
    if found is None:
        indexes = [
            v
            for k, v in terminology.value_sets.items()
            if k.startswith(("tee-", "risk-")) or k in _DM_VALUE_SETS or k == "polymyositis"
        ]
        found = frozenset(
            {s for v in indexes for s, _ in v.codes}
            | {s for v in indexes for s, _ in v.patterns}
            | {h.system for v in indexes for h in v.hierarchies}
        )
        if ICD10 in found:  # ICD-10-GM codes are read as WHO ICD-10 ones (who_icd10_codes)
            found |= {ICD10GM}
        memo["systems"] = found
    return found


def _read_names(systems: Iterable[str]) -> str:
    """The code systems a report names, e.g. "SNOMED CT, ICD-10-CM, ICD-10"."""
    names = {SNOMED: "SNOMED CT", _CPT: "CPT", **_ICD_NAMES}
    return ", ".join(sorted(names.get(s, s) for s in systems if s in names))


def _code_name(system: str, code: str) -> str:
    """A code as a report names it: "SNOMED CT 123", "ICD-10-CM I82.811", else system|code."""
    if system == SNOMED:
        return f"SNOMED CT {code}"
    label = _ICD_NAMES.get(system)
    return f"{label} {code}" if label else f"{system}|{code}"


def _used_device(statement: Json, resolve: Mapping[str, Json]) -> Json | None:
    """The Device a DeviceUseStatement names (contained, or by reference), or None."""
    ref = statement.get("device")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str):
        return None
    device = referenced(statement, target, resolve)
    if isinstance(device, dict) and device.get("resourceType") == "Device":
        return device
    return None
