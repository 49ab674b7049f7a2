"""Write a patient's planned changes the way the server allows: one transaction, one batch, or
single requests (creates, If-Match updates, withdrawals), then one Provenance naming what the
server confirmed; creates the server answered without a Location are looked up by identifier.

**The search-then-create race.** Where the server has no conditional create (its statement
says ``conditionalCreate: false``, or it refused ``If-None-Exist``; e.g. Oracle Health
Millennium), a create follows the search by business identifier. Two writers of the same
patient (two ``fhirtis run --write``, a cohort run and ``$myositis-evaluate write=true``) that
both search before either creates will both create. fhirtis handles it after the fact:

- after its plain creates (and after conditional creates answered 201: a server may ignore
  ``ifNoneExist``, and on HAPI FHIR before 6.6 and Azure API for FHIR two concurrent conditional
  creates both create), the writer searches their identifiers again; where it finds several
  copies it keeps the one with the lowest id (every writer picks the same) and deletes the
  others where the server allows ``delete`` on the type;
- where the server refuses delete but allows updates of the type (Observation, Flag,
  DetectedIssue), the other copies are marked ``entered-in-error`` and later runs ignore them;
  otherwise every copy stays; either way the run reports each duplicated resource
  (``PatientRun.duplicates``: ``fhirtis run --json`` "duplicates", a ``duplicate`` warning
  issue in the HTTP answer); later runs match the copy with the lowest id and update that
  one; another live copy they find (one this check did not see: a search index that lags, as
  AWS HealthLake's does by default) is withdrawn, where the server allows it, else reported
  not withdrawn (``fhirtis.pipeline.stored_output``);
- each writer that changed something posts exactly one Provenance naming what *it* wrote (so
  a race leaves two Provenances, one per write; a Provenance may name a copy the other writer
  deleted).

Tested in ``tests/e2e/test_write_race.py`` (a second writer run between the first's search
and its first create, on the ``oracle-like``, ``no-transaction`` and ``full`` test-server
profiles; and two writers started together).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import (
    RETIRABLE,
    RETIRED,
    Action,
    PlannedWrite,
    WritePlan,
    same_content,
    update_full_url,
)
from fhirtis.fhir.primitives import is_id
from fhirtis.fhir.queries import identifier_of
from fhirtis.io import (
    FhirClient,
    FhirClientError,
    FhirResponse,
    FhirServerError,
    NotFound,
    PreconditionFailed,
    Refused,
    WriteOutcomeUnknown,
    WritePlanShape,
    is_refusal,
)
from fhirtis.pipeline.answers import (
    Learned,
    SeveralMatches,
    entry_outcome,
    entry_response,
    entry_status,
    failure_outcome,
    location_reference,
    unheld_references,
)
from fhirtis.pipeline.patient_run import Written
from fhirtis.pipeline.pull import NOT_RUN, find_existing
from fhirtis.pipeline.write_order import (
    batch_order,
    deletes,
    in_the_way,
    makes_way,
    single_order,
)

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.write")


@dataclass
class Naming:
    """What the run's Provenances must still name, and whether the server refused them.

    Writes of this run whose answer was lost (a plain create or a batch whose answer never
    came, an If-Match update whose retry met 412, a withdrawal) may have been made. Where the
    re-plan finds one made (unchanged now; a withdrawal no longer planned), the run's next
    Provenance names it with what it writes, or on its own when nothing else is to be written,
    so no derived resource is left unnamed; so does a Provenance whose own answer was lost
    where it was not made (``unsure``). A server that refuses the Provenance (its statement
    said nothing, or was wrong) is learnt from, and the run reports the Provenance "not
    written"."""

    identifiers: dict[str, Action] = field(default_factory=dict)  # outcome unknown: what it was
    targets: list[str] = field(default_factory=list)  # ``Type/id`` found made, to be named
    refused: bool = False  # the server refused a Provenance of this run
    written: list[Written] = field(default_factory=list)  # what the server confirmed
    # writes of a transaction whose answer was lost (its Provenance names them if it was made)
    unknown: dict[str, Action] = field(default_factory=dict)
    # withdrawals whose delete the server refused with 409 (another resource, e.g. the
    # Provenance of an earlier run, references it: HAPI's referential integrity on delete)
    undeletable: set[str] = field(default_factory=set)
    # withdrawals whose answer was lost, by identifier: a re-plan no longer plans one that was
    # made (a retired copy is not withdrawn again, a deleted one is gone): see found_in
    withdrawals: dict[str, PlannedWrite] = field(default_factory=dict)
    # the same, of a transaction whose answer was lost (its Provenance names them if made)
    unknown_withdrawals: dict[str, PlannedWrite] = field(default_factory=dict)
    # Provenances whose answer was lost (``recorded``, what they named): made or not, checked
    # after the re-plan (``Provenance?target=``: one recorded then naming just those) and what
    # they named is named again only where they were not made
    unsure: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    def lost(self, writes: Iterable[PlannedWrite]) -> None:
        for w in writes:
            self.identifiers[w.derived.identifier] = w.action
            if w.action is Action.WITHDRAW:
                self.withdrawals[w.derived.identifier] = w

    def lost_transaction(self, writes: Iterable[PlannedWrite]) -> None:
        for w in writes:
            self.unknown[w.derived.identifier] = w.action
            if w.action is Action.WITHDRAW:
                self.unknown_withdrawals[w.derived.identifier] = w

    def confirm(self, w: PlannedWrite, reference: str) -> None:
        """The server confirmed ``w``, stored as ``reference``."""
        d = w.derived
        self.written.append(Written(d.resource_type, d.identifier, w.action, reference))

    def and_(self, changed: Iterable[str]) -> list[str]:
        """What a Provenance names: the lost writes found made, then ``changed`` (each once)."""
        return [*self.targets, *(t for t in changed if t not in self.targets)]

    def found_in(self, plan: WritePlan) -> None:
        """The lost writes that ``plan`` finds made; the others are in it to write again."""
        for w in plan.writes:
            if w.action is Action.UNCHANGED and w.derived.identifier in self.identifiers:
                target = f"{w.derived.resource_type}/{w.existing_id}"
                if target not in self.targets:
                    self.targets.append(target)
                    lost = self.identifiers[w.derived.identifier]
                    self.confirm(PlannedWrite(w.derived, lost, w.existing_id), target)
            elif w.action is Action.UNCHANGED and w.derived.identifier in self.unknown:
                lost = self.unknown[w.derived.identifier]
                target = f"{w.derived.resource_type}/{w.existing_id}"
                self.confirm(PlannedWrite(w.derived, lost, w.existing_id), target)
        # a lost withdrawal the plan no longer has was made (R4 http.html: the resource found
        # just before is now retired or deleted); one the plan still has is written again
        again = {_target(w) for w in plan.writes if w.action is Action.WITHDRAW}
        for withdrawn, name in ((self.withdrawals, True), (self.unknown_withdrawals, False)):
            for w in withdrawn.values():
                target = _target(w)
                if target in again:
                    continue
                if name and target not in self.targets:
                    self.targets.append(target)
                self.confirm(w, target)
            withdrawn.clear()
        self.identifiers.clear()
        self.unknown.clear()


