"""UCUM unit conversion, exact.

Conversion factors come from the UCUM definitions through ``ucumvert`` (a pint registry built
from the UCUM grammar), run with ``Fraction`` magnitudes so that a factor such as 1 [lb_av] =
0.45359237 kg or 1 g/h = 50/3 mg/min is exact. Factors are computed once per unit pair and cached.

Canonical units are chosen so that every realistic conversion into them is an exact decimal:
rates are per hour (mL/h, mg/h), never per minute. Where a factor is not a finite decimal the
result is rounded to 28 significant digits (``Decimal``'s default precision).

Unit text without a UCUM code is read through one documented table, :data:`UNIT_TEXT_ALIASES`
(``mL/hr``, ``lbs``, ``Units/L`` …). Two equivalences UCUM itself does not make are applied
first (clinical spec §1, §6): ``[IU]/L`` is ``U/L`` for enzymes, and the FHIR/UCUM annotation
units such as ``{score}`` are the unit 1.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from math import gcd
from typing import Any

# Units that mean the same thing for fhirtis's purposes, before UCUM is asked (UCUM codes).
_ALIASES: dict[str, str] = {
    "[IU]/L": "U/L",
    "[iU]/L": "U/L",
    "IU/L": "U/L",
    "u/L": "U/L",
    "ukat/L": "ukat/L",
    "µkat/L": "ukat/L",
}

UNIT_TEXT_ALIASES: dict[str, str] = {
    # volume and volume rates
    "ml": "mL",
    "milliliter": "mL",
    "milliliters": "mL",
    "millilitre": "mL",
    "millilitres": "mL",
    "milliliter (iso1000)": "mL",
    "ml/hr": "mL/h",
    "ml/hour": "mL/h",
    "ml/h": "mL/h",
    "ml/min": "mL/min",
    "ml/kg/hr": "mL/kg/h",
    "ml/kg/h": "mL/kg/h",
    "ml/kg/min": "mL/kg/min",
    "mls": "mL",
    "mls/hr": "mL/h",
    "mls/h": "mL/h",
    "cc": "mL",  # cubic centimetre (UCUM cm3), as US infusion records write mL
    "cc/hr": "mL/h",
    "cc/h": "mL/h",
    # rate names written out, as Oracle Health's rateQuantity.unit "milliliter per hour"
    "milliliter per hour": "mL/h",
    "milliliters per hour": "mL/h",
    "millilitre per hour": "mL/h",
    "millilitres per hour": "mL/h",
    "milliliter per minute": "mL/min",
    "milliliters per minute": "mL/min",
    "millilitre per minute": "mL/min",
    "millilitres per minute": "mL/min",
    # time
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "minute": "min",
    "minutes": "min",
    # mass, mass rates and doses
    "gram": "g",
    "grams": "g",
    "gm": "g",
    "milligram": "mg",
    "milligrams": "mg",
    "g/hr": "g/h",
    "gram per hour": "g/h",
    "grams per hour": "g/h",
    "milligram per hour": "mg/h",
    "milligrams per hour": "mg/h",
    "mg/hr": "mg/h",
    "mg/kg/hr": "mg/kg/h",
    "gm/kg": "g/kg",
    "gm/dl": "g/dL",
    # body mass index
    "kg/m^2": "kg/m2",
    "kg/m\u00b2": "kg/m2",  # SUPERSCRIPT TWO
    # body weight and height
    "kilogram": "kg",
    "kilograms": "kg",
    "kgs": "kg",
    "kg": "kg",  # "KG", "Kg" (Epic's vitals example writes "KG"; UCUM's case-insensitive symbol)
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "pound": "[lb_av]",
    "pounds": "[lb_av]",
    "oz": "[oz_av]",  # US systems record weights in ounces too (UCUM: 1/16 [lb_av])
    "ounce": "[oz_av]",
    "ounces": "[oz_av]",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    # lengths on a visual analogue scale (clinical spec §1, §6: a VAS in cm or mm)
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "in": "[in_i]",
    "inch": "[in_i]",
    "inches": "[in_i]",
    # a height in feet ("5.5 ft"): UCUM's "ft" is a femtotonne, which no record means
    "ft": "[ft_i]",
    "foot": "[ft_i]",
    "feet": "[ft_i]",
    # scores (clinical spec §6: MMT-8, CMAS, HAQ-DI, CHAQ … in {score}, the unit 1). The
    # instrument comes from the Observation's code, never from this unit, and a score converts
    # to no length: a VAS (cm, mm) in "points" is refused, as any unit it cannot convert from
    "score": "{score}",
    "scores": "{score}",
    "point": "{score}",
    "points": "{score}",
    # enzyme activity
    "units/l": "U/L",
    "unit/l": "U/L",
    "iu/l": "U/L",
    "u/l": "U/L",
    "ukat/l": "ukat/L",
    "\u00b5kat/l": "ukat/L",  # MICRO SIGN
    "\u03bckat/l": "ukat/L",  # GREEK SMALL LETTER MU (NFKC's form of the micro sign)
}
"""Unit *text* (``Quantity.unit`` given without a UCUM ``code``) → the UCUM code it means
(clinical spec §4, "units as EHRs write them"). Keys are lower case and matched after trimming and
lower-casing; only unambiguous spellings are listed (``IU/L`` for an enzyme activity is U/L by
clinical spec §1). Text that is not here is tried as UCUM itself (``mL``, ``kg``, ``mg/kg/min``); a
unit known to neither makes only that value unknown."""


def unit_from_text(text: str) -> str:
    """The UCUM code a ``Quantity.unit`` text means: the alias table first; else a text all in
    capitals (``CM``, ``MG/ML``, ``[LB_AV]``: UCUM's case-insensitive symbols, as systems
    bridged from HL7 v2 write them) in lower case, the case-sensitive symbol of every unit fhirtis
    reads; else the text. A text of mixed case is taken as written (``Mg`` is a megagram)."""
    stripped = text.strip()
    if stripped in _ALIASES:  # [IU]/L and the like: applied as written, never folded
        return stripped
    lower = stripped.lower()
    found = UNIT_TEXT_ALIASES.get(lower)
    if found is not None:
        return found
    return lower if stripped.isupper() else stripped


_lock = threading.Lock()
_registry: Any = None
# pint's registry and ucumvert's parser are not documented as thread-safe (pint builds its
# parse and conversion caches as it goes): the conversions the results below are cached from
# are worked out one at a time (the evaluations of the service run in threads, see
# fhirtis.pipeline.off_loop); a conversion already cached takes no lock
_pint_lock = threading.Lock()


class UnitError(ValueError):
    """A unit that UCUM does not know, or that cannot convert to the unit wanted."""


# The pint versions ucumvert's UCUM definitions load with (pint 0.26 rejects the alias "i.U.").
_PINT_SUPPORTED = "pint>=0.24,<0.26"


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"


def _ucum() -> Any:
    global _registry  # noqa: PLW0603 - one registry per process; building it costs ~0.5 s
    with _lock:
        if _registry is None:
            try:
                from ucumvert import PintUcumRegistry  # noqa: PLC0415 - slow, only when needed

                _registry = PintUcumRegistry(non_int_type=Fraction)
            except Exception as exc:  # pint raises definition errors of many kinds
                raise RuntimeError(
                    "fhirtis cannot build its UCUM unit registry with "
                    f"ucumvert {_installed('ucumvert')} and pint {_installed('pint')}: "
                    f"{type(exc).__name__}: {exc}. fhirtis needs {_PINT_SUPPORTED}; install "
                    f"fhirtis's locked versions (`uv sync --frozen`) or `pip install "
                    f"'{_PINT_SUPPORTED}'`."
                ) from exc
        return _registry


def check_registry() -> None:
    """Build the unit registry now (a start-up check); RuntimeError saying why if it cannot."""
    _ucum()


def normalise(unit: str) -> str:
    unit = unit.strip()
    if unit.startswith("{") and unit.endswith("}"):
        return "1"
    return _ALIASES.get(unit, unit)


def factor(from_unit: str, to_unit: str) -> Fraction:
    """The exact factor f such that x [from_unit] = x·f [to_unit]; UnitError if impossible."""
    found = _checked_factor(from_unit, to_unit)
    if isinstance(found, str):
        raise UnitError(found)
    return found


def _checked_factor(from_unit: str, to_unit: str) -> Fraction | str:
    """:func:`_factor`, except that a code in capitals whose case-insensitive reading means
    another amount is refused (see :func:`case_refusal`), never read as written: ``ML`` is
    UCUM's megalitre. Not cached itself: its callers are, and so is :func:`_factor`."""
    refusal = case_refusal(from_unit, to_unit)
    return _factor(from_unit, to_unit) if refusal is None else refusal


