"""Full model validation of what fhirtis writes, on demand.

Every derived resource and Provenance is built as plain JSON by ``derive``; validating each
with its ``fhir.resources`` R4B model (every element, every type) took 60 % of an offline
evaluation, for resources whose shape is fixed by the code that builds them. So validation is a
check, not a step of every run: the test suite validates everything written (``FHIRTIS_VALIDATE=1``
in its conftest, inherited by the CLI runs it starts), and a user can ask for it with
``fhirtis evaluate --validate`` / ``fhirtis cohort --validate`` (which set the same variable, so
that worker processes inherit it). Validation never changes the output: the dict is written,
not a dump of the model.
"""

from __future__ import annotations

import os
from typing import Any

from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource

ENV = "FHIRTIS_VALIDATE"

_MODELS: dict[str, type[Resource]] = {
    "Observation": Observation,
    "Flag": Flag,
    "DetectedIssue": DetectedIssue,
    "AdverseEvent": AdverseEvent,
    "Provenance": Provenance,
}


def enabled() -> bool:
    """Whether validation is on for this process (``FHIRTIS_VALIDATE`` set and not ``0``)."""
    return os.environ.get(ENV, "0") not in {"", "0", "false", "no"}


def enable() -> None:
    """Turn validation on for this process and the processes it starts."""
    os.environ[ENV] = "1"


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate one resource fhirtis writes with its R4B model; returns it unchanged. Raises
    pydantic's ValidationError when it does not conform (a fhirtis bug, never an input's)."""
    _MODELS[resource["resourceType"]].model_validate(resource)
    return resource
