"""``$myositis-evaluate``: pull a patient from the configured FHIR server, compute, and return
the derived resources (and, with ``write=true``, write them back idempotently)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from fhirtis.api.errors import (
    ONLY_JSON,
    ONLY_R4,
    ApiError,
    is_json_media_type,
    other_fhir_version,
)
from fhirtis.api.limits import MAX_JSON_DEPTH, nested_deeper_than
from fhirtis.clinical.policy import LABEL_LIMIT_FIELDS, Policy, Population
from fhirtis.fhir.plan import Action
from fhirtis.fhir.primitives import is_id
from fhirtis.pipeline.offline import Options
from fhirtis.pipeline.server import PatientRun, RunStatus
from fhirtis.settings import ServiceSettings

_POLICY_FIELDS = frozenset(Policy.model_fields)
#: FHIR's general parameters (R4 http.html), which a query may carry besides the operation's.
GENERAL_PARAMETERS = frozenset({"_format", "_pretty", "_summary", "_elements"})
_FHIR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: A literal reference to a Patient (R4 references.html): relative, ``Patient/[id]``, or absolute,
#: ``[base]/Patient/[id]`` ("an absolute URL that resolves to the location where the resource is
#: found": the EHR's server, not fhirtis's base), either version-specific (``/_history/[vid]``).
_PATIENT_REFERENCE = re.compile(
    r"(?:(?P<base>https?://[^\s?#]+?)/)?Patient/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_VALUE_KEYS = (
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueString",
    "valueCode",
    "valueDate",
    "valueId",
    "valueReference",
    "valueUri",
)


@dataclass
class EvaluateParameters:
    patient: str | None = None
    # the FHIR base of an absolute ``patient`` reference: the server the Patient is on
    patient_server: str | None = None
    write: bool = False
    baseline_date: date | None = None
    population: Population | None = None
    server: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)

    def options(self) -> Options:
        return Options(population=self.population, baseline_day=self.baseline_date)

    def policy_over(self, base: Policy) -> Policy:
        if not self.policy:
            return base
        try:
            return Policy.model_validate({**base.model_dump(), **self.policy})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(400, f"parameter {where}: {first['msg']}", expression=where) from None


def check_policy_override_on_write(params: EvaluateParameters, service: ServiceSettings) -> None:
    """403 when a request that writes (``write=true``) changes a policy value: the label's
    maximum rates never (clinical spec §5.2), the other clinical choices only where
    ``service.allow_policy_override_on_write`` is set."""
    names = sorted(params.policy)
    limits = [n for n in names if n in LABEL_LIMIT_FIELDS]
    if limits:
        raise ApiError(
            403,
            f"{', '.join(limits)}: the label's maximum infusion rates cannot be changed by a "
            "request whose result is written back (write=true)",
            expression=limits[0],
        )
    if not service.allow_policy_override_on_write:
        raise ApiError(
            403,
            f"{', '.join(names)}: policy values cannot be changed by a request that writes "
            "(write=true); this service does not allow it "
            "(FHIRTIS_SERVICE__ALLOW_POLICY_OVERRIDE_ON_WRITE)",
            expression=names[0],
        )


def _value(param: dict[str, Any], name: str) -> Any:
    present = [k for k in _VALUE_KEYS if k in param]
    if len(present) != 1:
        raise ApiError(400, f"parameter {name} needs exactly one value[x]", expression=name)
    return param[present[0]]


def _only_a_value(param: dict[str, Any], name: str) -> None:
    """400 for a parameter that carries more than a value: a ``modifierExtension``, which may
    change its meaning (R4 BackboneElement: applications are required to check for them), or
    a ``resource`` or ``part`` (R4 Parameters inv-1: one and only one of value, resource and
    part; every parameter of this operation is a value), never read as if absent."""
    if param.get("modifierExtension"):
        raise ApiError(
            400,
            f"parameter {name} has a modifierExtension, which may change its meaning and "
            "this service does not know",
            expression=name,
        )
    for other in ("resource", "part"):
        if other in param:
            raise ApiError(
                400,
                f"parameter {name} takes a value, not a {other} "
                "(Parameters: one of value, resource and part)",
                expression=name,
            )


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in {"true", "false"}:
        return value == "true"
    raise ApiError(400, f"parameter {name} must be true or false", expression=name)


def _date(value: Any, name: str) -> date:
    """A full FHIR date, YYYY-MM-DD and a real day (not Python's ISO 8601 forms: 20240101,
    2024-W01-1)."""
    text = value if isinstance(value, str) else ""
    try:
        if _FHIR_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ApiError(400, f"parameter {name} must be a date (YYYY-MM-DD)", expression=name)


def parse_parameters(pairs: list[tuple[str, Any]]) -> EvaluateParameters:
    """(name, value) pairs from a Parameters resource or a query string."""
    out = EvaluateParameters()
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise ApiError(400, f"parameter {name} given twice", expression=name)
        seen.add(name)
        if name == "patient":
            ref = value.get("reference") if isinstance(value, dict) else value
            if not isinstance(ref, str):
                raise ApiError(
                    400, "parameter patient must be a Patient reference or id", expression=name
                )
            found = None if is_id(ref) else _PATIENT_REFERENCE.fullmatch(ref)
            if not is_id(ref) and found is None:
                raise ApiError(400, "parameter patient is not a valid Patient id", expression=name)
            out.patient = ref if found is None else found["id"]
            out.patient_server = None if found is None else found["base"]
        elif name == "write":
            out.write = _bool(value, name)
        elif name == "baseline-date":
            out.baseline_date = _date(value, name)
        elif name == "population":
            try:
                out.population = Population(str(value))
            except ValueError:
                raise ApiError(
                    400, "parameter population must be adult or juvenile", expression=name
                ) from None
        elif name == "server":
            out.server = str(value)
        elif name in _POLICY_FIELDS:
            if isinstance(value, bool):  # no policy value is a boolean; never read as 0 or 1
                raise ApiError(
                    400,
                    f"parameter {name} takes a number or a code, not a boolean",
                    expression=name,
                )
            out.policy[name] = value
        else:
            raise ApiError(400, f"unknown parameter {name}", expression=name)
    return out


def parameters_from_query(items: Iterable[tuple[str, str]]) -> list[tuple[str, Any]]:
    """The operation's parameters in a query string (FHIR R4 operations.html: an operation that
    changes nothing may be invoked by GET), FHIR's general parameters left out."""
    return [(name, value) for name, value in items if name not in GENERAL_PARAMETERS]


