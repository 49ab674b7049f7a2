"""A faster ``__init__`` for frozen slotted dataclasses, with the same behaviour.

``@dataclass(frozen=True)`` makes ``__init__`` set every field through
``object.__setattr__(self, "name", value)``, because the class's own ``__setattr__`` refuses.
That generic path (a global, an attribute and a call by field name per field) makes building a
frozen record several times slower than building a mutable one, and the hot path builds one for
every measure value, administration, cycle and note of every patient.

A slotted class keeps each field in a slot whose descriptor can set it directly
(``descriptor.__set__(self, value)``), which is what ``object.__setattr__`` ends up doing after
looking the descriptor up by name. :func:`fast_frozen_init` replaces the generated ``__init__``
with one that calls the slots' descriptors directly: same signature (order, defaults, default
factories, keyword-only fields, ``init=False`` fields), same ``__post_init__`` call, and the
instance is as frozen as before (``__setattr__`` and ``__delattr__`` are untouched).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

_T = TypeVar("_T")

_NO_DEFAULT = dataclasses.MISSING


class _FactoryDefault:
    """The default of a field with a ``default_factory`` (replaced by a call at init)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _FactoryDefault()


def fast_frozen_init(cls: type[_T]) -> type[_T]:
    """Give the frozen slotted dataclass ``cls`` an ``__init__`` that sets its slots directly.

    Use it above the dataclass decorator::

        @fast_frozen_init
        @dataclass(frozen=True, slots=True)
        class Record: ...

    Raises TypeError when ``cls`` is not a frozen dataclass with slots, or has ``InitVar``
    pseudo-fields (not supported: none is used)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    if any(
        "InitVar" in str(annotation)  # a string under ``from __future__ import annotations``
        for annotation in inspect.get_annotations(cls).values()
    ):
        raise TypeError(f"{cls.__name__} has an InitVar")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword_only: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        setter = f"_set_{f.name}"
        namespace[setter] = cls.__dict__[f.name].__set__
        has_factory = f.default_factory is not _NO_DEFAULT
        if has_factory:
            namespace[f"_factory_{f.name}"] = f.default_factory
        if not f.init:
            if has_factory:
                body.append(f"    {setter}(self, _factory_{f.name}())")
            elif f.default is not _NO_DEFAULT:
                namespace[f"_default_{f.name}"] = f.default
                body.append(f"    {setter}(self, _default_{f.name})")
            continue
        if has_factory:
            param = f"{f.name}=_FACTORY"
            body.append(
                f"    {setter}(self, _factory_{f.name}() if {f.name} is _FACTORY else {f.name})"
            )
        else:
            if f.default is not _NO_DEFAULT:
                namespace[f"_default_{f.name}"] = f.default
                param = f"{f.name}=_default_{f.name}"
            else:
                param = f.name
            body.append(f"    {setter}(self, {f.name})")
        (keyword_only if f.kw_only else positional).append(param)
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    params_text = ", ".join(["self", *positional, *(["*", *keyword_only] if keyword_only else [])])
    source = f"def __init__({params_text}) -> None:\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning a method
    return cls
