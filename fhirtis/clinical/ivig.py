"""IVIG exposure (clinical spec §4): administrations → cycles, grams, g/kg, dosing weight, rates.

Pure rules over :mod:`fhirtis.clinical.facts`; no FHIR, no I/O. All arithmetic is
:class:`~decimal.Decimal` in :data:`DECIMAL_CONTEXT` (28 significant digits, half-even), whatever
the caller's thread context is; nothing is rounded here (rounding is for display only).

Definitions and choices (each one is what the code does; the policy values used travel with the
result as :attr:`Exposure.policy`):

* **Administrations** are sorted by start (then by source, for a stable order). An administration
  marked ``in_progress`` is counted like a completed one, and marked: it carries an
  ``in-progress`` warning and its cycle counts it in :attr:`Cycle.in_progress_count` (a bag
  whose step is in progress counts there once, as the bag).
* **Cycles** — day granularity: an administration whose start *date* is more than
  ``cycle_gap_days`` calendar days after the start date of the *previous administration* starts a
  new cycle. With the default 7: exactly 7 days apart → same cycle; 8 days → new cycle.
* **Cycle start** is its first administration's start; **cycle end** is the latest of its
  administrations' ends (an administration without an end counts with its start).
* **Span** — "a cycle spans more than ``max_cycle_span_days`` days" means the number of calendar
  days from the first to the last administration's start date, *both inclusive*, is more than
  ``max_cycle_span_days``; i.e. ``(last start date − first start date) ≥ max_cycle_span_days``.
  With the default 5: days 1–5 (a difference of 4) is fine; days 1–6 (5) is warned.
* **Interval** — a cycle whose start date is not within ``cycle_interval_days ±
  cycle_interval_tolerance_days`` calendar days (inclusive) of the previous cycle's start date is
  warned. With the defaults: 21 and 35 are fine; 20 and 36 are warned.
* **Off target** — a cycle whose g/kg differs from ``target_dose_g_per_kg`` by *more than*
  ``dose_tolerance_percent`` percent of the target is warned (exactly 10% off is not).
* **Grams** of an administration: ``dose_g`` when given; otherwise ``dose_ml ×
  concentration_mg_per_ml / 1000``. A volume without a concentration leaves the grams unknown,
  with that reason: a concentration is never assumed. When both a mass and a volume with a
  concentration are given, the mass is used and a disagreement between the two is warned.
  A cycle's grams are unknown when any of its administrations' grams are; the sum of the known
  grams is still reported (:attr:`Cycle.grams_known`) as a lower bound, never as the total.
* **Steps** — an administration that is part of another counted one (R4 ``partOf``: a rate
  change of a titrated bag, :attr:`IvigAdministration.part_of`) and records no dose of its own
  adds 0 g, with a ``dose-in-parent`` note: the bag's dose is recorded once, where it is part of.
  Its rate counts like any other (the highest step is the cycle's maximum). A step that records
  a dose counts it as recorded. A step is no administration of its own: the number of
  administrations (:attr:`Cycle.administration_count`, :attr:`Exposure.administration_count`)
  is of those given (the bags), and a count of records (grams or rates unknown for *n* of *m*)
  says how many of them are steps.
* **Dosing weight** of a cycle, on the policy's basis: :mod:`fhirtis.clinical.weight`.
* **g/kg** of a cycle: its grams ÷ its dosing weight, where a dose recorded per kg
  (``dose_g_per_kg``) counts as recorded: 5 × 0.44 g/kg is 2.2 g/kg exactly on any basis, even
  an ideal weight that is not a terminating decimal.
* **Rate** of an administration in mg/kg/min, with its cycle's dosing weight:
  ``rate_mg_per_h / (60 × kg)`` when a mass rate is given; otherwise
  ``rate_ml_per_h × concentration_mg_per_ml / (60 × kg)``.
  (10% product = 100 mg/mL, 70 kg, 300 mL/h → 30000 / 4200 = 7.142857… mg/kg/min.) A
  cycle's maximum rate is the maximum over the administrations whose rate is known; how many are
  unknown is reported beside it.
* **Cumulative**: grams = the sum of all administrations' grams, ``None`` when any is unknown
  (with :attr:`Exposure.cumulative_grams_known`, the known sum, beside it); g/kg = the sum of the
  cycles' g/kg, ``None`` when any cycle's is unknown (with the known sum beside it). A partial
  cumulative result is marked partial with a note, never given as a plain total.
* Values that cannot be real (a non-finite, zero or negative dose, volume, concentration, rate,
  weight or height) are excluded with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, localcontext

from fhirtis.clinical.decimals import (
    DECIMAL_CONTEXT,
    format_beside,
    format_decimal,
    is_positive_finite,
)
from fhirtis.clinical.facts import (
    BodyHeight,
    BodyWeight,
    FhirTime,
    IvigAdministration,
    PatientFacts,
)
from fhirtis.clinical.frozen import record
from fhirtis.clinical.notes import Note, excluded, missing, warning
from fhirtis.clinical.policy import DEFAULT_POLICY, PerPolicy, Policy
from fhirtis.clinical.rates import infusion_rate_in_context, infusion_rate_mg_kg_min
from fhirtis.clinical.weight import (
    ADJUSTED_WEIGHT_FACTOR,
    CM_PER_INCH,
    DEVINE_BASE_KG,
    DEVINE_KG_PER_INCH,
    DEVINE_MIN_HEIGHT_CM,
    DosingWeight,
    PlausibleBody,
    adjusted_body_weight,
    dosing_weight,
    dosing_weight_from,
    ideal_body_weight,
)

__all__ = [
    "ADJUSTED_WEIGHT_FACTOR",
    "CM_PER_INCH",
    "DECIMAL_CONTEXT",
    "DEVINE_BASE_KG",
    "DEVINE_KG_PER_INCH",
    "DEVINE_MIN_HEIGHT_CM",
    "AdministrationExposure",
    "Cycle",
    "DosingWeight",
    "Exposure",
    "OrderWeight",
    "adjusted_body_weight",
    "compute_exposure",
    "dose_tolerance_edges",
    "dosing_weight",
    "format_decimal",
    "grams_given",
    "group_cycles",
    "ideal_body_weight",
    "infusion_rate_mg_kg_min",
    "is_positive_finite",
    "order_dosing_weight",
]

_MG_PER_G = Decimal(1000)
_MIN_PER_H = Decimal(60)
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


# --------------------------------------------------------------------------------------------
# results


@record
class AdministrationExposure:
    """One administration with what was computed for it."""

    administration: IvigAdministration
    cycle_index: int
    grams: Decimal | None
    dosing_weight_kg: Decimal | None
    rate_mg_kg_min: Decimal | None
    notes: tuple[Note, ...]
    # the counted administration (``Type/id``) this record is a step of (R4 ``partOf``: a rate
    # change of a titrated bag); None for an administration given of its own
    step_of: str | None = None

    @property
    def source(self) -> str:
        return self.administration.source

    @property
    def start(self) -> FhirTime:
        return self.administration.start

    @property
    def in_progress(self) -> bool:
        return self.administration.in_progress


@record
class Cycle:
    """One IVIG cycle (course day 1 to its last administration)."""

    index: int  # 1-based, in order of start
    start: FhirTime
    last_start: FhirTime
    end: FhirTime  # the latest end (or start) of its administrations, at its recorded precision
    administrations: tuple[AdministrationExposure, ...]  # every record, steps included
    administration_count: int  # the administrations given: steps (partOf) are not counted
    in_progress_count: int  # of those given, the ones in progress (or with a step in progress)
    grams: Decimal | None  # None when any administration's grams is unknown
    grams_known: Decimal  # the sum of the known grams (equals ``grams`` when complete)
    dosing_weight: DosingWeight
    g_per_kg: Decimal | None
    max_rate_mg_kg_min: Decimal | None  # over the administrations whose rate is known
    rate_unknown_count: int
    span_days: int  # calendar days from first to last administration start, both inclusive
    days_since_previous: int | None  # start date − previous cycle's start date
    notes: tuple[Note, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(a.source for a in self.administrations)


@record
class Exposure:
    """The IVIG exposure of one patient: cycles and cumulative dose."""

    cycles: tuple[Cycle, ...]
    cycle_count: int
    administration_count: int  # the administrations given (the cycles' counts): steps not counted
    cumulative_grams: Decimal | None  # None when any administration's grams is unknown
    cumulative_grams_known: Decimal
    cumulative_g_per_kg: Decimal | None  # sum of per-cycle g/kg; None when any is unknown
    cumulative_g_per_kg_known: Decimal
    policy: Mapping[str, str]
    notes: tuple[Note, ...]

    @property
    def grams_partial(self) -> bool:
        return self.cumulative_grams is None

    @property
    def g_per_kg_partial(self) -> bool:
        return self.cumulative_g_per_kg is None

    @property
    def administrations(self) -> tuple[AdministrationExposure, ...]:
        return tuple(a for c in self.cycles for a in c.administrations)

    def all_notes(self) -> tuple[Note, ...]:
        """Every note: administrations', dosing weights', cycles', then the overall ones, each
        once: a note on the patient's body measurements (an excluded weight, a weight conflict)
        bears on every cycle dosed on or after it and is in each cycle's dosing weight, but it
        is one statement about the record."""
        out: dict[Note, None] = {}
        for cycle in self.cycles:
            for admin in cycle.administrations:
                out.update(dict.fromkeys(admin.notes))
            out.update(dict.fromkeys(cycle.dosing_weight.notes))
            out.update(dict.fromkeys(cycle.notes))
        out.update(dict.fromkeys(self.notes))
        return tuple(out)


# --------------------------------------------------------------------------------------------
# building blocks


def _dose_tolerance_edges(policy: Policy) -> tuple[Decimal, Decimal]:
    with localcontext(DECIMAL_CONTEXT):
        target = policy.target_dose_g_per_kg
        margin = target * policy.dose_tolerance_percent / _HUNDRED
        return target - margin, target + margin


dose_tolerance_edges = PerPolicy(_dose_tolerance_edges)
"""The g/kg edges of the target's tolerance (1.8 and 2.2 for 2 g/kg ± 10 %), made once per
policy: a cycle's g/kg is shown beside them (:func:`~fhirtis.clinical.decimals.beside_any`), so
that a dose off target is never shown on the edge (1.79999857… as 1.8) beside its warning."""


def grams_given(
    admin: IvigAdministration, kg: Decimal | None = None
) -> tuple[Decimal | None, tuple[Note, ...]]:
    """Grams of immune globulin given by one administration, or ``None`` with the reason.
    A dose per kg (``dose_g_per_kg``) is multiplied by the dosing weight ``kg``."""
    with localcontext(DECIMAL_CONTEXT):
        return _grams_given(admin, kg)


def _grams_given(
    admin: IvigAdministration, kg: Decimal | None
) -> tuple[Decimal | None, tuple[Note, ...]]:
    """:func:`grams_given` in the caller's Decimal context, which must be
    :data:`DECIMAL_CONTEXT` (:func:`compute_exposure` holds it around every cycle)."""
    notes: list[Note] = []
    src = admin.source
    per_kg = _dose_per_kg_only(admin)
    if per_kg is not None:
        if not is_positive_finite(per_kg):
            return None, (
                excluded("dose-implausible", "dose per kg is not a positive finite number", src),
            )
        if kg is None:
            return None, (
                missing(
                    "dose-weight-unknown",
                    "dose given per kg but no dosing weight for this cycle; grams unknown",
                    src,
                ),
            )
        return per_kg * kg, ()
    by_volume: Decimal | None = None
    # ``x is not None and is_positive_finite(x)``: is_positive_finite(x) without a call for an
    # absent field
    volume_ok = admin.dose_ml is not None and is_positive_finite(admin.dose_ml)
    conc = admin.concentration_mg_per_ml
    conc_ok = conc is not None and is_positive_finite(conc)
    if admin.dose_ml is not None and not volume_ok:
        notes.append(
            excluded(
                "dose-volume-implausible",
                "dose volume is not a positive finite number; not used",
                src,
            )
        )
    if admin.concentration_mg_per_ml is not None and not conc_ok:
        notes.append(
            excluded(
                "concentration-implausible",
                "product concentration is not a positive finite number; not used",
                src,
            )
        )
    if volume_ok and conc_ok:
        assert admin.dose_ml is not None and admin.concentration_mg_per_ml is not None
        by_volume = admin.dose_ml * admin.concentration_mg_per_ml / _MG_PER_G

    if admin.dose_g is not None:
        if not is_positive_finite(admin.dose_g):
            notes.append(
                excluded(
                    "dose-implausible",
                    "dose mass is not a positive finite number; not used",
                    src,
                )
            )
        else:
            if by_volume is not None and by_volume != admin.dose_g:
                notes.append(
                    warning(
                        "dose-disagrees",
                        f"dose mass {format_decimal(admin.dose_g)} g differs from volume × "
                        f"concentration {format_decimal(by_volume)} g; the mass is used",
                        src,
                    )
                )
            return admin.dose_g, tuple(notes)

    if by_volume is not None:
        return by_volume, tuple(notes)
    if volume_ok and not conc_ok:
        notes.append(
            missing(
                "concentration-unknown",
                "dose given as a volume but the product concentration is unknown; grams "
                "unknown (a concentration is never assumed)",
                src,
            )
        )
    elif not notes:
        notes.append(missing("dose-unknown", "no dose recorded; grams unknown", src))
    else:
        notes.append(missing("dose-unknown", "no usable dose; grams unknown", src))
    return None, tuple(notes)


def group_cycles(
    administrations: Iterable[IvigAdministration], policy: Policy = DEFAULT_POLICY
) -> tuple[tuple[IvigAdministration, ...], ...]:
    """Administrations sorted by start and cut into cycles by the ``cycle_gap_days`` rule."""
    return tuple(
        tuple(admin for admin, _ in cycle) for cycle in _keyed_cycles(administrations, policy)
    )


_TimeKey = tuple[date, datetime]  # FhirTime.sort_key()


def _keyed_cycles(
    administrations: Iterable[IvigAdministration], policy: Policy
) -> list[list[tuple[IvigAdministration, _TimeKey]]]:
    """:func:`group_cycles`, each administration with its start's sort key (made once: the
    cycle's latest end compares them again)."""
    # by (start, source), as a stable sort on them would order them (the position breaks ties)
    ordered = sorted(
        [
            (admin.start.sort_key(), admin.source, i, admin)
            for i, admin in enumerate(administrations)
        ]
    )
    cycles: list[list[tuple[IvigAdministration, _TimeKey]]] = []
    previous: IvigAdministration | None = None
    for key, _, _, admin in ordered:
        if previous is None or (
            (admin.start.day - previous.start.day).days > policy.cycle_gap_days
        ):
            cycles.append([(admin, key)])
        else:
            cycles[-1].append((admin, key))
        previous = admin
    return cycles


