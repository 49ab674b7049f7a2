"""The README's Layout section matches the package tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
LAYOUT = README.split("## Layout", 1)[1].split("```", 2)[1]


def _named(folder: str) -> str:
    """The Layout text of ``fhirtis/<folder>/`` (its line and the indented lines after it)."""
    match = re.search(rf"^  {re.escape(folder)}/ .*?(?=^  \S|^\S|\Z)", LAYOUT, re.M | re.S)
    assert match, f"the Layout does not list fhirtis/{folder}/"
    return match.group(0)


def test_every_subpackage_and_module_is_in_the_layout() -> None:
    package = ROOT / "fhirtis"
    for sub in sorted(p for p in package.iterdir() if (p / "__init__.py").is_file()):
        text = _named(sub.name)
        for module in sorted(sub.glob("*.py")):
            name = module.stem
            if name.startswith("_"):
                continue  # private modules sit behind their package's __all__
            assert re.search(rf"\b{name}\b", text), f"fhirtis/{sub.name}/{name}.py not in Layout"
        for nested in sorted(p for p in sub.iterdir() if (p / "__init__.py").is_file()):
            assert f"{nested.name}/" in text, f"fhirtis/{sub.name}/{nested.name}/ not in Layout"


def test_the_layout_names_only_what_exists() -> None:
    for folder in re.findall(r"^(\S+)/ ", LAYOUT, re.M):
        if folder != "fhirtis":
            assert (ROOT / folder).is_dir(), f"the Layout lists {folder}/, which does not exist"
    for folder in re.findall(r"^  (\w+)/ ", LAYOUT, re.M):
        assert (ROOT / "fhirtis" / folder).is_dir(), f"fhirtis/{folder}/ does not exist"
