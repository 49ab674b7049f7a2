"""Evaluate a patient on a FHIR server and write the derived resources back, idempotently.

pull → evaluate (pure) → look up fhirtis's earlier output for the patient (one search per
derived type, by its identifier system) → plan (creates, changed updates, withdrawals of output
no longer derived, nothing else) → write, with one Provenance; the run reports what the server
confirmed (``PatientRun.written``), not the plan. *How* each step talks to the server is
decided from its capabilities (:mod:`fhirtis.io`: its CapabilityStatement, then what it refused):
one batch of searches or individual GETs, ``_include`` or Medications by id; one transaction, or
one batch, or single requests (creates, If-Match updates, then the Provenance). A derived type
the server lacks is not attempted and the run says so per resource (``not_written``).

Re-running converges: a 412 on ``If-Match`` (someone changed a resource meanwhile; HAPI FHIR
answers 409) or a write whose outcome is unknown (the connection dropped after sending) re-reads
what exists and re-plans, a bounded number of times; after a conflict the patient is read and
evaluated again first (another writer may have written from newer data). Conditional creates
make a repeated create harmless. A withdrawal by delete that the server refuses with 409 (HAPI:
another resource, such as an earlier Provenance, references it) is left and reported not
withdrawn; the rest is written.

The steps live in their own modules: :mod:`~fhirtis.pipeline.pull` (reading a patient as the
server allows), :mod:`~fhirtis.pipeline.stored_output` (fhirtis's earlier output on the write
server), :mod:`~fhirtis.pipeline.settle` (plan against it, re-plan, report),
:mod:`~fhirtis.pipeline.write` (transaction, batch or single requests; duplicates; Provenance),
:mod:`~fhirtis.pipeline.answers` (what a server's answer or failure means) and
:mod:`~fhirtis.pipeline.patient_run` (the run's record). This module runs one patient through
them and is where callers import them from.
"""

from __future__ import annotations

import logging

from fhirtis.io import FhirClient, FhirClientError, NotFound, UnsupportedFhirVersion
from fhirtis.pipeline.answers import (
    Learned,
    PullError,
    code_for,
    describe,
    entry_ok,
    entry_outcome,
    entry_status,
    status_for,
)
from fhirtis.pipeline.off_loop import off_the_loop
from fhirtis.pipeline.offline import (
    Options,
    PatientResult,
    ask_terminology,
    evaluate_patient_resources,
)
from fhirtis.pipeline.patient_run import NotWritten, PatientRun, RunStatus, Written
from fhirtis.pipeline.pull import (
    batch_of_reads,
    pull_patient,
    pull_types,
    read_by_id,
)
from fhirtis.pipeline.settle import settle
from fhirtis.settings import Settings

__all__ = [
    "Learned",
    "NotWritten",
    "PatientRun",
    "PullError",
    "RunStatus",
    "Written",
    "batch_of_reads",
    "code_for",
    "describe",
    "entry_ok",
    "entry_outcome",
    "entry_status",
    "not_found_text",
    "pull_patient",
    "pull_types",
    "read_by_id",
    "run_patient",
    "settle",
    "status_for",
]

log = logging.getLogger("fhirtis.pipeline.server")


def not_found_text(client: FhirClient) -> str:
    """Why a patient was not found: "patient not found", and where the server answered 404 for
    ``[base]/metadata`` too (R4 http.html#capabilities: every server has one), that the base URL
    is likely wrong: a base with ``/metadata`` pasted onto it, or without the path prefix a vendor
    gives (Epic's ``…/api/FHIR/R4``) answers 404 for every patient id."""
    caps = client.cached_capabilities()
    if caps is None or caps.metadata_status != 404:
        return "patient not found"
    return (
        f"patient not found, and {client.config.base_url.rstrip('/')}/metadata answered 404 "
        "too: check the FHIR base URL (the address the server's /metadata is under, e.g. "
        "https://host/api/FHIR/R4)"
    )


async def _check_writer_release(client: FhirClient) -> None:
    """Where derived resources go to another server (``write_base_url``) whose statement says
    another FHIR release than R4: :class:`UnsupportedFhirVersion`, before the patient is read
    (the read server's own statement is checked by the first read). A write server whose
    statement cannot be read is met where it is used, as before."""
    writer = client.writer()
    if writer is client:
        return
    try:
        await writer.capabilities()
    except UnsupportedFhirVersion:
        raise
    except FhirClientError:
        return


async def run_patient(
    client: FhirClient,
    patient_id: str,
    settings: Settings,
    options: Options | None = None,
    *,
    write: bool = False,
) -> PatientRun:
    """Evaluate one patient on the server; with ``write``, write back what changed."""
    requests: dict[str, int] = {}
    result: PatientResult | None = None

    async def read_and_evaluate() -> PatientResult:
        """The patient read from the server and evaluated (the terminology server asked first:
        the evaluation is pure), the run's result; again after a version conflict, when another
        writer may have written from newer data (see :func:`settle`). The evaluation runs off
        the event loop (:func:`off_the_loop`): a caller that stops waiting (a deadline) gets no
        result, and nothing is written from it."""
        nonlocal result
        resources = await pull_patient(client, patient_id, settings, requests)
        answers = await ask_terminology(resources, settings)
        result = await off_the_loop(
            evaluate_patient_resources, resources, settings, options, answers=answers
        )
        return result

    try:
        # a write server of another FHIR release: nothing read from either
        await _check_writer_release(client)
        evaluated = await read_and_evaluate()
    except NotFound:
        return PatientRun(
            patient_id, RunStatus.NOT_FOUND, error=not_found_text(client), requests=requests
        )
    except FhirClientError as exc:
        log.warning("pull failed for Patient/%s: %s", patient_id, type(exc).__name__)
        return PatientRun(
            patient_id,
            RunStatus.FAILED,
            error=describe(exc),
            requests=requests,
            error_status=status_for(exc),
            error_code=code_for(exc),
        )
    run = await settle(
        client, patient_id, evaluated, write=write, requests=requests, reevaluate=read_and_evaluate
    )
    run.result = result
    return run