def _entry(w: PlannedWrite, conditional: bool, base: str) -> Json:
    """A transaction or batch entry of ``w``; a ``PUT`` has ``fullUrl`` ``[base]/Type/id``
    (:func:`update_full_url`; a ``DELETE`` carries no resource, a ``POST`` its ``urn:uuid:``)."""
    d = w.derived
    if w.action is Action.CREATE:
        request: Json = {"method": "POST", "url": d.resource_type}
        if conditional:
            request["ifNoneExist"] = d.if_none_exist
        return {"fullUrl": d.full_url, "resource": d.resource, "request": request}
    if deletes(w):
        return {"request": {"method": "DELETE", "url": f"{d.resource_type}/{w.existing_id}"}}
    request = {"method": "PUT", "url": f"{d.resource_type}/{w.existing_id}"}
    if w.existing_version:
        request["ifMatch"] = f'W/"{w.existing_version}"'
    return {
        "fullUrl": update_full_url(d, w.existing_id, base),
        "resource": {**d.resource, "id": w.existing_id},
        "request": request,
    }


def _as_written(provenance: Json, targets: Iterable[str]) -> Json:
    """The planned Provenance naming ``targets``, recorded now: R4 Provenance.recorded is "the
    instant of time at which the activity was recorded" (the write), not the evaluation's "as
    of" (the data's latest clinical time) that the plan, made without a clock, carries."""
    recorded = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        **provenance,
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
    }


CONFLICT = 409
"""HAPI FHIR (and Smile CDR) answer 409 Conflict both for an ``If-Match`` update of a version
that is no longer current (``ResourceVersionConflictException``, "HAPI-0989 ... not the current
version"; R4 says 412, STU3 said 409) and for a delete of a resource that another resource
references ("HAPI-0550: Unable to delete ..."; a Provenance's target counts)."""


def is_conflict(exc: FhirServerError) -> bool:
    """A 409 Conflict that is not a refusal (``not-supported``, or a reference to a resource
    the server does not hold: :func:`~fhirtis.pipeline.answers.unheld_references`): see
    :data:`CONFLICT`."""
    return (
        exc.status == CONFLICT
        and not is_refusal(exc.status, exc.operation_outcome)
        and not unheld_references(exc.status, exc.operation_outcome)
    )


def _version_conflict(exc: FhirServerError) -> PreconditionFailed:
    """A 409 on an ``If-Match`` write, as the 412 R4 prescribes (re-read and re-plan)."""
    return PreconditionFailed(
        str(exc), status=exc.status, url=exc.url, operation_outcome=exc.operation_outcome
    )


