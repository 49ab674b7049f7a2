"""The pure part of a registry run: one partition of patients → their outcomes (what runs on a
worker, or in the driver's process for the local engine)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from fhirtis.fhir.bundle import PatientResources, alias_steps_by_id, substance_refs_of
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.extract import merged_message, replaced_by
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.plan import WritePlan, plan_writes
from fhirtis.fhir.security import Label
from fhirtis.fhir.validation import enable as enable_validation
from fhirtis.pipeline.batch_gc import batch_gc
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import (
    Answers,
    ask_terminology,
    evaluate_patient_resources,
    extractor_for,
)
from fhirtis.pipeline.pull import looks_like_immune_globulin
from fhirtis.pipeline.records import summarise
from fhirtis.registry.ndjson_store import (
    SHARED_ELEMENTS,
    input_digest,
    resolve_shared,
    shared_keys,
    shared_refs_of,
)
from fhirtis.registry.partition import ByteRange, partition_patients, shared_resources
from fhirtis.settings import Settings

Json = dict[str, Any]
_SHARED_NAMES = {rtype: f'"{name}"'.encode() for rtype, (name, _) in SHARED_ELEMENTS.items()}


@dataclass(frozen=True)
class EvaluatedPatient:
    """One patient's evaluation, in a form that crosses process boundaries (Dask workers)."""

    patient: str
    digest: str
    summary: bytes  # the summary record, compact JSON
    derived: Sequence[Derived]
    sources: Sequence[str]
    as_of: datetime
    # the resource types the server returned only in part for this patient (a search said
    # matches were withheld, or ended before its Bundle.total): earlier output is not withdrawn
    read_in_part: tuple[str, ...] = ()
    # the security labels of the labelled sources (by versioned reference), which the
    # Provenance naming them carries
    labels: Mapping[str, frozenset[Label]] = field(default_factory=dict)

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan:
        return plan_writes(self.derived, self.sources, self.as_of, existing, labels=self.labels)


@dataclass(frozen=True)
class Outcome:
    """A patient of a partition: skipped (unchanged), evaluated, or failed (with why)."""

    patient: str
    digest: str
    evaluated: EvaluatedPatient | None = None
    error: str | None = None
    has_patient: bool = True  # its Patient resource was in the input

    @property
    def skipped(self) -> bool:
        return self.evaluated is None and self.error is None


@dataclass(frozen=True)
class CohortJob:
    """What either engine runs: cut ``ranges`` into ``partitions`` under ``out_dir``
    (:func:`~fhirtis.registry.partition.partition_range`), then evaluate each partition
    (:func:`evaluate_partition`) with these settings, skipping the patients ``done`` holds."""

    ranges: list[ByteRange]
    out_dir: Path
    partitions: int
    settings_json: SecretStr  # :func:`settings_for_partitions`
    done: dict[str, str]
    keep_derived: bool
    validate: bool
    # by patient ("Patient/id"), the types read over REST that the server answered in part
    read_in_part: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class PartitionResult:
    bucket: int
    outcomes: list[Outcome] = field(default_factory=list)
    pid: int = 0  # the process that evaluated it (the driver's own for the local engine)
    seconds: float = 0.0


def evaluate_resources(
    resources: PatientResources,
    digest: str,
    settings: Settings,
    *,
    keep_derived: bool = True,
    answers: Answers | None = None,
) -> EvaluatedPatient:
    """Pure: one patient's resources (and the terminology server's ``answers`` for its codes the
    shipped ValueSets leave unclassified, when one is configured) → its evaluation."""
    result = evaluate_patient_resources(resources, settings, answers=answers)
    record = summarise(result.patient_ref, result.evaluation, result.issues).record()
    return EvaluatedPatient(
        resources.patient_ref,
        digest,
        dumps(record, indent=None).encode(),
        tuple(result.derived) if keep_derived else (),
        tuple(sorted(result.data.used.values())),
        result.evaluation.as_of,
        result.read_in_part,
        dict(result.data.labels),
    )


def read_in_part_issue(types: Sequence[str]) -> Issue:
    """The patient's warning that the server answered its REST search of ``types`` in part
    (code ``incomplete``, as :func:`fhirtis.pipeline.pull.partial_results` says it)."""
    return Issue(
        "warning",
        "incomplete",
        f"the server answered the REST search of {', '.join(types)} only in part (its own "
        "OperationOutcome, or pages ending before Bundle.total): the results may be incomplete",
    )


