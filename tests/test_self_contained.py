"""The product is self-contained: nothing a user installs or reads points to a file outside the
repository (the upstream specification beside a developer's checkout is not shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [
    *sorted((ROOT / "fhirtis").rglob("*.py")),
    *sorted((ROOT / "fhirtis").rglob("*.js")),
    *sorted((ROOT / "profiles").glob("*")),
    *sorted((ROOT / "examples").rglob("*.json")),
    ROOT / "README.md",
    ROOT / "examples" / "README.md",
    ROOT / "docs" / "operations.md",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for outside in ("../shared", "DOMAIN.md", "DOMAIN §"):
        assert outside not in text, f"{path.relative_to(ROOT)} points to {outside}"


def test_the_specification_it_points_to_is_there() -> None:
    spec = ROOT / "docs" / "clinical-specification.md"
    assert spec.is_file()
    assert "## 8." in spec.read_text(encoding="utf-8") or "# 8" in spec.read_text(encoding="utf-8")
