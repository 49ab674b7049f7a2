"""Plan a patient's derived resources against what the write server holds and, when asked, write
what changed, re-reading and re-planning on 412, an unknown outcome or a refusal that taught
something; a run reports what the server confirmed (:func:`settle`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import RETIRABLE, Action, PlannedWrite, WritePlan, with_withdrawals
from fhirtis.fhir.primitives import instant_or_none
from fhirtis.fhir.queries import MAX_QUERY_VALUES
from fhirtis.io import (
    Capabilities,
    FhirClient,
    FhirClientError,
    PreconditionFailed,
    WriteOutcomeUnknown,
    WritePlanShape,
    write_plan,
)
from fhirtis.pipeline.answers import (
    Learned,
    SeveralMatches,
    bundle_entry_limit,
    code_for,
    describe,
    location_reference,
    status_for,
)
from fhirtis.pipeline.patient_run import NotWritten, PatientRun, RunStatus
from fhirtis.pipeline.pull import MAX_LEARN
from fhirtis.pipeline.stored_output import stored_output
from fhirtis.pipeline.write import (
    SEVERAL_MATCHES,
    Naming,
    bundle_entries,
    post_provenance,
    write_batch,
    write_in_parts,
    write_singles,
    write_transaction,
)

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.settle")


MAX_REPLANS = 3


class Plannable(Protocol):
    """An evaluated patient whose derived resources can be planned against a server's state."""

    @property
    def derived(self) -> Sequence[Derived]: ...

    @property
    def read_in_part(self) -> Sequence[str]:
        """The resource types the server returned only in part (:func:`hold_withdrawals`)."""
        ...

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan: ...


Reevaluate = Callable[[], Awaitable[Plannable]]
"""Reads the patient again and evaluates anew (:func:`settle`'s ``reevaluate``)."""


async def settle(
    client: FhirClient,
    patient_id: str,
    evaluated: Plannable,
    *,
    write: bool,
    requests: dict[str, int] | None = None,
    reevaluate: Reevaluate | None = None,
) -> PatientRun:
    """Plan the derived resources against what the write server holds (``client.writer()``:
    ``write_base_url`` if set) and, with ``write``, write what changed the way the server allows
    (transaction, batch, or single requests), re-reading and re-planning on 412, an unknown
    outcome or a refusal that taught something. Types the server cannot store are not attempted
    (``not_written``). Stored output whose current version no Provenance names (an earlier run
    was killed, or its Provenance failed, between its writes and its Provenance) is named by
    this run's: one more search, only where output is stored (see :func:`_name_unnamed`).
    Earlier output no longer derived is withdrawn (see :func:`stored_output`), except where the
    evaluation says its data was read only in part (its ``read_in_part``:
    :func:`hold_withdrawals`). The returned run has no ``result`` (:func:`run_patient` sets it)
    and lists in ``written`` what the server confirmed this run wrote, in every attempt.

    A version conflict (412, HAPI's 409, a conditional create that found another writer's
    resource) says another writer changed the patient's output since this run read it, maybe
    from data newer than this run's evaluation: re-planning that evaluation against the new
    state would overwrite the newer output with older conclusions (and withdraw what only the
    newer data shows, such as a thromboembolic event's AdverseEvent), a lost update (R4
    http.html#concurrency: the client re-reads and applies its change to the current state).
    With ``reevaluate`` (which reads the patient again and evaluates anew), the re-plan after a
    conflict is of that fresh evaluation; without it (a Bulk Data snapshot, which cannot be
    read again), of the one given."""
    naming = Naming()
    run = await _settle(client, patient_id, evaluated, write, requests, naming, reevaluate)
    run.written = list(naming.written)
    return run