async def _create_race_lost(
    writer: FhirClient, w: PlannedWrite, exc: FhirServerError, requests: dict[str, int]
) -> FhirServerError:
    """A conditional create answered 409: HAPI FHIR 6.6+ keeps a unique index of conditional
    create match URLs, and answers the loser of two concurrent creates of the same resource
    409, "HAPI-0550: ..." (a ``ResourceVersionConflictException``); nothing was created. The
    identifier is searched again: one resource found → :func:`_version_conflict`, re-read and
    re-planned as a transaction's or batch's 409 is (identical: nothing more to write;
    different: an If-Match update of it); none, or several → a server error that says so."""
    d = w.derived

    def unsettled(message: str) -> FhirServerError:  # the 409, saying what was found
        return FhirServerError(
            f"a conditional create of a {d.resource_type} answered 409{message}",
            status=exc.status,
            url=exc.url,
            operation_outcome=exc.operation_outcome,
        )

    try:
        found = await find_existing(writer, [d], requests)
    except FhirClientError as failed:
        log.warning("a conditional create answered 409 could not be looked up")
        return unsettled(f" and the search for its identifier failed ({type(failed).__name__})")
    matches = [
        r
        for r in found
        if r.get("resourceType") == d.resource_type
        and identifier_of(r) == d.identifier
        and r.get("status") != RETIRED
    ]
    if len(matches) == 1:
        log.info("a conditional create of a %s lost a race (409): re-planning", d.resource_type)
        return _version_conflict(exc)
    return unsettled(
        f" (another writer's create?), but the search for its identifier found "
        f"{len(matches) or 'none'}"
        + (" (duplicates: not written)" if matches else " (not written)")
    )


SEVERAL_MATCHES = (
    "its conditional create was answered 412 Precondition Failed: its condition (If-None-Exist) "
    "matches several resources already on the server, duplicates another system or person "
    "stored (R4 http.html#ccreate); remove or correct them and run again"
)


def _stored_now(found: Iterable[Json], d: Derived) -> bool:
    """Whether ``found`` holds ``d`` (its type and identifier, not retired)."""
    return any(
        r.get("resourceType") == d.resource_type
        and identifier_of(r) == d.identifier
        and r.get("status") != RETIRED
        for r in found
    )


def _found_as_sent(answered: object, w: PlannedWrite) -> bool:
    """Whether a conditional create answered 200 (R4 http.html#ccreate, "One Match: The server
    ignores the post and returns 200 OK") shows the resource it found (``answered``: the body,
    or a batch- or transaction-response entry's resource) holding what ``w`` would have
    created. Where it does not say (no body: ``Prefer: return=minimal``; HAPI FHIR's batch
    entries) or the content differs (another writer stored it meanwhile, from other data), the
    run re-reads and re-plans (:func:`_found_other`): nothing of the POST was stored."""
    return (
        isinstance(answered, dict)
        and answered.get("resourceType") == w.derived.resource_type
        and identifier_of(answered) == w.derived.identifier
        and same_content(w.derived.resource, answered)
    )


def _found_other(found: Sequence[PlannedWrite]) -> PreconditionFailed:
    """Conditional creates answered 200 whose resource found may not hold what fhirtis derived
    (:func:`_found_as_sent`): re-read and re-planned as a 412 is, so that the resource found is
    updated in place (``If-Match``) where it differs, and left where it is the same."""
    log.info(
        "a conditional create of %s found a stored resource: re-reading and re-planning",
        ", ".join(sorted({w.derived.resource_type for w in found})),
    )
    return PreconditionFailed(
        "a conditional create found a stored resource (another writer's, made meanwhile): "
        "re-read and re-planned",
        status=200,
        url=found[0].derived.resource_type,
    )


def _several(creates: Sequence[Derived], exc: FhirServerError) -> SeveralMatches:
    """The :class:`SeveralMatches` of ``creates`` (named by type and fhirtis's identifier: no
    patient data), from the 412 ``exc``."""
    log.warning(
        "a conditional create of %s matched several resources (412): not written",
        ", ".join(sorted({d.resource_type for d in creates})),
    )
    named = "; ".join(f"{d.resource_type} {d.identifier}" for d in creates)
    return SeveralMatches(
        f"{named} not written: {SEVERAL_MATCHES}",
        creates=tuple((d.resource_type, d.identifier) for d in creates),
        status=exc.status,
        url=exc.url,
        operation_outcome=exc.operation_outcome,
    )


async def _create_matched_several(
    writer: FhirClient, w: PlannedWrite, exc: FhirServerError, requests: dict[str, int]
) -> FhirServerError:
    """A conditional create answered 412: R4 http.html#ccreate, "Multiple matches: The server
    returns a 412 Precondition Failed error indicating the client's criteria were not selective
    enough"; nothing was created. Its identifier is searched: where the resource is stored now
    (another writer made it meanwhile, and a copy with it), a :class:`PreconditionFailed`,
    re-read and re-planned; else (or where the search fails) a :class:`SeveralMatches` naming
    it: not written, and not sent again."""
    try:
        found = await find_existing(writer, [w.derived], requests)
    except FhirClientError as failed:
        log.warning("a create answered 412 could not be looked up (%s)", type(failed).__name__)
        found = []
    if _stored_now(found, w.derived):
        log.info("a create of a %s answered 412, now stored: re-planning", w.derived.resource_type)
        return PreconditionFailed(
            str(exc), status=exc.status, url=exc.url, operation_outcome=exc.operation_outcome
        )
    return _several([w.derived], exc)