def case_refusal(code: str, target: str) -> str | None:
    """Why a UCUM code written in capitals is not read, or None. UCUM codes are case-sensitive
    (``ML`` is the megalitre, ``MG`` no mass at all: ``G`` is the gauss), but HL7 v2 sends
    units in capitals (``ML``, ``MG``: UCUM's case-insensitive symbols), and such a unit may
    reach ``Quantity.code``. When its case-insensitive reading (its lower-case symbol, as
    :func:`unit_from_text` reads a unit text in capitals) converts to ``target`` and the code
    as written does not, or gives another amount, neither reading is guessed. A code whose
    readings agree (``L``, ``U/L``) is read."""
    stripped = code.strip()
    if not stripped.isupper() or stripped == target.strip():
        return None
    reading = unit_from_text(stripped)
    if reading == stripped:
        return None
    insensitive = _factor(reading, target)
    if isinstance(insensitive, str):
        return None
    sensitive = _factor(stripped, target)
    if sensitive == insensitive:
        return None
    as_written = (
        f"cannot be read as {target!r}"
        if isinstance(sensitive, str)
        else f"means {to_decimal(sensitive / insensitive)} times as much"
    )
    return (
        f"unit code {stripped!r} is not read: UCUM codes are case-sensitive, and {stripped!r} "
        f"as written {as_written}; read case-insensitively it would be {reading!r}, which is "
        f"not guessed (the case-sensitive code is {reading!r})"
    )