async def _settle(
    client: FhirClient,
    patient_id: str,
    evaluated: Plannable,
    write: bool,
    requests: dict[str, int] | None,
    naming: Naming,
    reevaluate: Reevaluate | None = None,
) -> PatientRun:
    """:func:`settle`, what the server confirmed recorded in ``naming``."""
    requests = {} if requests is None else requests
    writer = client.writer()
    sent_before = False  # a write was sent whose outcome we learn only by re-reading
    plan: WritePlan | None = None
    duplicates: list[str] = []  # found after search-then-create, kept (delete refused)
    conflict = ""  # the last conflict (412, or HAPI's 409) that made the run re-plan
    # conditional creates answered 412 as matching several resources: never sent again; the
    # rest is written (re-planned without them) and the run fails naming them
    several: list[SeveralMatches] = []
    for attempt in range(MAX_REPLANS + MAX_LEARN + 1):
        try:
            stored = await stored_output(
                writer, f"Patient/{patient_id}", evaluated.derived, requests
            )
            caps = await writer.capabilities()
        except FhirClientError as exc:
            return _failed(patient_id, plan, exc, requests)
        withdraw, held = hold_withdrawals(stored.withdraw, evaluated)
        plan = with_withdrawals(evaluated.plan(stored.existing), withdraw)
        naming.found_in(plan)
        shape = write_plan(caps, {d.resource_type for d in evaluated.derived})
        if write and (attempt == 0 or naming.unsure) and shape.provenance:
            # and after a Provenance whose answer was lost: what it named is named once
            await _name_unnamed(
                writer,
                plan,
                caps,
                requests,
                naming,
                stored.existing,
                stored.retired,
                _TRANSACTION_SPAN if shape.mode == "transaction" else timedelta(0),
            )
        writes, not_written = _writable(plan, caps, shape, naming.undeletable, several)
        not_written += stored.unchecked + held
        if not writes and write and naming.targets and shape.provenance:
            try:
                # nothing else to write: the plan has no Provenance; the one of a plan
                # against nothing has the same sources and time
                provenance = _provenance_of(evaluated.plan(None))
                await post_provenance(writer, provenance, [], requests, naming)
            except WriteOutcomeUnknown:
                sent_before = True  # made or not: its targets are checked after a re-plan
                continue
            except FhirClientError as exc:
                return _failed(patient_id, plan, exc, requests)
            sent_before = sent_before or not naming.refused
        if not writes and several and write:
            return _not_all_written(patient_id, plan, several, requests, not_written, naming)
        if not writes:
            status = RunStatus.WRITTEN if sent_before else RunStatus.UNCHANGED
            return PatientRun(
                patient_id,
                status,
                None,
                plan,
                requests=requests,
                not_written=_with_refused_provenance(not_written, naming),
                duplicates=duplicates,
            )
        if not write:
            return PatientRun(
                patient_id,
                RunStatus.DRY_RUN,
                None,
                plan,
                requests=requests,
                not_written=not_written,
            )
        provenance = None
        if shape.provenance:  # a plan that only withdraws has no Bundle: one against nothing
            provenance = _provenance_of(plan) or _provenance_of(evaluated.plan(None))
        writes_before = requests.get("write", 0)
        confirmed_before = len(naming.written)
        undeletable_before = len(naming.undeletable)
        limit = writer.max_bundle_entries if shape.mode != "single" else None
        sent = bundle_entries(writes, provenance, shape.mode)
        try:
            if limit is not None and sent > limit:
                sent = limit
                await write_in_parts(
                    writer, writes, provenance, shape, limit, requests, duplicates, naming
                )
            elif shape.mode == "transaction":
                await write_transaction(writer, writes, provenance, requests, duplicates, naming)
            elif shape.mode == "batch":
                await write_batch(writer, writes, provenance, shape, requests, duplicates, naming)
            else:
                await write_singles(writer, writes, provenance, shape, requests, duplicates, naming)
        except Learned as learned:
            writer.learn(learned.refused)
            sent_before = sent_before or requests.get("write", 0) > writes_before
            continue
        except SeveralMatches as exc:
            several.append(exc)  # re-planned without it
            sent_before = sent_before or len(naming.written) > confirmed_before
            continue
        except (PreconditionFailed, WriteOutcomeUnknown) as exc:
            sent_before = (
                sent_before
                or isinstance(exc, WriteOutcomeUnknown)
                or len(naming.written) > confirmed_before
            )
            if isinstance(exc, PreconditionFailed):
                conflict = describe(exc)
            log.info(
                "Patient/%s write attempt %d: %s; re-reading and re-planning",
                patient_id,
                attempt + 1,
                type(exc).__name__,
            )
            if isinstance(exc, PreconditionFailed) and reevaluate is not None:
                # another writer changed the output meanwhile, maybe from newer data: the
                # re-plan is of the patient as the server holds it now (see settle)
                try:
                    evaluated = await reevaluate()
                except FhirClientError as failed:
                    return _failed(patient_id, plan, failed, requests)
            continue
        except FhirClientError as exc:
            fewer = bundle_entry_limit(exc, sent) if _bundle_refused(exc, writer) else None
            if fewer is not None:
                # refused for its number of entries (nothing of that Bundle was stored):
                # re-read, re-plan and write in parts of at most ``fewer``
                writer.learn_bundle_limit(fewer)
                sent_before = sent_before or len(naming.written) > confirmed_before
                continue
            run = _failed(patient_id, plan, exc, requests)
            run.not_written = _with_refused_provenance(not_written, naming)
            run.duplicates = duplicates
            return run
        if len(naming.undeletable) > undeletable_before:
            # a delete refused as referenced (409): re-plan without it, which reports it not
            # withdrawn (and says "unchanged" when the server confirmed nothing else)
            sent_before = sent_before or len(naming.written) > confirmed_before
            continue
        if several:
            return _not_all_written(patient_id, plan, several, requests, not_written, naming)
        log.info(
            "Patient/%s written (%s): %s",
            patient_id,
            shape.mode,
            ", ".join(f"{k}={v}" for k, v in plan.summary.items()),
        )
        return PatientRun(
            patient_id,
            RunStatus.WRITTEN,
            None,
            plan,
            requests=requests,
            not_written=_with_refused_provenance(not_written, naming),
            duplicates=duplicates,
        )
    return PatientRun(
        patient_id,
        RunStatus.FAILED,
        None,
        None,
        error=f"still conflicting after {MAX_REPLANS} re-plans"
        + (f"; last: {conflict}" if conflict else ""),
        error_status=409,
        requests=requests,
    )


