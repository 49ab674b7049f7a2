"""The version part of the ledger's key names the code that computed the results, not only the
package's version string: fhirtis 0.1.0 has been many algorithms (every clinical fix since the
first build kept "0.1.0" and ``ALGORITHM_VERSION`` "1"), so a registry that upgraded from one
main to a later one skipped every unchanged patient and kept results the new code would not
give (issue 13: "an upgraded fhirtis would be skipped the same way"). The key now carries a
digest of fhirtis's source and of its conformance resources (the code systems and value sets
that classify the input): any change to them re-evaluates everyone, once."""

from __future__ import annotations

import shutil
from pathlib import Path

import fhirtis
from fhirtis.fhir.codes import profiles_dir
from fhirtis.registry import run_key as run_key_module
from fhirtis.registry.run_key import code_digest, run_key
from fhirtis.settings import Settings


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    package = tmp_path / "fhirtis"
    profiles = tmp_path / "profiles"
    shutil.copytree(
        Path(fhirtis.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(profiles_dir(), profiles)
    return package, profiles


def test_the_key_names_the_code_that_computed(tmp_path: Path) -> None:
    run_key_module._installed_code_digest.cache_clear()  # made once per process: made now
    version = run_key(Settings(), "https://fhir.example.org").version
    assert version.endswith(code_digest(Path(fhirtis.__file__).parent, profiles_dir()))


def test_a_change_to_the_code_or_a_value_set_changes_the_digest(tmp_path: Path) -> None:
    package, profiles = _copy(tmp_path)
    before = code_digest(package, profiles)
    assert code_digest(package, profiles) == before  # deterministic
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert code_digest(package, profiles) == before  # compiled files are not the code
    rule = package / "clinical" / "tis.py"
    rule.write_text(rule.read_text() + "\n# a changed rule\n")
    changed = code_digest(package, profiles)
    assert changed != before
    value_set = profiles / "ValueSet-ivig-products.json"
    value_set.write_text(value_set.read_text().replace("Privigen", "Privigen "))
    assert code_digest(package, profiles) not in {before, changed}


def test_moving_the_installation_does_not_change_the_digest(tmp_path: Path) -> None:
    a = _copy(tmp_path / "a")
    b = _copy(tmp_path / "b")
    assert (
        code_digest(*a)
        == code_digest(*b)
        == code_digest(Path(fhirtis.__file__).parent, profiles_dir())
    )
