"""fast_frozen_init: the same constructor as the dataclass's own, on frozen slotted records."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from dataclasses import dataclass, field
from typing import Any

import pytest

import fhirtis
from fhirtis.clinical.frozen import fast_frozen_init
from fhirtis.clinical.notes import Note, Severity


def _twins() -> tuple[type[Any], type[Any]]:
    """The same record twice: with the dataclass's ``__init__`` and with the fast one."""

    def make() -> type[Any]:
        @dataclass(frozen=True, slots=True)
        class Record:
            a: int
            b: str = "b"
            c: list[int] = field(default_factory=lambda: [1])
            d: int = field(default=4, init=False)
            e: list[str] = field(default_factory=list, init=False)
            f: int = field(default=6, kw_only=True)
            g: str = field(kw_only=True, default_factory=str)
            h: float = field(kw_only=True, default=0.5)

        return Record

    return make(), fast_frozen_init(make())


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    ((1, "x"), {}),
    ((1, "x", [9, 9]), {}),
    ((1,), {"c": []}),
    ((1,), {"f": 7, "g": "g", "h": 1.5}),
    ((), {"a": 2, "b": "y", "g": "z"}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_fast_init_builds_what_the_dataclass_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = _twins()
    expected, got = plain(*args, **kwargs), fast(*args, **kwargs)
    assert dataclasses.asdict(got) == dataclasses.asdict(expected)
    assert repr(got).replace("_twins.<locals>.make.<locals>.", "") == repr(expected).replace(
        "_twins.<locals>.make.<locals>.", ""
    )


def test_default_factories_are_called_per_instance() -> None:
    _, fast = _twins()
    one, two = fast(1), fast(1)
    assert one.c == [1] and one.c is not two.c and one.e is not two.e


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, "x", [], 4), {}), ((1,), {"d": 4}), ((1,), {"zz": 1}), ((1,), {"a": 1})],
)
def test_bad_calls_fail_as_the_dataclass_does(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = _twins()
    with pytest.raises(TypeError):
        plain(*args, **kwargs)
    with pytest.raises(TypeError):
        fast(*args, **kwargs)


def test_records_stay_frozen_hashable_replaceable_and_picklable() -> None:
    note = Note(Severity.WARNING, "code", "message")
    with pytest.raises(dataclasses.FrozenInstanceError):
        note.code = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del note.code  # type: ignore[misc]
    assert hash(note) == hash(Note(Severity.WARNING, "code", "message"))
    assert dataclasses.replace(note, source="s") == Note(Severity.WARNING, "code", "message", "s")
    assert pickle.loads(pickle.dumps(note)) == note


def test_post_init_is_still_called() -> None:
    seen: list[int] = []

    @fast_frozen_init
    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            seen.append(self.a)

    Checked(3)
    assert seen == [3]


@pytest.mark.parametrize(
    "decorate",
    [
        dataclass(frozen=True),  # no slots
        dataclass(slots=True),  # not frozen
        lambda c: c,  # not a dataclass
    ],
)
def test_only_frozen_slotted_dataclasses_are_accepted(decorate: Any) -> None:
    class Plain:
        a: int

    with pytest.raises(TypeError, match="not a frozen dataclass with slots"):
        fast_frozen_init(decorate(Plain))


def _package_records() -> list[type[Any]]:
    found: list[type[Any]] = []
    for info in pkgutil.walk_packages(fhirtis.__path__, "fhirtis."):
        if info.name.endswith("__main__"):
            continue  # runs the command line
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and value.__dataclass_params__.frozen  # type: ignore[attr-defined]
                and "__slots__" in value.__dict__
            ):
                found.append(value)
    return found


def test_every_frozen_slotted_record_of_the_package_has_the_fast_init() -> None:
    """Every frozen slotted dataclass of fhirtis is decorated, and its constructor's signature is
    the one the dataclass declares (names, order, kinds, which have defaults)."""
    records = _package_records()
    assert len(records) > 40
    for cls in records:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert "_set_" in " ".join(cls.__init__.__code__.co_names), cls  # the fast one
        expected = [
            (f.name, f.kw_only, f.default is not dataclasses.MISSING)
            for f in dataclasses.fields(cls)
            if f.init
        ]
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        got = [
            (
                p.name,
                p.kind is inspect.Parameter.KEYWORD_ONLY,
                p.default is not inspect.Parameter.empty
                and type(p.default).__name__ != "_FactoryDefault",
            )
            for p in params
        ]
        assert got == expected, cls