async def _transaction_matched_several(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    exc: PreconditionFailed,
    requests: dict[str, int],
) -> FhirServerError:
    """A transaction answered 412 (nothing was stored): a stale ``ifMatch``, or a conditional
    create whose condition matches several resources (R4 http.html#ccreate), which the status
    does not tell apart. The conditional creates of ``writes`` whose condition is not
    fhirtis's identifier (:attr:`Derived.match`; one on the identifier matches only fhirtis's
    own copies, which a re-plan finds) are searched by it, each: where one now finds its own
    resource, or none finds several, a re-plan (``exc``); else a :class:`SeveralMatches`
    naming those that find several (the re-plan leaves them out)."""
    culprits: list[Derived] = []
    for w in writes:
        d = w.derived
        if w.action is not Action.CREATE or d.match is None:
            continue
        try:
            found = await find_existing(writer, [d], requests)
        except FhirClientError as failed:
            log.warning("a create answered 412 could not be looked up (%s)", type(failed).__name__)
            return exc
        if _stored_now(found, d):
            return exc
        if len([r for r in found if r.get("resourceType") == d.resource_type]) > 1:
            culprits.append(d)
    return _several(culprits, exc) if culprits else exc


async def _write(
    writer: FhirClient,
    method: str,
    url: str,
    *,
    json: Json | None = None,
    headers: dict[str, str] | None = None,
) -> FhirResponse:
    """``writer.request`` of a write (``url``: ``Type`` or ``Type/id``). A 2xx answer whose body
    is an OperationOutcome saying it failed (:func:`failure_outcome`: Redox's 200 when the EHR
    behind it failed) is that failure, a :class:`FhirServerError`: never a write made."""
    answer = await writer.request(method, url, json=json, headers=headers)
    outcome = failure_outcome(answer.body)
    if outcome is None:
        return answer
    rtype = url.split("/", maxsplit=1)[0]
    log.warning("%s %s answered %d with an outcome saying it failed", method, rtype, answer.status)
    raise FhirServerError(
        f"{method} {url} answered HTTP {answer.status} with an OperationOutcome saying it "
        "failed: not written",
        status=answer.status,
        url=url,
        operation_outcome=outcome,
    )


async def _delete_singly(
    writer: FhirClient, w: PlannedWrite, requests: dict[str, int], naming: Naming
) -> str | None:
    """DELETE a withdrawal's resource (the caller counts the request): its ``Type/id`` when
    deleted, or when a DELETE sent again after a lost answer is answered 404/410; None when
    gone already (404/410 to the first try), or (noted in ``naming.undeletable``) when the
    server answers 409 (the resource is referenced)."""
    url = f"{w.derived.resource_type}/{w.existing_id}"
    try:
        await _write(writer, "DELETE", url)
    except NotFound as exc:
        if not exc.resent:
            return None  # gone already
        # sent again after a try whose answer was lost (R4 http.html: a delete of a deleted
        # resource may be answered 404): the resource found just before is gone, most likely
        # by that try, which this run made; it is named, as a resent create's "exists" is
        log.info(
            "a resent delete of a %s answered %s: withdrawn", w.derived.resource_type, exc.status
        )
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(Refused("interaction", w.derived.resource_type, "delete")) from exc
        if is_conflict(exc):
            log.info("the server refused to delete a %s: 409 (referenced)", w.derived.resource_type)
            naming.undeletable.add(w.derived.identifier)
            return None
        raise
    naming.confirm(w, url)
    return url


def _made(location: str | None, answered: object, w: PlannedWrite) -> str | None:
    """``Type/id`` of what a write made: from the answer's Location, else from the resource the
    answer holds (a server or gateway that sent no Location), else for an update or withdrawal
    :func:`_target`; for a create None (never its ``urn:uuid:``): :func:`_locate` finds it."""
    fallback = None if w.action is Action.CREATE else _target(w)
    if location:
        made = location_reference(location, "")
        if made:
            return made
    if isinstance(answered, dict) and answered.get("resourceType") == w.derived.resource_type:
        made_id = answered.get("id")
        if is_id(made_id):
            return f"{w.derived.resource_type}/{made_id}"
    return fallback


async def _locate(
    writer: FhirClient,
    unlocated: Sequence[PlannedWrite],
    requests: dict[str, int],
    naming: Naming,
    changed: list[str],
) -> dict[str, str]:
    """Creates the server answered without saying what they made (no Location, no resource):
    looked up by business identifier (one search per type, as the duplicate check does); each
    found is named (``changed``) and confirmed, the copy with the lowest id where there are
    several. One not found is neither: the run reports it not confirmed. Returns identifier →
    ``Type/id`` of those found."""
    if not unlocated:
        return {}
    try:
        found = await find_existing(writer, [w.derived for w in unlocated], requests)
    except FhirClientError as exc:  # the writes stand; they are reported not confirmed
        log.warning("created resources could not be looked up (%s)", type(exc).__name__)
        return {}
    refs: dict[str, str] = {}
    for r in sorted(found, key=lambda r: str(r.get("id"))):
        ident = identifier_of(r)
        if ident is not None and r.get("status") != RETIRED:
            refs.setdefault(
                f"{r.get('resourceType')} {ident}", f"{r.get('resourceType')}/{r.get('id')}"
            )
    out: dict[str, str] = {}
    for w in unlocated:
        ref = refs.get(f"{w.derived.resource_type} {w.derived.identifier}")
        if ref is None:
            log.warning(
                "a created %s was not found by its identifier: not named", w.derived.resource_type
            )
            continue
        if ref not in changed:
            changed.append(ref)
        naming.confirm(w, ref)
        out[w.derived.identifier] = ref
    return out


def _target(w: PlannedWrite) -> str:
    d = w.derived
    return d.full_url if w.action is Action.CREATE else f"{d.resource_type}/{w.existing_id}"


