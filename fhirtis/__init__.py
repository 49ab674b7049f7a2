"""fhirtis: myositis Total Improvement Score and IVIG safety over HL7 FHIR R4.

The public Python API is ``__all__`` below (frozen by ``tests/test_public_api.py``); everything
else is internal and may change between releases. Names are imported lazily, so that
``import fhirtis.clinical`` (the pure core, e.g. on a Dask worker) does not load the HTTP stack.

- Offline: :func:`evaluate_bundle_file` (a patient Bundle on disk),
  :func:`evaluate_patient_resources` (resources already in memory) → :class:`PatientResult`.
- On a FHIR server: :func:`run_patient` with a :class:`FhirClient` → :class:`PatientRun`.
- The IMACS calculator without FHIR: :func:`parse_calculator_input`, :func:`calculate`.
- The clinical core on facts: :func:`evaluate_patient`, with a :class:`Policy`.
- Settings: :func:`load_settings` → :class:`Settings`.

"The clinical spec §N" in fhirtis's docstrings and messages is ``docs/clinical-specification.md``
(the clinical specification as fhirtis implements it), section N.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fhirtis.clinical.patient import PatientEvaluation, evaluate_patient
    from fhirtis.clinical.policy import DosingWeightBasis, Policy, Population
    from fhirtis.fhir.outcome import InputError
    from fhirtis.io import FhirClient, FhirClientConfig, FhirClientError
    from fhirtis.pipeline.calculator import CalculatorInputError, calculate
    from fhirtis.pipeline.calculator import parse_input as parse_calculator_input
    from fhirtis.pipeline.offline import (
        Options,
        PatientResult,
        evaluate_bundle_file,
        evaluate_patient_resources,
    )
    from fhirtis.pipeline.records import patient_summary
    from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
    from fhirtis.settings import Settings, load_settings

_LAZY: dict[str, tuple[str, str]] = {
    "CalculatorInputError": ("fhirtis.pipeline.calculator", "CalculatorInputError"),
    "DosingWeightBasis": ("fhirtis.clinical.policy", "DosingWeightBasis"),
    "FhirClient": ("fhirtis.io", "FhirClient"),
    "FhirClientConfig": ("fhirtis.io", "FhirClientConfig"),
    "FhirClientError": ("fhirtis.io", "FhirClientError"),
    "InputError": ("fhirtis.fhir.outcome", "InputError"),
    "Options": ("fhirtis.pipeline.offline", "Options"),
    "PatientEvaluation": ("fhirtis.clinical.patient", "PatientEvaluation"),
    "PatientResult": ("fhirtis.pipeline.offline", "PatientResult"),
    "PatientRun": ("fhirtis.pipeline.server", "PatientRun"),
    "Policy": ("fhirtis.clinical.policy", "Policy"),
    "Population": ("fhirtis.clinical.policy", "Population"),
    "RunStatus": ("fhirtis.pipeline.server", "RunStatus"),
    "Settings": ("fhirtis.settings", "Settings"),
    "calculate": ("fhirtis.pipeline.calculator", "calculate"),
    "evaluate_bundle_file": ("fhirtis.pipeline.offline", "evaluate_bundle_file"),
    "evaluate_patient": ("fhirtis.clinical.patient", "evaluate_patient"),
    "evaluate_patient_resources": ("fhirtis.pipeline.offline", "evaluate_patient_resources"),
    "load_settings": ("fhirtis.settings", "load_settings"),
    "parse_calculator_input": ("fhirtis.pipeline.calculator", "parse_input"),
    "patient_summary": ("fhirtis.pipeline.records", "patient_summary"),
    "run_patient": ("fhirtis.pipeline.server", "run_patient"),
}

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fhirtis' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