def shared_uses(own: Iterable[tuple[str, bytes]]) -> dict[str, Json]:
    """The patient's resources that may name a resource of no patient (a medication's
    Medication, a DeviceUseStatement's Device: :data:`SHARED_ELEMENTS`), parsed, by key. Only
    these rows are parsed before the input digest, so that an unchanged patient is skipped
    without parsing the rest; the evaluation reuses them."""
    return {
        key: orjson.loads(body)
        for key, body in own
        if (element := _SHARED_NAMES.get(key.partition("/")[0])) is not None and element in body
    }


def shared_refs(uses: Mapping[str, Json]) -> list[tuple[str, str]]:
    """The references (as written, and as ``Type/id``) of :func:`shared_uses`, in order."""
    return [ref for resource in uses.values() for ref in shared_refs_of(resource)]


def missing_shared(
    uses: Mapping[str, Json], found: Container[str], ivig_names: Sequence[str]
) -> list[Issue]:
    """An issue for each Medication or Device that :func:`shared_uses` name and ``found``
    (the patient's own resources and the shared ones, by key) lacks (a Bulk export need hold
    only the Patient compartment), as ``fhirtis run`` reports one it cannot read: an error
    where the medication looks like an immune globulin, else information; a warning for a
    Device (a catheter it may record is not counted)."""
    issues: list[Issue] = []
    for where, resource in uses.items():
        for text, key in shared_refs_of(resource):
            if key in found:
                continue
            if key.startswith("Device/"):
                message = (
                    f"{where}: its Device ({text}) is not in the input: a central venous "
                    "catheter it may record is not counted"
                )
                issues.append(Issue("warning", "not-found", message, "device", where))
            elif looks_like_immune_globulin(resource, ivig_names):
                message = (
                    f"{where}: its Medication ({text}) is not in the input, and it looks like "
                    "an immune globulin"
                )
                issues.append(Issue("error", "not-found", message, "medicationReference", where))
            else:
                message = f"{where}: its Medication ({text}) is not in the input"
                issues.append(
                    Issue("information", "not-found", message, "medicationReference", where)
                )
    return issues


def substance_refs(shared: Mapping[str, bytes]) -> list[tuple[str, str, str]]:
    """The Substances that the shared Medications of a patient (by key) name as an ingredient
    (R4 ``Medication.ingredient.itemReference``: :func:`~fhirtis.fhir.bundle.substance_refs_of`),
    each as (the Medication's key, the reference as written, its ``Substance/id`` key). A
    Substance belongs to no patient, as a Medication does: it is a shared resource of the export.
    Only a Medication whose text holds an ``itemReference`` is parsed."""
    return [
        (key, text, substance)
        for key, body in shared.items()
        if key.startswith("Medication/") and b'"itemReference"' in body
        for text, substance in substance_refs_of(orjson.loads(body))
    ]


def missing_substances(
    ingredients: Iterable[tuple[str, str, str]], found: Container[str]
) -> list[Issue]:
    """An issue for each Substance of :func:`substance_refs` that ``found`` lacks (an export
    need not hold the resources of no patient), once per Medication: an immune globulin named
    only there is not recognised (clinical spec §4: reported, never ignored silently)."""
    issues: list[Issue] = []
    for medication, text, key in dict.fromkeys(ingredients):
        if key in found:
            continue
        message = (
            f"{medication}: its ingredient's Substance ({text}) is not in the input: an immune "
            "globulin it may name is not recognised"
        )
        issues.append(
            Issue("information", "not-found", message, "ingredient.itemReference", medication)
        )
    return issues


def moved_issues(rows: Iterable[tuple[str, bytes]], moved: Collection[str]) -> list[Issue]:
    """One ``information`` issue for each of a patient's resources that is not read for it:
    the export also holds a newer version of it, which names another patient."""
    return [
        Issue(
            "information",
            "informational",
            f"{key} is not read for this patient: the export also holds a newer version of "
            "it, which names another patient (the resource was moved to that patient's record)",
            None,
            key,
        )
        for key, _ in rows
        if key in moved
    ]


def settings_for_partitions(settings: Settings) -> SecretStr:
    """``settings`` as the JSON :func:`evaluate_partition` reads, with the terminology server's
    token, which the evaluation sends (``model_dump_json`` writes every secret as
    ``**********``: the partitions sent ``Bearer **********`` and every question was refused).
    The FHIR server's credentials stay masked: partitions do not talk to it. In a SecretStr, so
    that what shows a task's arguments (a Dask worker's ``Compute Failed`` log) shows no token."""
    data = orjson.loads(settings.model_dump_json())
    terminology = settings.terminology
    if terminology is not None and terminology.bearer_token is not None:
        data["terminology"]["bearer_token"] = terminology.bearer_token.get_secret_value()
    return SecretStr(orjson.dumps(data).decode())


