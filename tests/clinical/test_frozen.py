"""record: a frozen dataclass to mypy, the same constructor, equality, hash, repr, pickling and
replace as ``@dataclass(frozen=True, slots=True)`` at run time, without its per-field cost."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import pkgutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

import fhirtis
from fhirtis.clinical.frozen import record
from fhirtis.clinical.notes import Note, Severity

ROOT = Path(__file__).resolve().parents[2]


def _twins() -> tuple[type[Any], type[Any]]:
    """The same class twice: a frozen slotted dataclass and a record."""

    def make() -> type[Any]:
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

    return dataclass(frozen=True, slots=True)(make()), record(make())


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    ((1, "x"), {}),
    ((1, "x", [9, 9]), {}),
    ((1,), {"c": []}),
    ((1,), {"f": 7, "g": "g", "h": 1.5}),
    ((), {"a": 2, "b": "y", "g": "z"}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_a_record_is_built_and_compared_as_the_frozen_dataclass(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    frozen, fast = _twins()
    expected, got = frozen(*args, **kwargs), fast(*args, **kwargs)
    assert dataclasses.asdict(got) == dataclasses.asdict(expected)
    assert repr(got) == repr(expected)
    # the hash of the fields, as frozen=True makes it: here of lists, so refused by both
    with pytest.raises(TypeError, match="unhashable"):
        hash(expected)
    with pytest.raises(TypeError, match="unhashable"):
        hash(got)
    assert hash(record(type("H", (), {"__annotations__": {"a": "int"}}))(1)) == hash(
        dataclass(frozen=True, slots=True)(type("H", (), {"__annotations__": {"a": "int"}}))(1)
    )
    assert got == fast(*args, **kwargs) and got != fast(9)
    assert type(got).__slots__ == type(expected).__slots__
    assert dataclasses.replace(got, b="z").b == "z"


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
    frozen, fast = _twins()
    with pytest.raises(TypeError):
        frozen(*args, **kwargs)
    with pytest.raises(TypeError):
        fast(*args, **kwargs)


def test_post_init_is_still_called() -> None:
    seen: list[int] = []

    @record
    class Checked:
        a: int

        def __post_init__(self) -> None:
            seen.append(self.a)

    Checked(3)
    assert seen == [3]


def test_mypy_refuses_assigning_a_field_of_a_record(tmp_path: Path) -> None:
    """What keeps records unchanged is the type check CI runs (mypy --strict on fhirtis): it
    must see a record as frozen. A record of the package and one declared here, assigned:
    both refused; the same code without the assignments passes."""
    body = """\
        from dataclasses import replace
        from fhirtis.clinical.frozen import record
        from fhirtis.clinical.notes import Note, Severity


        @record
        class Local:
            a: int
            b: str = "b"


        note = Note(Severity.WARNING, "code", "message")
        local = Local(1)
        moved = replace(local, a=2)
        """
    body = textwrap.dedent(body)
    wrong = body + 'note.code = "other"\nlocal.a = 3\n'
    results = {}
    for name, text in (("right", body), ("wrong", wrong)):
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        out, err, status = mypy_api.run(
            [
                "--strict",
                "--follow-imports=silent",
                "--config-file",
                str(ROOT / "pyproject.toml"),
                str(path),
            ]
        )
        results[name] = (out, err, status)
    assert results["right"][2] == 0, results["right"]
    out, _, status = results["wrong"]
    assert status == 1
    assert 'Property "code" defined in "Note" is read-only' in out
    assert 'Property "a" defined in "Local" is read-only' in out


def test_a_record_is_hashable_and_equal_by_value() -> None:
    note = Note(Severity.WARNING, "code", "message")
    assert hash(note) == hash(Note(Severity.WARNING, "code", "message"))
    assert {note, Note(Severity.WARNING, "code", "message")} == {note}
    assert dataclasses.replace(note, source="s") == Note(Severity.WARNING, "code", "message", "s")
    assert pickle.loads(pickle.dumps(note)) == note


def test_no_slotted_dataclass_of_the_package_pays_for_run_time_freezing() -> None:
    """A slotted value class of fhirtis is a record (frozen to mypy), never
    ``@dataclass(frozen=True, slots=True)``, whose constructor costs a generic call per field;
    and the records are there (the hot path's facts, notes, results)."""
    records = []
    for info in pkgutil.walk_packages(fhirtis.__path__, "fhirtis."):
        if info.name.endswith("__main__"):
            continue  # runs the command line
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and "__slots__" in value.__dict__
            ):
                params = value.__dataclass_params__  # type: ignore[attr-defined]
                assert not params.frozen, value
                if params.unsafe_hash:
                    records.append(value)
    assert len(records) > 40