# --------------------------------------------------------------------------------------------
# the whole exposure


def _latest_end(admins: Iterable[tuple[IvigAdministration, _TimeKey]]) -> FhirTime:
    """The latest end (or start, when no end is recorded or it is not after the start) of the
    administrations, by sort key; of equal ones the first (as ``max`` picks). Whether an end is
    after its start is decided by the times where both have one, whatever the offsets they are
    recorded in (an end at 00:30+05:45 on the 11th is before a start at 20:00Z on the 10th),
    by the sort key otherwise."""
    latest: FhirTime | None = None
    latest_key: _TimeKey | None = None
    for admin, start_key in admins:
        end, end_key = admin.start, start_key
        if admin.end is not None:
            key = admin.end.sort_key()
            began, ended = admin.start.instant, admin.end.instant
            if ended > began if began is not None and ended is not None else key > start_key:
                end, end_key = admin.end, key
        if latest_key is None or end_key > latest_key:
            latest, latest_key = end, end_key
    assert latest is not None, "a cycle has administrations"
    return latest


def _flag_notes(admin: IvigAdministration) -> tuple[Note, ...]:
    """The warnings of an administration marked in progress or stopped (both counted)."""
    notes: list[Note] = []
    if admin.in_progress:
        notes.append(
            warning("in-progress", "administration still in progress; counted", admin.source)
        )
    if admin.stopped:
        notes.append(
            warning(
                "stopped",
                "administration stopped; counted for the dose and rate recorded",
                admin.source,
            )
        )
    return tuple(notes)


