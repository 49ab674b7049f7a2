"""fhirtis installed as a package (a wheel), not run from the checkout (session s38, helper pkg).

- The public Python API is typed (``mypy --strict``) but the wheel carried no PEP 561 marker:
  an integrator's ``mypy`` skipped ``fhirtis`` ("module is installed, but missing library stubs
  or py.typed marker") and typed every name of ``fhirtis.__all__`` as ``Any``.
- ``fhirtis serve`` checked the ``[serve]`` extra's modules but not ``fastapi_offline``, which
  the service imports: without it (an upgrade by ``pip install -U fhirtis``, which installs no
  new extra dependency) it ended in a traceback instead of the one-line "pip install
  'fhirtis[serve]'".
- The container image builds its wheel from a build context that held no ``LICENSE``: the
  image's fhirtis carried no copy of its licence (Apache-2.0 section 4(a)).

Fast and offline: no wheel is built; what the wheel holds is what hatchling packs from
``fhirtis/`` (``[tool.hatch.build.targets.wheel] packages``), read here as package resources.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import fhirtis
from fhirtis.cli import app
from fhirtis.cli._common import EXTRAS

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_the_package_carries_the_pep_561_marker() -> None:
    marker = importlib.resources.files("fhirtis").joinpath("py.typed")
    assert marker.is_file()
    # the wheel packs the package folder whole: the marker is inside it, not force-included
    assert _pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["fhirtis"]


def _module(requirement: str) -> str:
    name = re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0]
    return name.replace("-", "_").lower()


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_checks_every_module_it_installs(extra: str) -> None:
    declared = {_module(r) for r in _pyproject()["project"]["optional-dependencies"][extra]}
    assert set(EXTRAS[extra]) == declared


def test_serve_without_fastapi_offline_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "fastapi_offline" else real(name, *args, **kwargs)

    def run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the service started without fastapi_offline")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr("uvicorn.run", run)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "pip install 'fhirtis[serve]'" in result.output
    assert "fastapi_offline" in result.output


def test_the_image_build_context_and_builder_hold_the_licence() -> None:
    admitted = {
        line.strip()[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    }
    assert "LICENSE" in admitted
    lines = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    licence = [i for i, line in enumerate(lines) if line.startswith("COPY ") and "LICENSE" in line]
    # copied into the builder before the project's wheel is built (`uv sync ... --no-editable`)
    wheel = next(i for i, line in enumerate(lines) if "--no-editable" in line)
    assert licence and licence[0] < wheel


def test_the_version_said_at_run_time_is_the_packages() -> None:
    """``fhirtis.__version__`` (``--version``, the CapabilityStatement's software version, the
    Provenance's agent, the registry ledger's algorithm key) is written by hand beside
    pyproject's: the two are the same release."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert fhirtis.__version__ == project["version"]
