"""Typed facts: what the clinical core reads. No FHIR here.

``fhirtis.fhir.extract`` turns FHIR resources into these; the calculator builds them from JSON.
Every fact carries ``source``, an opaque reference to where it came from (for FHIR, a versioned
relative reference such as ``Observation/17/_history/2``), so that every result can cite its
evidence. Values are :class:`~decimal.Decimal` in the canonical unit named by the field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import StrEnum

from fhirtis.clinical.frozen import record


@record
class FhirTime:
    """A FHIR ``date`` or ``dateTime`` kept at the precision it was recorded (clinical spec §5.3).

    ``instant`` is the aware datetime when a time was recorded; a date-only time has none and
    is never placed at midnight: it stands for every instant of ``day``. ``day`` is the calendar
    date as recorded (in the record's own offset).
    """

    day: date
    instant: datetime | None = None

    @classmethod
    def of(cls, value: date | datetime) -> FhirTime:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("a time without a time zone is not an instant")
            return cls(value.date(), value)
        return cls(value)

    @property
    def date_only(self) -> bool:
        return self.instant is None

    def isoformat(self) -> str:
        """As FHIR writes it, at the precision it was given."""
        return self.instant.isoformat() if self.instant is not None else self.day.isoformat()

    def sort_key(self) -> tuple[date, datetime]:
        """An order for sorting (by calendar date, then instant); not a clinical comparison.

        The instant is compared as UTC. An instant with a fixed offset (a
        :class:`~datetime.timezone`, as FHIR records give) is kept as it is: aware datetimes
        compare as UTC already (with one tzinfo, a fixed offset, their wall times), so the key
        orders and ties exactly as its UTC conversion would, without making it. Any other
        time zone (whose offset may change, e.g. at a fold), and the years at the ends of the
        range (where the conversion can overflow, as it then still does), are converted."""
        instant = self.instant
        if instant is None:
            return (self.day, _MIN_UTC)
        if type(instant.tzinfo) is timezone and 1 < instant.year < 9999:
            return (self.day, instant)
        return (self.day, instant.astimezone(UTC))

    def span(self, zone: tzinfo | None) -> tuple[datetime, datetime]:
        """The first and the last instant this time may stand for (equal for an instant); a
        date-only time's day is taken in ``zone`` (the time zone of what it is compared with;
        UTC when nothing gives one)."""
        if self.instant is not None:
            return self.instant, self.instant
        first = datetime.combine(self.day, time(0), zone or UTC)
        return first, first + timedelta(days=1) - timedelta(microseconds=1)

    @property
    def zone(self) -> tzinfo | None:
        return self.instant.tzinfo if self.instant is not None else None


_MIN_UTC = datetime.min.replace(tzinfo=UTC)


class Measure(StrEnum):
    """The six IMACS core set measures (clinical spec §1)."""

    PGA = "pga"
    PTGA = "ptga"
    MMT8 = "mmt8"
    HAQ = "haq"
    ENZYME = "enzyme"
    EXTRAMUSCULAR = "extramuscular"


MEASURES: tuple[Measure, ...] = tuple(Measure)


class Instrument(StrEnum):
    """An instrument measuring one core set measure. Two values are comparable only when they
    come from the same instrument."""

    VAS = "vas"  # 0–10 cm visual analogue scale (mm are converted to cm before this point)
    LIKERT = "likert"  # 0–4 Likert scale for the global activities
    MMT8_80 = "mmt8-80"
    MMT8_150 = "mmt8-150"
    CMAS = "cmas"  # juvenile alternative to MMT-8, 0–52
    HAQ_DI = "haq-di"
    CHAQ = "chaq"
    CHQ_PHS = "chq-phs"  # juvenile alternative to the enzyme
    DAS = "das"  # juvenile alternative to extramuscular, 0–20
    CK = "ck"
    ALDOLASE = "aldolase"
    LDH = "ldh"
    AST = "ast"
    ALT = "alt"


ENZYMES: frozenset[Instrument] = frozenset(
    {Instrument.CK, Instrument.ALDOLASE, Instrument.LDH, Instrument.AST, Instrument.ALT}
)


class ResultStatus(StrEnum):
    """Observation.status values the core distinguishes (clinical spec §2.5)."""

    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"
    PRELIMINARY = "preliminary"
    REGISTERED = "registered"
    ENTERED_IN_ERROR = "entered-in-error"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@record
class MeasureValue:
    """One recorded value of a core set measure, already in the instrument's canonical unit
    (cm for VAS, U/L for enzymes, score points otherwise)."""

    measure: Measure
    instrument: Instrument
    value: Decimal
    day: date
    source: str
    status: ResultStatus = ResultStatus.FINAL
    issued: datetime | None = None
    uln: Decimal | None = None  # enzymes: upper limit of normal in U/L, if the result gave one


@record
class IvigAdministration:
    """One intravenous immune globulin administration (a MedicationAdministration).

    The dose is given either as a mass (``dose_g``) or as a volume (``dose_ml``) to be multiplied
    by ``concentration_mg_per_ml``; the rate either as a volume rate (``rate_ml_per_h``) or as a
    mass rate (``rate_mg_per_h``). Unit conversion is done before this point; canonical
    rates are per hour so that every realistic unit converts into them exactly.
    """

    source: str
    start: FhirTime
    end: FhirTime | None = None
    in_progress: bool = False
    dose_g: Decimal | None = None
    dose_ml: Decimal | None = None
    concentration_mg_per_ml: Decimal | None = None
    rate_ml_per_h: Decimal | None = None
    rate_mg_per_h: Decimal | None = None
    product: str | None = None  # display name, for reports
    dose_g_per_kg: Decimal | None = None  # a dose per kg of the dosing weight
    rate_mg_per_kg_per_h: Decimal | None = None  # a rate already per kg: needs no weight
    rate_ml_per_kg_per_h: Decimal | None = None
    stopped: bool = False  # a stopped infusion: counted for the dose and rate recorded
    # the administration (``Type/id``) this one is a step of (R4 ``partOf``: a rate change of a
    # titrated bag): with no dose of its own, its dose is the one recorded there
    part_of: str | None = None


@record
class BodyWeight:
    source: str
    when: datetime
    kg: Decimal
    # recorded with a time of day; a date-only weight (``when`` its midnight UTC) stands for its
    # whole day: on a cycle's start day it may have been taken before the start, and counts
    timed: bool = False


@record
class BodyHeight:
    source: str
    when: datetime
    cm: Decimal


@record
class BodyMassIndex:
    source: str
    when: datetime
    kg_per_m2: Decimal


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class RiskFactorKind(StrEnum):
    """Thrombosis risk factors (clinical spec §5.1)."""

    ADVANCED_AGE = "advanced-age"
    IMMOBILISATION = "immobilisation"
    HYPERCOAGULABLE = "hypercoagulable"
    THROMBOSIS_HISTORY = "thrombosis-history"
    ESTROGEN = "estrogen"
    CENTRAL_VENOUS_CATHETER = "central-venous-catheter"
    HYPERVISCOSITY = "hyperviscosity"
    CARDIOVASCULAR = "cardiovascular"
    OBESITY = "obesity"
    MALIGNANCY = "malignancy"
    INFLAMMATION = "inflammation"


@record
class RiskEvidence:
    """A coded finding that shows a risk factor (a Condition, a medication, a device, a
    procedure), active from ``start`` (None: since before any record) to ``end`` (None: still).
    ``began``: the instant of the start, when one was recorded (a start on a later calendar
    date than a time *t* recorded in another offset may still be before *t*). ``bounded``: the
    start is only the last day it may have begun (a thromboembolic event recorded to the month,
    by an age or an onset period's end: "on or before"), ``earliest`` the first (None: any day
    before it)."""

    kind: RiskFactorKind
    source: str
    start: date | None = None
    end: date | None = None
    display: str | None = None
    began: datetime | None = None  # the instant it began, when its start has a time
    bounded: bool = False
    earliest: date | None = None


class TeeKind(StrEnum):
    """Thromboembolic events (clinical spec §5.3)."""

    DVT = "deep-vein-thrombosis"
    PE = "pulmonary-embolism"
    MI = "myocardial-infarction"
    ISCHAEMIC_STROKE = "ischaemic-stroke"
    TIA = "transient-ischaemic-attack"
    PERIPHERAL_ARTERIAL = "peripheral-arterial-thrombosis"
    CVST = "cerebral-venous-sinus-thrombosis"
    RETINAL_OCCLUSION = "retinal-vascular-occlusion"


ARTERIAL_TEE: frozenset[TeeKind] = frozenset(
    {TeeKind.MI, TeeKind.ISCHAEMIC_STROKE, TeeKind.TIA, TeeKind.PERIPHERAL_ARTERIAL}
)


@record
class TeeEvent:
    """A thromboembolic event (a Condition or an existing AdverseEvent) with its onset."""

    kind: TeeKind
    source: str
    onset: FhirTime
    display: str | None = None
    coding: tuple[str, str] | None = None  # (system, code) of the event as recorded
    # the other records of this one event: Conditions of its kind and onset day (a problem-list
    # entry and an encounter diagnosis of one clot), and another system's AdverseEvent of it
    # (thrombosis.one_event_per_clot)
    also: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Every record of this event: :attr:`source` (whose onset it carries) first."""
        return (self.source, *self.also)


@record
class PatientFacts:
    """What the core needs to know of the patient themself.

    ``birth_date`` is the birth date, or, when it is recorded to the year or the month only (a
    valid FHIR date: "1950", "1950-06"), the first day it may be, and ``birth_date_latest`` the
    last; ages are then known only within bounds (:func:`age_bounds`)."""

    birth_date: date | None = None
    sex: Sex = Sex.UNKNOWN
    birth_date_latest: date | None = None  # None: the birth date is recorded in full
    # recorded deceased with no date of death, and no dated record shows when the patient was
    # alive: the age at the evaluation's time is unknown (it may be long after the death)
    death_undated: bool = False