async def write_transaction(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    requests: dict[str, int],
    duplicates: list[str],
    naming: Naming,
) -> None:
    """One transaction of the writes and their Provenance (all or nothing: a lost answer
    leaves nothing unnamed). Its conditional creates are checked for duplicates as plain
    creates are (:func:`_check_duplicates`): a server that ignores ``ifNoneExist`` creates a
    resource another writer created meanwhile a second time."""
    base = writer.config.base_url
    # a create that a DELETE of this transaction makes way for is a plain one (see
    # :func:`~fhirtis.pipeline.write_order.in_the_way`); every other create is conditional
    plain_creates = in_the_way(writes)
    entries = [_entry(w, w not in plain_creates, base) for w in writes]
    if provenance is not None:
        targets = naming.and_(_target(w) for w in writes)
        prov = _as_written(provenance, targets)
        entries.append({"resource": prov, "request": {"method": "POST", "url": "Provenance"}})
    requests["write"] = requests.get("write", 0) + 1
    try:
        response = await writer.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome) and not isinstance(exc, NotFound):
            raise Learned(Refused("transaction")) from exc
        if isinstance(exc, PreconditionFailed):
            several = await _transaction_matched_several(
                writer, [w for w in writes if w not in plain_creates], exc, requests
            )
            if several is not exc:
                raise several from exc
        if is_conflict(exc):
            # nothing was stored: a delete of a referenced resource, or an If-Match version
            # conflict. The deletes are sent singly (what the server refuses stays, reported
            # not withdrawn; what it deletes the next Provenance names), then re-plan.
            for w in writes:
                if deletes(w):
                    requests["write"] = requests.get("write", 0) + 1
                    deleted = await _delete_singly(writer, w, requests, naming)
                    if deleted is not None:
                        naming.targets.append(deleted)
            raise _version_conflict(exc) from exc
        raise
    except WriteOutcomeUnknown:
        naming.lost_transaction(writes)  # named inside
        raise
    if provenance is not None:
        naming.targets.clear()
    answers = response.get("entry")
    answers = answers if isinstance(answers, list) else []
    created: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []
    found: list[PlannedWrite] = []  # conditional creates that found a resource stored
    for i, w in enumerate(writes):  # all or nothing: every write was made
        entry = answers[i] if i < len(answers) and isinstance(answers[i], dict) else {}
        if w.action is Action.CREATE and entry_status(entry) == 200 and w not in plain_creates:
            # its ifNoneExist found it stored: another writer made it meanwhile
            if not _found_as_sent(entry.get("resource"), w):
                found.append(w)
            continue
        if w.action is Action.CREATE:
            created.append(w)
        location = entry_response(entry).get("location")
        made = _made(location if isinstance(location, str) else None, entry.get("resource"), w)
        if made is None:
            unlocated.append(w)
        else:
            naming.confirm(w, made)
    # the Provenance is written (naming the creates by fullUrl, which the server resolved):
    # what these find is not named again
    await _locate(writer, unlocated, requests, naming, [])
    await _check_duplicates(writer, created, requests, duplicates, [])
    if found:
        raise _found_other(found)


