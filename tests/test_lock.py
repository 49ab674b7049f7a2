"""The lock file installs the same runtime packages on every supported Python.

A package that the lock resolves to different versions per Python (uv "forks" the resolution)
means one Python runs code the others never tested: pint 0.26 on Python 3.12+ broke ucumvert at
start-up while the 3.11 tests passed. Every package that fhirtis needs at run time, with all of
its extras, must have one entry in uv.lock and no resolution markers.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

LOCK = Path(__file__).resolve().parents[1] / "uv.lock"
PROJECT = "fhirtis"


def runtime_packages(lock: dict[str, Any]) -> set[str]:
    """Names of the packages reachable from the project's dependencies and all of its extras."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    (project,) = packages[PROJECT]
    todo: list[dict[str, Any]] = list(project.get("dependencies", []))
    for deps in project.get("optional-dependencies", {}).values():
        todo.extend(deps)
    seen: set[str] = set()
    seen_extras: set[tuple[str, str]] = set()
    while todo:
        dep = todo.pop()
        name: str = dep["name"]
        extras = [e for e in dep.get("extra", []) if (name, e) not in seen_extras]
        if name in seen and not extras:
            continue
        seen.add(name)
        for package in packages[name]:
            todo.extend(package.get("dependencies", []))
            for extra in extras:
                seen_extras.add((name, extra))
                todo.extend(package.get("optional-dependencies", {}).get(extra, []))
    seen.discard(PROJECT)
    return seen


def version_splits(lock: dict[str, Any]) -> list[str]:
    """The runtime packages that the lock resolves differently depending on the Python."""
    runtime = runtime_packages(lock)
    entries = Counter(p["name"] for p in lock["package"] if p["name"] in runtime)
    split = {name for name, count in entries.items() if count > 1}
    split |= {
        p["name"] for p in lock["package"] if p["name"] in runtime and "resolution-markers" in p
    }
    return sorted(split)


def _lock() -> dict[str, Any]:
    with LOCK.open("rb") as f:
        return tomllib.load(f)


def test_runtime_dependencies_are_reached_through_extras() -> None:
    runtime = runtime_packages(_lock())
    # core, both extras, and packages only reached transitively
    assert {"pydantic", "ucumvert", "pint", "httpx", "joserfc"} <= runtime
    assert {"fastapi", "uvicorn", "prometheus-client", "starlette"} <= runtime
    assert {"distributed", "dask", "matplotlib", "numpy", "contourpy"} <= runtime
    # the dev group is not a runtime dependency
    assert not {"pytest", "mypy", "ruff", "playwright"} & runtime


def test_one_version_of_each_runtime_dependency_for_every_python() -> None:
    assert version_splits(_lock()) == [], (
        "uv.lock resolves these runtime packages differently per Python version; "
        "constrain them in pyproject.toml so that one version installs on every supported "
        "Python, then run `uv lock`"
    )


def test_a_split_lock_is_detected() -> None:
    """The shape of the lock before the fix: pint 0.25.3 on Python 3.11, 0.26.2 on 3.12+."""
    split_lock: dict[str, Any] = {
        "package": [
            {
                "name": PROJECT,
                "dependencies": [{"name": "ucumvert"}],
                "optional-dependencies": {"registry": [{"name": "matplotlib"}]},
                "dev-dependencies": {"dev": [{"name": "mypy"}]},
            },
            {
                "name": "ucumvert",
                "dependencies": [
                    {"name": "pint", "version": "0.25.3", "marker": "python_full_version < '3.12'"},
                    {
                        "name": "pint",
                        "version": "0.26.2",
                        "marker": "python_full_version >= '3.12'",
                    },
                ],
            },
            {
                "name": "pint",
                "version": "0.25.3",
                "resolution-markers": ["python_full_version < '3.12'"],
            },
            {
                "name": "pint",
                "version": "0.26.2",
                "resolution-markers": ["python_full_version >= '3.12'"],
            },
            {"name": "matplotlib", "dependencies": [{"name": "numpy"}]},
            {"name": "numpy", "resolution-markers": ["python_full_version < '3.12'"]},
            {"name": "mypy", "version": "1"},
            {"name": "mypy", "version": "2"},
        ]
    }
    # pint split in two; numpy forked through an extra; mypy (dev only) does not count
    assert version_splits(split_lock) == ["numpy", "pint"]
