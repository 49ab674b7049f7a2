"""Infusion-rate arithmetic: the one home for it (ARCHITECTURE.md, "one home per rule").

* an administration's rate in mg/kg/min (``rate_mg_per_h / (60 × kg)``, else
  ``rate_ml_per_h × mg/mL / (60 × kg)``; clinical spec §4);
* an ordered rate of any kind (mL/h, mg/h, mL/kg/h, mg/kg/h) in mg/kg/min;
* a maximum in mg/kg/min in an order's units: ``mL/h = mg/kg/min × kg × 60 / (mg/mL)``,
  ``g/h = mg/kg/min × kg × 60 / 1000``, ``mL/kg/h = mg/kg/min × 60 / (mg/mL)``;
* rounding for display: a maximum is rounded *down* (so that it is never exceeded), to whole
  mL/h and to 2 decimals otherwise; :func:`format_decimal` for human messages, never with an
  exponent.

Pure: no FHIR, no I/O; exact :class:`~decimal.Decimal` arithmetic in :data:`DECIMAL_CONTEXT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, localcontext
from enum import StrEnum

from fhirtis.clinical.decimals import (
    DECIMAL_CONTEXT,
    format_decimal,
    is_positive_finite,
    plain,
    quantize,
)
from fhirtis.clinical.facts import IvigAdministration
from fhirtis.clinical.notes import Note, excluded, missing, warning

__all__ = [
    "DECIMAL_CONTEXT",
    "DISPLAY",
    "MG_PER_G",
    "MIN_PER_H",
    "RateKind",
    "format_decimal",
    "infusion_rate_in_context",
    "infusion_rate_mg_kg_min",
    "is_positive_finite",
    "max_rate_in",
    "max_rate_text",
    "plain",
    "rate_mg_kg_min",
    "round_down",
]

MIN_PER_H = Decimal(60)
MG_PER_G = Decimal(1000)


class RateKind(StrEnum):
    """What an infusion rate is per: volume or mass, per patient or per kg, per hour."""

    VOLUME = "volume"  # mL/h
    MASS = "mass"  # mg/h
    VOLUME_PER_KG = "volume-per-kg"  # mL/kg/h
    MASS_PER_KG = "mass-per-kg"  # mg/kg/h

    @property
    def canonical(self) -> str:
        """The UCUM unit a rate of this kind is held in."""
        return _CANONICAL[self]


_CANONICAL = {
    RateKind.VOLUME: "mL/h",
    RateKind.MASS: "mg/h",
    RateKind.VOLUME_PER_KG: "mL/kg/h",
    RateKind.MASS_PER_KG: "mg/kg/h",
}

DISPLAY: Mapping[RateKind, tuple[str, int]] = {
    RateKind.VOLUME: ("mL/h", 0),
    RateKind.MASS: ("g/h", 2),
    RateKind.VOLUME_PER_KG: ("mL/kg/h", 2),
    RateKind.MASS_PER_KG: ("mg/kg/min", 2),
}
"""The unit and decimals (rounded down) a maximum is shown and suggested in, per kind."""


def round_down(value: Decimal, places: int) -> Decimal:
    """``value`` rounded towards zero to ``places`` decimals (a maximum is never exceeded)."""
    if not value.is_finite():
        return value
    return quantize(value, places, ROUND_DOWN)


def rate_mg_kg_min(
    kind: RateKind, value: Decimal, concentration: Decimal | None, kg: Decimal | None
) -> Decimal | None:
    """A rate of ``kind`` (in its canonical unit) in mg/kg/min, or None when the concentration
    (mg/mL) or the dosing weight (kg) it needs is unknown."""
    with localcontext(DECIMAL_CONTEXT):
        if kind is RateKind.MASS_PER_KG:
            return value / MIN_PER_H
        if kind is RateKind.VOLUME_PER_KG:
            if not is_positive_finite(concentration):
                return None
            assert concentration is not None
            return value * concentration / MIN_PER_H
        if not is_positive_finite(kg):
            return None
        assert kg is not None
        if kind is RateKind.MASS:
            return value / (MIN_PER_H * kg)
        if not is_positive_finite(concentration):
            return None
        assert concentration is not None
        return value * concentration / (MIN_PER_H * kg)


def max_rate_in(
    kind: RateKind, mg_kg_min: Decimal, kg: Decimal | None, concentration: Decimal | None
) -> Decimal | None:
    """A maximum of ``mg_kg_min`` in ``kind``'s display unit (:data:`DISPLAY`: mL/h, g/h,
    mL/kg/h, mg/kg/min), exact; None when the weight or concentration it needs is unknown."""
    with localcontext(DECIMAL_CONTEXT):
        if kind is RateKind.MASS_PER_KG:
            return mg_kg_min
        if kind is RateKind.VOLUME_PER_KG:
            if concentration is None:
                return None
            return mg_kg_min * MIN_PER_H / concentration
        if kg is None:
            return None
        if kind is RateKind.MASS:
            return mg_kg_min * kg * MIN_PER_H / MG_PER_G
        if concentration is None:
            return None
        return mg_kg_min * kg * MIN_PER_H / concentration


def max_rate_text(
    kind: RateKind, mg_kg_min: Decimal, kg: Decimal | None, concentration: Decimal | None
) -> str | None:
    """The maximum in ``kind``'s display unit, rounded down, with its unit ("252 mL/h")."""
    value = max_rate_in(kind, mg_kg_min, kg, concentration)
    if value is None:
        return None
    unit, places = DISPLAY[kind]
    return f"{plain(round_down(value, places))} {unit}"


