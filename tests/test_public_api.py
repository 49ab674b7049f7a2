"""Freeze fhirtis's public Python API (``fhirtis.__all__``): a change here is deliberate."""

from __future__ import annotations

import subprocess
import sys

import fhirtis

EXPECTED = {
    "CalculatorInputError",
    "DosingWeightBasis",
    "FhirClient",
    "FhirClientConfig",
    "FhirClientError",
    "InputError",
    "Options",
    "PatientEvaluation",
    "PatientResult",
    "PatientRun",
    "Policy",
    "Population",
    "RunStatus",
    "Settings",
    "__version__",
    "calculate",
    "evaluate_bundle_file",
    "evaluate_patient",
    "evaluate_patient_resources",
    "load_settings",
    "parse_calculator_input",
    "patient_summary",
    "run_patient",
}


def test_public_api_is_frozen() -> None:
    assert set(fhirtis.__all__) == EXPECTED
    for name in fhirtis.__all__:
        assert getattr(fhirtis, name) is not None, name
    assert "evaluate_bundle_file" in dir(fhirtis)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        fhirtis.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("fhirtis.no_such_thing should raise AttributeError")


def test_the_clinical_core_loads_without_the_http_stack() -> None:
    code = (
        "import sys, fhirtis.clinical.patient, fhirtis.clinical.tis;"
        "print(sorted(m for m in ('httpx', 'fastapi', 'fhirtis.io', 'pydantic_settings')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_names_work_together(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    bundle = (
        Path(__file__).resolve().parent.parent / "examples" / "bundles" / "adult-responder.json"
    )
    result = fhirtis.evaluate_bundle_file(bundle, fhirtis.Settings(), fhirtis.Options())
    summary = fhirtis.patient_summary(result.patient_ref, result.evaluation, result.issues)
    assert summary["assessments"], summary.keys()