def _unversioned(source: str) -> str:
    """``Type/id`` of a source reference (``Type/id/_history/v`` → ``Type/id``)."""
    return source.partition("/_history/")[0]


def _step_of(admin: IvigAdministration, counted: frozenset[str]) -> str | None:
    """The counted administration (``Type/id``) that ``admin`` is a step of (R4 ``partOf``),
    or None when it is an administration given of its own."""
    parent = admin.part_of
    if parent is None or parent not in counted or parent == _unversioned(admin.source):
        return None
    return parent


def _records(count: int, steps: int) -> str:
    """``count`` administration records, saying how many of them are steps (``partOf``)."""
    if not steps:
        return f"{count} administrations"
    return f"{count} administration records ({steps} of them steps of another, partOf)"


def _dose_per_kg_only(admin: IvigAdministration) -> Decimal | None:
    """``admin``'s dose per kg when its dose is recorded per kg only (no grams, no volume);
    ``None`` otherwise. The one test of "a dose per kg" for the grams, the g/kg and the cycle
    without a dosing weight."""
    if admin.dose_g is None and admin.dose_ml is None:
        return admin.dose_g_per_kg
    return None


def _step_grams(
    admin: IvigAdministration, counted: frozenset[str]
) -> tuple[Decimal, tuple[Note, ...]] | None:
    """0 g, said, for a step (R4 ``partOf``) with no dose of its own of another counted
    administration, whose dose is the one recorded; None for any other administration."""
    parent = admin.part_of
    if (
        parent is None
        or parent not in counted
        or admin.dose_g is not None
        or admin.dose_ml is not None
        or admin.dose_g_per_kg is not None
        or parent == _unversioned(admin.source)
    ):
        return None
    said = (
        f"a step of {parent} (partOf) with no dose of its own: its dose is the one recorded "
        "there (0 g added)"
    )
    return _ZERO, (warning("dose-in-parent", said, admin.source),)