def infusion_rate_mg_kg_min(
    admin: IvigAdministration, kg: Decimal | None
) -> tuple[Decimal | None, tuple[Note, ...]]:
    """The administration's rate in mg/kg/min with dosing weight ``kg``, or ``None`` with why.

    ``rate_mg_per_h / (60 × kg)``, else ``rate_ml_per_h × mg/mL / (60 × kg)``.
    """
    with localcontext(DECIMAL_CONTEXT):
        return infusion_rate_in_context(admin, kg)


def infusion_rate_in_context(
    admin: IvigAdministration, kg: Decimal | None
) -> tuple[Decimal | None, tuple[Note, ...]]:
    """:func:`infusion_rate_mg_kg_min` in the caller's Decimal context, which must be
    :data:`DECIMAL_CONTEXT`: for a loop that already holds it (entering it again for every
    administration only costs time; the flags it would discard are never read)."""
    notes: list[Note] = []
    src = admin.source
    # ``x is not None and is_positive_finite(x)`` is is_positive_finite(x), without a call for
    # the fields that are absent (most of them, for any one administration)
    mass_ok = admin.rate_mg_per_h is not None and is_positive_finite(admin.rate_mg_per_h)
    volume_ok = admin.rate_ml_per_h is not None and is_positive_finite(admin.rate_ml_per_h)
    conc = admin.concentration_mg_per_ml
    conc_ok = conc is not None and is_positive_finite(conc)
    if admin.rate_mg_per_h is not None and not mass_ok:
        notes.append(
            excluded("rate-implausible", "mass rate is not a positive finite number; not used", src)
        )
    if admin.rate_ml_per_h is not None and not volume_ok:
        notes.append(
            excluded(
                "rate-implausible", "volume rate is not a positive finite number; not used", src
            )
        )
    if admin.rate_mg_per_kg_per_h is not None or admin.rate_ml_per_kg_per_h is not None:
        for per_kg_rate, what in (
            (admin.rate_mg_per_kg_per_h, "mass"),
            (admin.rate_ml_per_kg_per_h, "volume"),
        ):
            if per_kg_rate is not None and not is_positive_finite(per_kg_rate):
                notes.append(
                    excluded(
                        "rate-implausible",
                        f"{what} rate per kg is not a positive finite number; not used",
                        src,
                    )
                )
        per_kg = _rate_per_kg(admin)  # None when neither is set
        if per_kg is not None:
            return per_kg, tuple(notes)
    mg_per_min: Decimal | None = None
    if volume_ok and conc_ok:
        assert admin.rate_ml_per_h is not None and admin.concentration_mg_per_ml is not None
        mg_per_min = admin.rate_ml_per_h * admin.concentration_mg_per_ml / MIN_PER_H
    if mass_ok:
        assert admin.rate_mg_per_h is not None
        mass_mg_per_min = admin.rate_mg_per_h / MIN_PER_H
        if mg_per_min is not None and mg_per_min != mass_mg_per_min:
            notes.append(
                warning(
                    "rate-disagrees",
                    f"mass rate {format_decimal(mass_mg_per_min)} mg/min differs from "
                    f"volume rate × concentration {format_decimal(mg_per_min)} mg/min; the "
                    "mass rate is used",
                    src,
                )
            )
        mg_per_min = mass_mg_per_min
    if mg_per_min is None:
        # a volume rate (per patient or per kg) that the concentration would have made a rate
        volume_per_kg = admin.rate_ml_per_kg_per_h is not None and is_positive_finite(
            admin.rate_ml_per_kg_per_h
        )
        if volume_ok or volume_per_kg:
            notes.append(
                missing(
                    "rate-concentration-unknown",
                    "rate given as a volume but the product concentration is unknown; rate in "
                    "mg/kg/min unknown",
                    src,
                )
            )
        else:
            notes.append(missing("rate-unknown", "no usable infusion rate recorded", src))
        return None, tuple(notes)
    if kg is None:
        notes.append(
            missing(
                "rate-weight-unknown",
                "no dosing weight for this cycle; rate in mg/kg/min unknown",
                src,
            )
        )
        return None, tuple(notes)
    return mg_per_min / kg, tuple(notes)


def _rate_per_kg(admin: IvigAdministration) -> Decimal | None:
    """A rate already per kg (mg/kg/h, or mL/kg/h with the concentration) in mg/kg/min."""
    if is_positive_finite(admin.rate_mg_per_kg_per_h):
        assert admin.rate_mg_per_kg_per_h is not None
        return admin.rate_mg_per_kg_per_h / MIN_PER_H
    if is_positive_finite(admin.rate_ml_per_kg_per_h) and is_positive_finite(
        admin.concentration_mg_per_ml
    ):
        assert admin.rate_ml_per_kg_per_h is not None
        assert admin.concentration_mg_per_ml is not None
        return admin.rate_ml_per_kg_per_h * admin.concentration_mg_per_ml / MIN_PER_H
    return None
