"""Records: immutable values for the type checker, plain slotted classes at run time.

The facts, notes, assessments, cycles and results of the clinical core are values: built once,
shared between results, never changed. ``@dataclass(frozen=True)`` enforces that at run time by
making ``__init__`` set every field through ``object.__setattr__(self, "name", value)`` (the
class's own ``__setattr__`` refuses): a generic call per field, which made building a record two
to three times slower than building a mutable one, and the hot path builds one for every measure
value, administration, cycle and note of every patient (issue 13: with a faster ``__init__``
calling the slots' descriptors, record construction was still about a fifth of extraction and a
tenth of computing, deriving and planning).

:func:`record` declares a class a frozen dataclass to the type checker (PEP 681
``dataclass_transform`` with ``frozen_default=True``): ``mypy --strict``, which CI runs on every
module of fhirtis, refuses any assignment to a field of a record, as it does for
``@dataclass(frozen=True)``. At run time the class is a slotted dataclass with the same
constructor, equality, hash (of the fields, as a frozen dataclass's), ``repr``, pickling and
:func:`dataclasses.replace`; only the run-time refusal of an assignment is left out, so its
``__init__`` stores each field directly. Immutability is thus a checked property of the source,
not a cost paid per record.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a record: a frozen dataclass to the type checker, a slotted dataclass with
    a field hash at run time (see the module's docstring)::

        @record
        class Cycle:
            start: date
            grams: Decimal | None = None
    """
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