def _cycle(
    index: int,
    keyed: list[tuple[IvigAdministration, _TimeKey]],
    previous_start: FhirTime | None,
    body: PlausibleBody,
    patient: PatientFacts,
    policy: Policy,
    counted: frozenset[str] = frozenset(),
) -> Cycle:
    start = keyed[0][0].start
    last_start = keyed[-1][0].start
    end = _latest_end(keyed)
    since = previous_start.day if previous_start is not None else None
    weight = dosing_weight_from(start.day, body, patient, policy, since, start.instant)
    kg = weight.kg

    # one pass over the administrations: each one's grams, rate and notes, and the cycle's
    # sums, counts and maximum as sum(), len() and max() over them would give (in this order)
    exposures: list[AdministrationExposure] = []
    grams_known = _ZERO
    # the doses recorded per kg of the dosing weight, and the grams of the others: the cycle's
    # g/kg is the per-kg doses as recorded plus the others' grams ÷ kg (clinical spec §4), never
    # (dose per kg × kg) ÷ kg, which a dosing weight that is not a terminating decimal (most
    # ideal and adjusted weights: cm ÷ 2.54) rounds off the dose (2.2 g/kg as 2.2000…01)
    per_kg_known = _ZERO
    grams_not_per_kg = _ZERO
    grams_unknown = rate_unknown = 0
    # without a dosing weight, the plausible doses recorded per kg (their grams unknown): the
    # cycle's g/kg when every administration is one of them (or a step adding 0 g)
    per_kg_unweighed = _ZERO
    unweighed = 0
    max_rate: Decimal | None = None
    # the administrations given, in progress: a bag's own Type/id, or the bag a running step is
    # part of (one infusion running, counted once); the steps (partOf a counted one)
    running: set[str] = set()
    steps = 0
    for admin, _ in keyed:
        # compute_exposure holds DECIMAL_CONTEXT around every cycle
        parent = _step_of(admin, counted) if admin.part_of is not None else None
        if parent is not None:
            steps += 1
        step = _step_grams(admin, counted) if parent is not None else None
        admin_grams, gram_notes = step if step is not None else _grams_given(admin, kg)
        rate, rate_notes = infusion_rate_in_context(admin, kg)
        notes = gram_notes + rate_notes if rate_notes else gram_notes
        if admin.in_progress or admin.stopped:
            notes = _flag_notes(admin) + notes
            if admin.in_progress:
                running.add(parent if parent is not None else _unversioned(admin.source))
        per_kg = _dose_per_kg_only(admin) if step is None else None
        if admin_grams is None:
            grams_unknown += 1
            if kg is None and per_kg is not None and is_positive_finite(per_kg):
                per_kg_unweighed += per_kg
                unweighed += 1
        else:
            grams_known += admin_grams
            if per_kg is not None:
                per_kg_known += per_kg  # grams_given used the dose per kg
            else:
                grams_not_per_kg += admin_grams
        if rate is None:
            rate_unknown += 1
        elif max_rate is None or rate > max_rate:
            max_rate = rate
        exposures.append(AdministrationExposure(admin, index, admin_grams, kg, rate, notes, parent))

    cycle_notes: list[Note] = []
    records = _records(len(exposures), steps)
    grams: Decimal | None = grams_known
    g_per_kg: Decimal | None = None
    if grams_unknown:
        grams = None
        # every dose recorded per kg, none in grams or mL, no dosing weight: the g/kg is the
        # doses as recorded (spec §4, as a rate per kg needs no weight), the grams unknown
        if unweighed == grams_unknown and not grams_not_per_kg:
            g_per_kg = per_kg_unweighed
        what = "cycle grams unknown" if g_per_kg is not None else "cycle grams and g/kg unknown"
        cycle_notes.append(
            missing(
                "cycle-grams-unknown",
                f"grams unknown for {grams_unknown} of {records} of cycle {index}; {what}",
            )
        )
    elif kg is not None:
        if not per_kg_known:
            g_per_kg = grams_known / kg
        elif grams_not_per_kg:
            g_per_kg = grams_not_per_kg / kg + per_kg_known
        else:
            g_per_kg = per_kg_known
    else:
        cycle_notes.append(
            missing("cycle-g-per-kg-unknown", f"no dosing weight for cycle {index}; g/kg unknown")
        )

    if rate_unknown and max_rate is not None:
        cycle_notes.append(
            missing(
                "cycle-max-rate-partial",
                f"rate unknown for {rate_unknown} of {records} of cycle {index}; maximum "
                "rate is over the known ones only",
            )
        )
    elif rate_unknown:
        cycle_notes.append(
            missing("cycle-max-rate-unknown", f"no administration rate known in cycle {index}")
        )

    span_days = (last_start.day - start.day).days + 1
    if span_days > policy.max_cycle_span_days:
        cycle_notes.append(
            warning(
                "cycle-span",
                f"cycle {index} spans {span_days} calendar days (more than "
                f"{policy.max_cycle_span_days})",
            )
        )

    if g_per_kg is not None:
        off = abs(g_per_kg - policy.target_dose_g_per_kg) * _HUNDRED / policy.target_dose_g_per_kg
        if off > policy.dose_tolerance_percent:
            # shown with the places that tell them from the edge (never "10% off, tolerance 10%")
            under, over = dose_tolerance_edges(policy)
            edge = under if g_per_kg < policy.target_dose_g_per_kg else over
            cycle_notes.append(
                warning(
                    "dose-off-target",
                    f"cycle {index} dose {format_beside(g_per_kg, edge)} g/kg is "
                    f"{format_beside(off, policy.dose_tolerance_percent)}% off the target "
                    f"{format_decimal(policy.target_dose_g_per_kg)} g/kg (tolerance "
                    f"{format_decimal(policy.dose_tolerance_percent)}%)",
                )
            )

    days_since: int | None = None
    if previous_start is not None:
        days_since = (start.day - previous_start.day).days
        low = policy.cycle_interval_days - policy.cycle_interval_tolerance_days
        high = policy.cycle_interval_days + policy.cycle_interval_tolerance_days
        if not low <= days_since <= high:
            cycle_notes.append(
                warning(
                    "cycle-interval",
                    f"cycle {index} starts {days_since} days after the previous cycle (expected "
                    f"{policy.cycle_interval_days} ± {policy.cycle_interval_tolerance_days})",
                )
            )

    return Cycle(
        index=index,
        start=start,
        last_start=last_start,
        end=end,
        administrations=tuple(exposures),
        administration_count=len(exposures) - steps,
        in_progress_count=len(running),
        grams=grams,
        grams_known=grams_known,
        dosing_weight=weight,
        g_per_kg=g_per_kg,
        max_rate_mg_kg_min=max_rate,
        rate_unknown_count=rate_unknown,
        span_days=span_days,
        days_since_previous=days_since,
        notes=tuple(cycle_notes),
    )