async def write_batch(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    shape: WritePlanShape,
    requests: dict[str, int],
    duplicates: list[str],
    naming: Naming,
) -> None:
    """One batch of creates (conditional where the server has it), If-Match updates and
    withdrawals (in :func:`~fhirtis.pipeline.write_order.batch_order`), then one Provenance
    naming what the batch changed."""
    base = writer.config.base_url
    writes = batch_order(writes, shape)
    entries = [
        _entry(w, shape.conditional_create.get(w.derived.resource_type, False), base)
        for w in writes
    ]
    requests["write"] = requests.get("write", 0) + 1
    try:
        response = await writer.batch(entries)
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(Refused("batch")) from exc
        raise
    except WriteOutcomeUnknown:
        naming.lost(writes)
        raise
    answers = response.get("entry") or []
    if len(answers) != len(entries):
        naming.lost(writes)
        raise WriteOutcomeUnknown(
            "the server's batch response does not answer every entry", method="POST", url="(batch)"
        )
    changed: list[str] = []
    conflict = False
    failure: Exception | None = None  # the first entry that failed, raised once all is named
    plain: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []  # creates whose answer does not say what they made
    not_run: list[PlannedWrite] = []  # entries the server skipped (429, 503): not made
    found: list[PlannedWrite] = []  # conditional creates that found a resource stored
    for w, entry in zip(writes, answers, strict=True):
        status = entry_status(entry)
        # a 2xx whose outcome says the entry failed (:func:`failure_outcome`) is a failure
        failed_ok = failure_outcome(entry_outcome(entry)) is not None
        if status is not None and 200 <= status < 300 and not failed_ok:
            location = (entry.get("response") or {}).get("location")
            plain_create = w.action is Action.CREATE and not shape.conditional_create.get(
                w.derived.resource_type, False
            )
            # a conditional create answers 200 when it found the resource; a plain create made
            # it whatever its 2xx (some servers answer 200)
            if w.action is not Action.CREATE or status == 201 or plain_create:
                made = _made(location, entry.get("resource"), w)
                if made is None:
                    unlocated.append(w)
                else:
                    changed.append(made)
                    naming.confirm(w, made)
                if w.action is Action.CREATE:  # a 201 conditional create too: see below
                    plain.append(w)
            elif not _found_as_sent(entry.get("resource"), w):
                found.append(w)
            continue
        if status in NOT_RUN:
            not_run.append(w)
            continue
        outcome = entry_outcome(entry)
        rtype = w.derived.resource_type
        if deletes(w) and status in (404, 410) and not is_refusal(status, outcome):
            continue  # gone already
        if deletes(w) and status == CONFLICT and not is_refusal(status, outcome):
            naming.undeletable.add(w.derived.identifier)  # referenced: reported not withdrawn
            continue
        ccreate = w.action is Action.CREATE and shape.conditional_create.get(rtype, False)
        if ccreate and status == 412 and not is_refusal(status, outcome):
            answered = FhirServerError(
                f"batch entry {rtype} failed with status 412",
                status=status,
                url=rtype,
                operation_outcome=outcome,
            )
            matched = await _create_matched_several(writer, w, answered, requests)
            if not isinstance(matched, SeveralMatches):
                conflict = True
            elif failure is None:
                failure = matched  # not sent again: the run fails saying so
        elif (
            status in (412, CONFLICT)
            and not is_refusal(status, outcome)
            and not unheld_references(status, outcome)
        ):
            conflict = True
        elif failure is not None:
            continue
        elif is_refusal(status, outcome):
            if w.action is Action.CREATE and shape.conditional_create.get(rtype, False):
                failure = Learned(Refused("conditional-create", rtype))
            else:
                action = "create" if w.action is Action.CREATE else "update"
                failure = Learned(Refused("interaction", rtype, "delete" if deletes(w) else action))
        else:
            failure = FhirServerError(
                f"batch entry {rtype} failed with status {status or '?'}",
                status=status,
                url=rtype,
                operation_outcome=outcome,
            )
    # what the batch wrote is written: named by the Provenance even if other entries failed
    await _locate(writer, unlocated, requests, naming, changed)
    await _check_duplicates(writer, plain, requests, duplicates, changed)
    conflict = conflict or bool(found)
    if not_run and failure is None and not conflict:
        # sent again one by one, each waiting and retrying as any 429 or 503 does; named by
        # the batch's Provenance with the rest
        confirmed = len(naming.written)
        try:
            await write_singles(writer, not_run, None, shape, requests, duplicates, naming)
        except (FhirClientError, Learned) as exc:
            failure = exc
        changed += [w.reference for w in naming.written[confirmed:] if w.reference not in changed]
    await post_provenance(writer, provenance, changed, requests, naming)
    if failure is not None:
        raise failure
    if conflict and found:
        raise _found_other(found)
    if conflict:
        raise PreconditionFailed(
            "a resource changed since it was read (If-Match)", status=412, url="(batch)"
        )


def bundle_entries(writes: Sequence[PlannedWrite], provenance: Json | None, mode: str) -> int:
    """The entries of the one Bundle :func:`write_transaction` or :func:`write_batch` sends:
    the writes, and in a transaction the Provenance."""
    return len(writes) + (1 if mode == "transaction" and provenance is not None else 0)


async def write_in_parts(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    shape: WritePlanShape,
    limit: int,
    requests: dict[str, int],
    duplicates: list[str],
    naming: Naming,
) -> None:
    """``writes`` as Bundles (``shape.mode``: transactions or batches) of at most ``limit``
    entries, for a server that takes no more (FHIR Works on AWS, 25; Azure's FHIR services,
    500): in the order of single requests (:func:`~fhirtis.pipeline.write_order.single_order`:
    the deletes that make way for a create first, then creates, updates and withdrawals), each
    part written and checked as one Bundle is, then one Provenance naming what the parts wrote,
    also where a part failed (as :func:`write_singles`). No longer atomic: a part that fails
    leaves the parts before it written, which the re-plan finds unchanged."""
    ordered = single_order(writes, shape)
    size = max(1, limit)
    parts = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    log.warning(
        "the server takes at most %d entries a Bundle: %d writes sent as %d %s Bundles%s "
        "(not atomic: a part that fails leaves the parts before it written)",
        size,
        len(writes),
        len(parts),
        shape.mode,
        ", then the Provenance" if provenance is not None else "",
    )
    confirmed = len(naming.written)
    try:
        for part in parts:
            if shape.mode == "transaction":
                try:
                    await write_transaction(writer, part, None, requests, duplicates, naming)
                except WriteOutcomeUnknown:
                    # no Provenance was in it: what the re-plan finds made is named by the next
                    for w in part:
                        naming.unknown.pop(w.derived.identifier, None)
                        naming.unknown_withdrawals.pop(w.derived.identifier, None)
                    naming.lost(part)
                    raise
            else:
                await write_batch(writer, part, None, shape, requests, duplicates, naming)
    finally:
        changed: list[str] = []
        for written in naming.written[confirmed:]:
            if written.reference not in changed:
                changed.append(written.reference)
        if changed or naming.targets:
            await post_provenance(writer, provenance, changed, requests, naming)