#: Why earlier output no longer derived is not withdrawn after a read in part
#: (:func:`hold_withdrawals`).
READ_IN_PART = (
    "the server returned the patient's data only in part (a search said matches were "
    "withheld, or ended before its Bundle.total): what it no longer shows is not taken as gone"
)


def hold_withdrawals(
    withdraw: Sequence[PlannedWrite], evaluated: Plannable
) -> tuple[list[PlannedWrite], list[NotWritten]]:
    """The withdrawals to plan, and those held back (each a :class:`NotWritten`, verb
    "withdrawn", why :data:`READ_IN_PART`). Where the evaluation's data was read only in part
    (its ``read_in_part``: a search's own OperationOutcome said matches were withheld, Epic's
    ``suppressed``; its pages ended before its ``Bundle.total``), a conclusion no longer drawn
    may rest on data the server did not return, not on a changed input (clinical spec §7): it
    is left as stored and said to be not withdrawn. The other copies of what is still derived
    are withdrawn all the same."""
    if not evaluated.read_in_part:
        return list(withdraw), []
    wanted = {d.identifier for d in evaluated.derived}
    kept = [w for w in withdraw if w.derived.identifier in wanted]
    held = [
        NotWritten(w.derived.resource_type, w.derived.identifier, READ_IN_PART, "withdrawn")
        for w in withdraw
        if w.derived.identifier not in wanted
    ]
    return kept, held


def _bundle_refused(exc: FhirClientError, writer: FhirClient) -> bool:
    """Whether ``exc`` answers a transaction or batch Bundle (``POST [base]``), not one of the
    single requests around it (a Provenance, a duplicate's delete)."""
    url = getattr(exc, "url", None)
    return isinstance(url, str) and url.rstrip("/") == writer.config.base_url.rstrip("/")


def _not_all_written(
    patient_id: str,
    plan: WritePlan,
    several: Sequence[SeveralMatches],
    requests: dict[str, int],
    not_written: list[NotWritten],
    naming: Naming,
) -> PatientRun:
    """A run that wrote what it could but not the conditional creates answered 412 as matching
    several resources (``several``, also in ``not_written``): failed, saying which and why."""
    run = _failed(patient_id, plan, several[0], requests)
    run.error = "; ".join(describe(exc) for exc in several)
    run.not_written = _with_refused_provenance(not_written, naming)
    return run


def _failed(
    patient_id: str, plan: WritePlan | None, exc: FhirClientError, requests: dict[str, int]
) -> PatientRun:
    return PatientRun(
        patient_id,
        RunStatus.FAILED,
        None,
        plan,
        error=describe(exc),
        requests=requests,
        error_status=status_for(exc),
        error_code=code_for(exc),
    )


_MAX_PROVENANCES_READ = 1000
"""Provenances :func:`_name_unnamed` reads at most for one patient, all its searches together
(each write of a patient's output posts one: a thousand is years of monthly runs; more means
the search was not one)."""