@lru_cache(maxsize=1024)
def _factor(from_unit: str, to_unit: str) -> Fraction | str:
    """The factor, or why there is none (failures are cached too: parsing is the slow part)."""
    a, b = normalise(from_unit), normalise(to_unit)
    if a == b:
        return Fraction(1)
    if a == "1" or b == "1":
        return f"cannot convert {from_unit!r} to {to_unit!r}"
    ureg = _ucum()
    try:
        with _pint_lock:
            q = ureg.Quantity(Fraction(1), ureg.from_ucum(a)).to(ureg.from_ucum(b))
    except Exception as exc:  # ucumvert raises lark and pint errors of many kinds
        return f"cannot convert {from_unit!r} to {to_unit!r}: {type(exc).__name__}"
    magnitude = q.magnitude
    return magnitude if isinstance(magnitude, Fraction) else Fraction(magnitude)


@lru_cache(maxsize=1024)
def is_ucum(unit: str) -> bool:
    """Whether ``unit`` (after the alias table's :func:`normalise`) is a UCUM code fhirtis
    reads: a display text such as "milliliters per hour" is not."""
    a = normalise(unit)
    if a == "1":
        return True
    ureg = _ucum()
    try:
        with _pint_lock:
            ureg.from_ucum(a)
    except Exception:  # ucumvert raises lark and pint errors of many kinds
        return False
    return True


def to_decimal(value: Fraction) -> Decimal:
    """A Fraction as a Decimal: exact when it is a finite decimal, else 28 significant digits."""
    return _ratio_to_decimal(value.numerator, value.denominator)


def _ratio_to_decimal(numerator: int, denominator: int) -> Decimal:
    """numerator/denominator (in lowest terms, denominator > 0) as :func:`to_decimal` gives it:
    exact, at the fewest decimal places, when the denominator divides a power of ten."""
    d, twos, fives = denominator, 0, 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d == 1:
        # exact: the fewest places k with denominator | 10**k
        k = max(twos, fives)
        return Decimal(numerator * (10**k // denominator)).scaleb(-k)
    return Decimal(numerator) / Decimal(denominator)


@lru_cache(maxsize=1024)
def _conversion(from_unit: str, to_unit: str) -> Fraction | str | None:
    """The factor, why there is none (str), or None when it is 1 (the value is kept as is)."""
    found = _checked_factor(from_unit, to_unit)
    return None if not isinstance(found, str) and found == 1 else found


def convert(value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    """Convert a decimal value between UCUM units, exactly where the factor allows."""
    f = _conversion(from_unit, to_unit)
    if f is None:
        return value
    if isinstance(f, str):
        raise UnitError(f)
    # Fraction(value) * f, reduced, without making the intermediate Fractions
    vn, vd = value.as_integer_ratio()
    n, d = vn * f.numerator, vd * f.denominator
    g = gcd(n, d)
    return _ratio_to_decimal(n // g, d // g)


@lru_cache(maxsize=1024)
def first_convertible(from_unit: str, targets: tuple[str, ...]) -> str | None:
    """The first of ``targets`` that ``from_unit`` converts to, or None."""
    return next((t for t in targets if not isinstance(_checked_factor(from_unit, t), str)), None)