async def write_singles(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    shape: WritePlanShape,
    requests: dict[str, int],
    duplicates: list[str],
    naming: Naming,
) -> None:
    """Single requests in a safe order (:func:`~fhirtis.pipeline.write_order.single_order`),
    then the Provenance (last, so it names only what was written). A conditional create
    answered "exists" after a try whose answer was lost names what that try created."""
    changed: list[str] = []
    resent: list[str] = []  # what creates sent again made (their first try may have too)
    plain: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []  # creates whose answer does not say what they made
    unlocated_resent: set[str] = set()
    several: SeveralMatches | None = None  # a conditional create that matched several
    found: list[PlannedWrite] = []  # conditional creates that found a resource stored
    # a delete that makes way for a create (write_order.single_order) and failed (made or not:
    # retries of a lost answer ran out): the creates are sent all the same, then it is raised
    way_failed: FhirClientError | None = None
    ahead = makes_way(writes, shape)
    try:
        for w in single_order(writes, shape):
            d = w.derived
            rtype = d.resource_type
            requests["write"] = requests.get("write", 0) + 1
            if w.action is Action.CREATE:
                conditional = shape.conditional_create.get(rtype, False)
                headers = {"If-None-Exist": d.if_none_exist} if conditional else None
                try:
                    answer = await _write(writer, "POST", rtype, json=d.resource, headers=headers)
                except PreconditionFailed as exc:
                    if not conditional:
                        raise
                    matched = await _create_matched_several(writer, w, exc, requests)
                    if not isinstance(matched, SeveralMatches):
                        raise matched from exc
                    several = several or matched  # the rest is written, then the run fails
                    continue
                except FhirServerError as exc:
                    if is_refusal(exc.status, exc.operation_outcome):
                        kind = Refused("conditional-create", rtype) if conditional else None
                        raise Learned(kind or Refused("interaction", rtype, "create")) from exc
                    if conditional and is_conflict(exc):
                        raise await _create_race_lost(writer, w, exc, requests) from exc
                    raise
                except WriteOutcomeUnknown:
                    naming.lost([w])
                    raise
                # a conditional create answers 200 when it found the resource; a plain create
                # made it whatever its 2xx (some servers answer 200)
                if answer.status == 201 or answer.resent or not conditional:
                    # checked for copies: a search-then-create, a conditional create resent (a
                    # server that ignores If-None-Exist created it twice) or answered 201 (not
                    # atomic on some servers: :func:`_check_duplicates`)
                    plain.append(w)
                    made = _made(answer.location, answer.body, w)
                    if made is None:
                        unlocated.append(w)
                        if answer.resent:
                            unlocated_resent.add(d.identifier)
                    else:
                        changed.append(made)
                        naming.confirm(w, made)
                        if answer.resent:
                            resent.append(made)
                elif not _found_as_sent(answer.body, w):
                    found.append(w)  # the rest is written, then re-read and re-planned
            elif deletes(w):
                try:
                    deleted = await _delete_singly(writer, w, requests, naming)
                except FhirClientError as exc:
                    if rtype not in ahead:
                        raise
                    way_failed = way_failed or exc  # the replacement is still attempted
                    continue
                if deleted is not None:
                    changed.append(deleted)
            else:
                headers = {"If-Match": f'W/"{w.existing_version}"'} if w.existing_version else {}
                url = f"{rtype}/{w.existing_id}"
                try:
                    answer = await _write(
                        writer,
                        "PUT",
                        url,
                        json={**d.resource, "id": w.existing_id},
                        headers=headers,
                    )
                except PreconditionFailed as exc:
                    if exc.resent:  # after a lost answer: maybe our first try, found by the re-plan
                        naming.lost([w])
                    raise  # else another writer's change: nothing of this PUT was stored
                except FhirServerError as exc:
                    if is_refusal(exc.status, exc.operation_outcome):
                        raise Learned(Refused("interaction", rtype, "update")) from exc
                    if is_conflict(exc) and w.existing_version:  # HAPI's 412
                        if exc.resent:
                            naming.lost([w])
                        raise _version_conflict(exc) from exc
                    raise
                except WriteOutcomeUnknown:
                    naming.lost([w])
                    raise
                changed.append(url)
                naming.confirm(w, url)
        if way_failed is not None:
            raise way_failed
        if several is not None:
            raise several
        if found:
            raise _found_other(found)
    finally:
        # what was written is written: name it in the one Provenance even if a later write fails
        located = await _locate(writer, unlocated, requests, naming, changed)
        resent += [ref for ident, ref in located.items() if ident in unlocated_resent]
        if changed or naming.targets:
            await _check_duplicates(writer, plain, requests, duplicates, changed, resent)
            await post_provenance(writer, provenance, changed, requests, naming)