def compute_exposure(
    administrations: Iterable[IvigAdministration],
    weights: Iterable[BodyWeight],
    heights: Iterable[BodyHeight],
    patient: PatientFacts,
    policy: Policy = DEFAULT_POLICY,
    body: PlausibleBody | None = None,
) -> Exposure:
    """Cycles, per-cycle dose and rates, and the cumulative dose of one patient's IVIG.
    ``body``: the plausible ``weights`` and ``heights`` under ``policy``
    (:meth:`~fhirtis.clinical.weight.PlausibleBody.of`), when the caller has made them."""
    weight_list = tuple(weights)
    height_list = tuple(heights)
    admin_list = tuple(administrations)
    # the administrations counted (Type/id), that a step (partOf) may be part of
    counted = (
        frozenset(_unversioned(a.source) for a in admin_list)
        if any(a.part_of is not None for a in admin_list)
        else frozenset()
    )
    with localcontext(DECIMAL_CONTEXT):
        cycles: list[Cycle] = []
        previous_start: FhirTime | None = None
        for i, keyed in enumerate(_keyed_cycles(admin_list, policy), start=1):
            if body is None:  # checked once per patient (with a first cycle)
                body = PlausibleBody.of(weight_list, height_list, policy)
            cycle = _cycle(i, keyed, previous_start, body, patient, policy, counted)
            cycles.append(cycle)
            previous_start = cycle.start

        notes: list[Note] = []
        all_admins = [a for c in cycles for a in c.administrations]
        given = sum(c.administration_count for c in cycles)
        steps = len(all_admins) - given
        known_grams = [a.grams for a in all_admins if a.grams is not None]
        grams_known = sum(known_grams, Decimal(0))
        cumulative_grams: Decimal | None = grams_known
        if len(known_grams) < len(all_admins):
            cumulative_grams = None
            notes.append(
                missing(
                    "cumulative-grams-partial",
                    f"grams unknown for {len(all_admins) - len(known_grams)} of "
                    f"{_records(len(all_admins), steps)}; cumulative grams is partial (known sum "
                    f"{format_decimal(grams_known)} g is a lower bound)",
                )
            )
        known_gpk = [c.g_per_kg for c in cycles if c.g_per_kg is not None]
        gpk_known = sum(known_gpk, Decimal(0))
        cumulative_gpk: Decimal | None = gpk_known
        if len(known_gpk) < len(cycles):
            cumulative_gpk = None
            notes.append(
                missing(
                    "cumulative-g-per-kg-partial",
                    f"g/kg unknown for {len(cycles) - len(known_gpk)} of {len(cycles)} cycles; "
                    f"cumulative g/kg is partial (known sum {format_decimal(gpk_known)} g/kg is a "
                    "lower bound)",
                )
            )

    return Exposure(
        cycles=tuple(cycles),
        cycle_count=len(cycles),
        administration_count=given,
        cumulative_grams=cumulative_grams,
        cumulative_grams_known=grams_known,
        cumulative_g_per_kg=cumulative_gpk,
        cumulative_g_per_kg_known=gpk_known,
        policy=policy.as_record(),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# an order's dosing weight


@record
class OrderWeight:
    """The dosing weight of the cycle an infusion given at a time belongs to
    (:func:`order_dosing_weight`)."""

    weight: DosingWeight
    cycle: Cycle | None  # the cycle it continues; None: a new cycle starting then
    at: datetime  # when the infusion starts, as counted


def order_dosing_weight(
    at: datetime,
    exposure: Exposure,
    weights: Iterable[BodyWeight],
    heights: Iterable[BodyHeight],
    patient: PatientFacts,
    policy: Policy = DEFAULT_POLICY,
) -> OrderWeight:
    """The dosing weight of the cycle an infusion starting at ``at`` (an order signed now)
    would belong to, as :func:`compute_exposure` computes it once the infusion is recorded
    (clinical spec §4): when ``at``'s date is at most ``cycle_gap_days`` days after the start
    date of the latest administration of ``exposure`` that started on or before ``at``, it
    continues that one's cycle, and its dosing weight is that cycle's (the latest weight before
    the cycle started, not one taken since); else it starts a new cycle at ``at``, whose dosing
    weight is the latest weight on or before ``at``'s date that was not recorded after ``at``.
    An administration recorded with a start after ``at`` is no cycle it continues: sorted by
    start, the infusion given at ``at`` comes before it (it joins the new cycle, which starts at
    ``at``)."""
    key = (at.date(), at)  # as FhirTime.sort_key() orders the recorded infusion's start
    last: Cycle | None = None
    previous: date | None = None  # the start date of the latest administration up to ``at``
    for cycle in exposure.cycles:
        for given in cycle.administrations:
            if given.start.sort_key() <= key:
                last, previous = cycle, given.start.day
    if (
        last is not None
        and previous is not None
        and (at.date() - previous).days <= policy.cycle_gap_days
    ):
        return OrderWeight(last.dosing_weight, last, at)
    since = last.start.day if last is not None else None
    body = PlausibleBody.of(weights, heights, policy)
    return OrderWeight(dosing_weight_from(at, body, patient, policy, since, at), None, at)
