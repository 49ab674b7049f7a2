"""The unit registry's start-up check: a ucumvert/pint mismatch says what is wrong, what to do."""

from __future__ import annotations

from fractions import Fraction
from importlib.metadata import version
from typing import Any

import pytest
import ucumvert
from pint.errors import DefinitionSyntaxError

from fhirtis.fhir import units


def _broken_registry(*args: Any, **kwargs: Any) -> Any:
    # what pint 0.26 raises on ucumvert 0.3's definitions
    raise DefinitionSyntaxError("the alias i.U. is not a valid unit alias")


def test_a_registry_that_cannot_load_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ucumvert, "PintUcumRegistry", _broken_registry)
    monkeypatch.setattr(units, "_registry", None)
    units._factor.cache_clear()
    try:
        with pytest.raises(RuntimeError) as raised:
            units.factor("[lb_av]", "kg")
    finally:
        units._factor.cache_clear()
    message = str(raised.value)
    assert f"ucumvert {version('ucumvert')}" in message
    assert f"pint {version('pint')}" in message
    assert "i.U. is not a valid unit alias" in message  # the cause, for a bug report
    assert "pint>=0.24,<0.26" in message  # what to do
    assert isinstance(raised.value.__cause__, DefinitionSyntaxError)


def test_the_registry_loads_with_the_locked_versions() -> None:
    assert units.check_registry() is None
    assert units.factor("[lb_av]", "kg") == Fraction(45359237, 100000000)