async def _check_duplicates(
    writer: FhirClient,
    created: Sequence[PlannedWrite],
    requests: dict[str, int],
    duplicates: list[str],
    changed: list[str],
    resent: Collection[str] = (),
) -> None:
    """Search-then-create (no conditional create on the server) has a race: another writer may
    create the same resource between our search by identifier and our POST. So has a
    conditional create answered 201 on some servers: on HAPI FHIR before 6.6 (hapifhir/hapi-fhir
    issue #3141: parallel If-None-Exist creates each answered 201 Created; fixed by PR #4598's
    unique index) and Azure API for FHIR (microsoft/fhir-server issue #1382, "Concurrent
    conditional creates results in duplicate data") both writers' creates are made. After the
    creates, one search per type by their identifiers finds such duplicates; the one with the
    lowest id is kept (every writer picks the same) and the others are deleted where the server
    allows it, else marked ``entered-in-error`` where it allows updates, else kept; each is
    reported in
    ``duplicates`` (later runs update the kept one only). ``changed`` (what the Provenance will
    name) names the kept copy too where a copy it names was made by a resent create
    (``resent``): the kept one may be what the lost first try made. A kept copy that another
    writer made is that writer's to name."""
    if not created:
        return
    caps = await writer.capabilities()
    found = await find_existing(writer, [w.derived for w in created], requests)
    wanted = {w.derived.identifier for w in created}
    by_ident: dict[str, list[Json]] = {}
    for r in found:
        ident = identifier_of(r)
        if ident in wanted and r.get("status") != RETIRED:  # a copy already retired is settled
            by_ident.setdefault(ident, []).append(r)
    for ident, copies in sorted(by_ident.items()):
        if len(copies) < 2:
            continue
        copies.sort(key=lambda r: str(r.get("id")))
        rtype = str(copies[0].get("resourceType"))
        if not caps.allows(rtype, "delete"):
            if rtype in RETIRABLE and caps.allows(rtype, "update"):
                for extra in copies[1:]:  # no delete: the extra copies are marked void
                    await _retire(writer, extra, requests)
                _name_kept(changed, copies, resent)
                log.warning("a concurrent create duplicated a %s; the extra copies retired", rtype)
                duplicates.append(
                    f"{rtype} {ident}: {len(copies)} copies (a concurrent create); the server "
                    "refuses delete, so the others were marked entered-in-error (the one with "
                    "the lowest id is kept and updated)"
                )
                continue
            log.warning(
                "%d %s resources share a derived identifier (a concurrent create); kept all",
                len(copies),
                rtype,
            )
            duplicates.append(
                f"{rtype} {ident}: {len(copies)} copies (a concurrent create); the server "
                f"refuses delete, so all were kept (the one with the lowest id is updated)"
            )
            continue
        referenced: list[Json] = []  # copies the server refused to delete (409: referenced)
        for extra in copies[1:]:
            requests["write"] = requests.get("write", 0) + 1
            try:
                await _write(writer, "DELETE", f"{rtype}/{extra.get('id')}")
            except NotFound:
                continue
            except FhirServerError as exc:
                if not is_conflict(exc):
                    raise
                referenced.append(extra)  # e.g. the other writer's Provenance names it
        _name_kept(changed, copies, resent)
        if not referenced:
            log.warning("a concurrent create duplicated a %s; the extra copies were deleted", rtype)
            continue
        log.warning("a concurrent create duplicated a %s; a copy is referenced (409)", rtype)
        retire = rtype in RETIRABLE and caps.allows(rtype, "update")
        for extra in referenced if retire else ():
            await _retire(writer, extra, requests)
        duplicates.append(
            f"{rtype} {ident}: {len(copies)} copies (a concurrent create); the server refused "
            f"to delete {len(referenced)} of them (HTTP 409: referenced), so "
            + ("they were marked entered-in-error" if retire else "they were kept")
            + " (the one with the lowest id is kept and updated)"
        )


def _name_kept(changed: list[str], copies: Sequence[Json], resent: Collection[str]) -> None:
    """Where ``changed`` names an extra copy of ``copies`` (the first is kept) that a resent
    create made, it names the kept one too: the create's lost first try may have made it."""
    refs = [f"{c.get('resourceType')}/{c.get('id')}" for c in copies]
    if not resent or refs[0] in changed:
        return
    if any(ref in resent and ref in changed for ref in refs[1:]):
        changed.append(refs[0])


async def _retire(writer: FhirClient, copy: Json, requests: dict[str, int]) -> None:
    """Mark a duplicate that a race created ``entered-in-error`` (where delete is refused): the
    kept copy (lowest id) stays the one every later run reads and updates."""
    rtype, rid = copy.get("resourceType"), copy.get("id")
    version = (copy.get("meta") or {}).get("versionId")
    headers = {"If-Match": f'W/"{version}"'} if version else None
    requests["write"] = requests.get("write", 0) + 1
    try:
        await _write(
            writer, "PUT", f"{rtype}/{rid}", json={**copy, "status": RETIRED}, headers=headers
        )
    except (NotFound, PreconditionFailed):
        return  # gone, or the other writer did it
    except FhirServerError as exc:
        if not (is_conflict(exc) and headers):  # HAPI answers a stale If-Match with 409
            raise


async def post_provenance(
    writer: FhirClient,
    provenance: Json | None,
    changed: Sequence[str],
    requests: dict[str, int],
    naming: Naming,
) -> None:
    """One Provenance naming ``changed`` and the lost writes found made (then named)."""
    targets = naming.and_(changed)
    if provenance is None or not targets:
        return
    prov = _as_written(provenance, targets)
    requests["write"] = requests.get("write", 0) + 1
    try:
        await _write(writer, "POST", "Provenance", json=prov)
    except WriteOutcomeUnknown:
        naming.unsure.append((prov["recorded"], frozenset(targets)))
        naming.targets.clear()
        raise
    except FhirServerError as exc:
        if not is_refusal(exc.status, exc.operation_outcome):
            raise
        # what it names is written; the server keeps no Provenance: learnt, and reported
        writer.learn(Refused("interaction", "Provenance", "create"))
        naming.refused = True
    naming.targets.clear()