def parameters_from_body(body: bytes, content_type: str | None) -> list[tuple[str, Any]]:
    """The operation's parameters in a request body: none for an empty body, else a Parameters
    resource in JSON, FHIR R4 (415 for another media type or ``fhirVersion``, 400 for anything
    else, JSON ``null`` included)."""
    if not body:
        return []
    if content_type and not is_json_media_type(content_type):
        raise ApiError(415, f"{ONLY_JSON}: the body's Content-Type is another")
    version = other_fhir_version(content_type) if content_type else None
    if version is not None:
        raise ApiError(415, f"{ONLY_R4}: the body's Content-Type says fhirVersion={version}")
    try:
        resource = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "the body is not valid JSON") from None
    if nested_deeper_than(resource):
        raise ApiError(400, f"the body nests more than {MAX_JSON_DEPTH} levels deep")
    return parameters_from_resource(resource)


def parameters_from_resource(body: Any) -> list[tuple[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise ApiError(400, "the body must be a FHIR Parameters resource")
    params = body.get("parameter", [])
    if not isinstance(params, list):
        raise ApiError(400, "Parameters.parameter must be an array")
    pairs = []
    for i, p in enumerate(params):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise ApiError(400, "each parameter needs a name", expression=f"parameter[{i}]")
        _only_a_value(p, p["name"])
        pairs.append((p["name"], _value(p, p["name"])))
    return pairs


_PAST = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.WITHDRAW: "withdrawn",
    Action.UNCHANGED: "unchanged",
}


def _outcome_issues(run: PatientRun) -> list[dict[str, Any]]:
    """What a writing run did, as the server confirmed it (``run.written``, every attempt):
    "created", "updated", "withdrawn"; "unchanged" for what the last plan left; a planned write
    the server did not confirm (the write failed part-way) as a warning. What the server cannot
    store is said by the ``not_written`` issues."""
    done: dict[tuple[str, str], str] = {}
    for w in run.written:
        done.setdefault((w.resource_type, w.identifier), w.verb)  # created, then updated: created
    unconfirmed = {(rtype, ident) for rtype, ident, _ in run.unconfirmed}
    issues: list[dict[str, Any]] = []
    said: set[tuple[str, str]] = set()

    def info(key: tuple[str, str], what: str) -> None:
        said.add(key)
        issues.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"{key[0]} {key[1]}: {what}",
            }
        )

    for rtype, ident, action in run.planned:
        key = (rtype, ident)
        if key in done:
            info(key, done[key])
        elif action is Action.UNCHANGED:
            info(key, "unchanged")
        elif key in unconfirmed:
            said.add(key)
            issues.append(
                {
                    "severity": "warning",
                    "code": "incomplete",
                    "diagnostics": f"{rtype} {ident}: not {_PAST[action]} "
                    "(not confirmed by the server)",
                }
            )
    for key, what in done.items():  # an earlier attempt's, no longer in the last plan
        if key not in said:
            info(key, what)
    return issues


def result_bundle(run: PatientRun, *, write: bool) -> dict[str, Any]:
    """The operation's answer: a collection Bundle with an OperationOutcome first (issues of the
    input data, and what was created, updated, withdrawn or left: with ``write``, as the server
    confirmed it), then the derived resources."""
    assert run.result is not None
    issues: list[dict[str, Any]] = [i.as_fhir() for i in run.result.issues]
    if run.plan is not None and write:
        issues += _outcome_issues(run)
    elif run.plan is not None:
        for rtype, ident, action in run.planned:
            what = "unchanged" if action is Action.UNCHANGED else f"would be {_PAST[action]}"
            issues.append(
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{rtype} {ident}: {what}",
                }
            )
    for nw in run.not_written:
        issues.append({"severity": "warning", "code": "not-supported", "diagnostics": nw.message()})
    for dup in run.duplicates:
        issues.append({"severity": "warning", "code": "duplicate", "diagnostics": dup})
    if run.status is RunStatus.FAILED:  # only the write failed: the result stands
        issues.append(
            {
                "severity": "error",
                "code": run.error_code or "exception",
                "diagnostics": f"the derived resources were not written: {run.error}",
            }
        )
    status = {
        RunStatus.WRITTEN: "written",
        RunStatus.UNCHANGED: "nothing to write: the server already holds these results",
        RunStatus.DRY_RUN: "dry run: nothing was written",
        RunStatus.FAILED: "write failed: the result was computed but not (fully) written",
    }.get(run.status, run.status.value)
    issues.insert(0, {"severity": "information", "code": "informational", "diagnostics": status})
    entries: list[dict[str, Any]] = [
        {"resource": {"resourceType": "OperationOutcome", "issue": issues}}
    ]
    entries += [{"fullUrl": d.full_url, "resource": d.resource} for d in run.result.derived]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