async def _name_unnamed(
    writer: FhirClient,
    plan: WritePlan,
    caps: Capabilities,
    requests: dict[str, int],
    naming: Naming,
    existing: Mapping[str, Json] | None = None,
    retired: Sequence[Json] = (),
    span: timedelta = timedelta(0),
) -> None:
    """Derived resources found unchanged whose current version no Provenance names (a run
    killed between its writes and its Provenance, or one whose Provenance failed) go into this
    run's Provenance: one search ``Provenance?target=…`` per run that finds stored output, and
    one more after a Provenance of this run whose answer was lost (made or not), checking what
    it named too (``naming.unsure``: withdrawn resources are not in the plan). A server that
    cannot search Provenance by target, or a search that fails, leaves them as they are (said
    in the log).

    A Provenance names the *current version* of a resource (``existing``: identifier → the
    stored resource, as read) where it names that version (``Type/id/_history/v``) or, naming
    it without a version as fhirtis does, where the server stored it no earlier than that
    version, less ``span`` (:func:`_covers`; :data:`_TRANSACTION_SPAN` where the server takes
    transactions): an update (or a withdrawal) whose Provenance failed is named by the next
    run, which an earlier run's Provenance of the resource's create does not hide.
    The withdrawn copies of what is no longer derived (``retired``) are checked the same way
    where a Provenance names an earlier version of them (their withdrawal's failed); one that
    no Provenance names at all is left as it is. A deleted resource (a withdrawn AdverseEvent)
    is gone and is not named afterwards."""
    current: dict[str, Json] = {}  # ``Type/id`` → the stored resource (its version)
    stored: list[str] = []
    for w in plan.writes:
        if w.action is Action.UNCHANGED and w.existing_id:
            ref = f"{w.derived.resource_type}/{w.existing_id}"
            stored.append(ref)
            found = (existing or {}).get(w.derived.identifier)
            if found is not None and found.get("id") == w.existing_id:
                current[ref] = found
    withdrawn: set[str] = set()
    for copy in retired:
        ref = f"{copy.get('resourceType')}/{copy.get('id')}"
        if ref not in current and ref not in withdrawn:
            stored.append(ref)
            current[ref] = copy
            withdrawn.add(ref)
    lost = {(instant_or_none(recorded), targets) for recorded, targets in naming.unsure}
    unsure = {ref for _, targets in lost for ref in targets}
    stored += sorted(unsure - set(stored))
    naming.unsure.clear()
    if (
        not stored
        or not caps.allows("Provenance", "search-type")
        or caps.search_param("Provenance", ("target",)) is None
    ):
        return
    named: set[str] = set()  # by any Provenance, of any version
    covered: set[str] = set()  # by a Provenance of the current version (_covers)
    named_then: set[str] = set()  # by a lost Provenance (its time and targets), made after all
    seen = 0
    # in searches of at most MAX_QUERY_VALUES targets, as every list fhirtis searches by: a
    # patient's stored output can be hundreds of ``Type/id`` (URLs past a server's limit)
    for start in range(0, len(stored), MAX_QUERY_VALUES):
        chunk = stored[start : start + MAX_QUERY_VALUES]
        try:
            async for entry in writer.search("Provenance", {"target": ",".join(chunk)}):
                seen += 1
                if seen > _MAX_PROVENANCES_READ:  # a server that ignored ``target``: all
                    log.info("Provenance search by target gave too many: not checked")
                    return
                resource = entry.get("resource") or {}
                stored_at = instant_or_none((resource.get("meta") or {}).get("lastUpdated"))
                references = [
                    t["reference"]
                    for t in resource.get("target") or []
                    if isinstance(t, dict) and isinstance(t.get("reference"), str)
                ]
                refs = frozenset(location_reference(r, r) for r in references)
                named |= refs
                for reference in references:
                    ref = location_reference(reference, reference)
                    if _covers(reference, stored_at, current.get(ref), span):
                        covered.add(ref)
                if (instant_or_none(resource.get("recorded")), refs) in lost:
                    named_then |= refs
        except FhirClientError as exc:  # best effort: the run goes on without the check
            log.info("Provenance search by target failed (%s): not checked", type(exc).__name__)
            return
        finally:
            requests["read"] = requests.get("read", 0) + 1
    for ref in stored:
        if ref in unsure:
            # what a lost Provenance named is named only by it (an earlier run's names its create)
            done = ref in named_then
        elif ref in withdrawn:
            done = ref in covered or ref not in named
        else:
            done = ref in covered
        if not done and ref not in naming.targets:
            naming.targets.append(ref)


_TRANSACTION_SPAN = timedelta(minutes=5)
"""How much earlier than a resource's current version a Provenance naming it may have been
stored and still name it, where the server takes transactions: a transaction's Provenance is
stored with its writes, in whatever order the server runs its entries (R4 http.html#trules:
POSTs before PUTs, so the Provenance may be stamped before the updates it names; the test
server does so, each entry with its own instant), and no transaction runs this long. Writes in
single requests or batches are followed by their Provenance (no span). A Provenance that failed
after writes in parts (:func:`~fhirtis.pipeline.write.write_in_parts`) within this time of an
earlier one naming the same resources is left as before (not named again)."""