def evaluate_partition(
    out_dir: str,
    bucket: int,
    settings_json: SecretStr | str,
    done: Mapping[str, str],
    *,
    keep_derived: bool,
    validate: bool = False,
    stale: Mapping[str, Collection[str]] | None = None,
    read_in_part: Mapping[str, Sequence[str]] | None = None,
) -> PartitionResult:
    """Every patient of one partition: skipped when ``done`` holds its input digest, else
    evaluated; a patient whose evaluation fails is an outcome with the reason, never a crash of
    the partition. ``keep_derived``: keep the derived resources (to write them). ``stale``: by
    patient, the resources not read for it, a newer copy naming another patient
    (:func:`~fhirtis.registry.partition.stale_copies`). ``read_in_part``: by patient, the types
    read over REST that the server answered only in part (:attr:`CohortJob.read_in_part`)."""
    started = time.perf_counter()
    if validate:
        enable_validation()
    if isinstance(settings_json, SecretStr):
        settings_json = settings_json.get_secret_value()
    settings = Settings.model_validate_json(settings_json)
    result = PartitionResult(bucket, pid=os.getpid())
    with batch_gc():
        _evaluate_patients(
            out_dir,
            bucket,
            settings,
            done,
            result,
            keep_derived=keep_derived,
            stale=stale or {},
            read_in_part=read_in_part or {},
        )
    result.seconds = time.perf_counter() - started
    return result


def _evaluate_patients(
    out_dir: str,
    bucket: int,
    settings: Settings,
    done: Mapping[str, str],
    result: PartitionResult,
    *,
    keep_derived: bool,
    stale: Mapping[str, Collection[str]],
    read_in_part: Mapping[str, Sequence[str]],
) -> None:
    """The loop of :func:`evaluate_partition`: each patient's outcome into ``result``."""
    shared = shared_resources(out_dir)
    ivig = extractor_for(settings).t.value_sets.get("ivig-products")
    ivig_names = ivig.names if ivig else ()
    for patient, rows in partition_patients(out_dir, bucket):
        moved = stale.get(patient, ())
        own = [(key, body) for key, body in rows if key not in moved] if moved else rows
        if not own:
            continue  # its every resource names another patient in its newest version
        uses = shared_uses(own)
        named = shared_refs(uses)
        theirs = {k: shared[k] for k in shared_keys(named) if k in shared}
        ingredients = substance_refs(theirs)
        theirs.update({k: shared[k] for _, _, k in ingredients if k in shared})
        digest = input_digest(own, theirs)
        if done.get(patient) == digest:
            result.outcomes.append(Outcome(patient, digest))
            continue
        has_patient = any(key == patient for key, _ in own)
        try:
            listed = [(key, uses[key] if key in uses else orjson.loads(body)) for key, body in own]
            resolve = dict(listed)
            successor = replaced_by(resolve.get(patient))
            if successor is not None:  # a merge's retired record: as fhirtis run fails it
                result.outcomes.append(
                    Outcome(
                        patient,
                        digest,
                        error=merged_message(patient, successor),
                        has_patient=has_patient,
                    )
                )
                continue
            parsed = {k: orjson.loads(v) for k, v in theirs.items()}
            resolve_shared(resolve, named, parsed)
            resolve_shared(resolve, [(text, key) for _, text, key in ingredients], parsed)
            alias_steps_by_id(resolve, (r for _, r in listed))
            missing = (
                missing_shared(uses, resolve, ivig_names)
                + missing_substances(ingredients, resolve)
                + moved_issues(rows, moved)
            )
            in_part = tuple(read_in_part.get(patient, ()))
            if in_part:
                missing.append(read_in_part_issue(in_part))
            resources = PatientResources(patient, listed, resolve, missing, in_part)
            # a worker asks the terminology server itself (it needs no shared state for it)
            answers = (
                asyncio.run(ask_terminology(resources, settings)) if settings.terminology else None
            )
            evaluated = evaluate_resources(
                resources, digest, settings, keep_derived=keep_derived, answers=answers
            )
        except Exception as exc:
            error = f"evaluation failed: {type(exc).__name__}"
            result.outcomes.append(Outcome(patient, digest, error=error, has_patient=has_patient))
            continue
        result.outcomes.append(Outcome(patient, digest, evaluated, has_patient=has_patient))