def _covers(
    reference: str,
    stored_at: datetime | None,
    target: Json | None,
    span: timedelta = timedelta(0),
) -> bool:
    """Whether a Provenance stored at ``stored_at`` (its ``meta.lastUpdated``) whose target is
    ``reference`` names the current version of ``target`` (the resource as read now; None:
    not one whose version is checked). A versioned reference (``Type/id/_history/v``, as
    another writer, or a server that versions references, may store it) names that version
    only. An unversioned one, as fhirtis writes, names the version current when the Provenance
    was stored: the server's own clock on both sides (never the client's ``recorded``), a
    Provenance stored at the same instant covering it (a transaction's resources share one on
    HAPI FHIR; a server that keeps whole seconds), or up to ``span`` earlier (a transaction's
    entries stamped one by one: :data:`_TRANSACTION_SPAN`). Whether
    ``Provenance?target=Type/id`` finds Provenances naming ``Type/id/_history/v`` depends on
    the server, so fhirtis never relies on versioned targets. Where the server gives no
    ``meta.lastUpdated`` (or the version no ``versionId``), any Provenance naming the resource
    covers it, as before."""
    if target is None:
        return True
    meta = target.get("meta") or {}
    version = meta.get("versionId")
    _, has_version, named = reference.partition("/_history/")
    if has_version:
        return not isinstance(version, str) or named.strip("/") == version
    written_at = instant_or_none(meta.get("lastUpdated"))
    if written_at is None or stored_at is None:
        return True
    return stored_at + span >= written_at


def _with_refused_provenance(not_written: list[NotWritten], naming: Naming) -> list[NotWritten]:
    """``not_written`` and, where the server refused a Provenance of this run, the Provenance."""
    if naming.refused and all(n.resource_type != "Provenance" for n in not_written):
        reason = "the server does not allow creating Provenance"
        return [*not_written, NotWritten("Provenance", "", reason)]
    return not_written


_UNDELETABLE = (
    "the server refused to delete it (HTTP 409 Conflict: another resource, such as the "
    "Provenance of an earlier run, references it)"
)


def _writable(
    plan: WritePlan,
    caps: Capabilities,
    shape: WritePlanShape,
    undeletable: Collection[str] = (),
    several: Sequence[SeveralMatches] = (),
) -> tuple[list[PlannedWrite], list[NotWritten]]:
    """The changed writes the server can take, and the others with why they are not written
    (``undeletable``: identifiers of withdrawals whose delete the server refused with 409;
    ``several``: conditional creates answered 412, matching several resources)."""
    writes: list[PlannedWrite] = []
    not_written: list[NotWritten] = []
    matched = {c for exc in several for c in exc.creates}
    for w in plan.writes:
        rtype = w.derived.resource_type
        if w.action is Action.CREATE and (rtype, w.derived.identifier) in matched:
            not_written.append(NotWritten(rtype, w.derived.identifier, SEVERAL_MATCHES))
            continue
        if w.action is Action.WITHDRAW:
            how = "update" if rtype in RETIRABLE else "delete"
            if not caps.allows(rtype, how):
                why = f"the server does not allow {how.removesuffix('e')}ing {rtype}"
                not_written.append(NotWritten(rtype, w.derived.identifier, why, "withdrawn"))
                continue
            if how == "delete" and w.derived.identifier in undeletable:
                not_written.append(
                    NotWritten(rtype, w.derived.identifier, _UNDELETABLE, "withdrawn")
                )
                continue
            writes.append(w)
            continue
        reason = shape.not_written.get(rtype)
        if reason is None and w.action is Action.UPDATE and not caps.allows(rtype, "update"):
            reason = f"the server does not allow updating {rtype}"
        if reason is not None:
            if w.action is not Action.UNCHANGED:
                not_written.append(NotWritten(rtype, w.derived.identifier, reason))
            continue
        if w.action is not Action.UNCHANGED:
            writes.append(w)
    if "Provenance" in shape.not_written and writes:
        not_written.append(NotWritten("Provenance", "", shape.not_written["Provenance"]))
    return writes, not_written


def _provenance_of(plan: WritePlan) -> Json | None:
    """The plan's Provenance (its sources and time), to be re-targeted at what is written."""
    if plan.bundle is None:
        return None
    last = (plan.bundle.get("entry") or [{}])[-1].get("resource") or {}
    return dict(last) if last.get("resourceType") == "Provenance" else None
