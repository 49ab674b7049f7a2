"""The order of a patient's writes, where it matters: a withdrawal that must make way for a
create (its conditional create can match the resource being withdrawn), and which creates of a
transaction are sent without their condition. Pure functions of the plan: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from fhirtis.fhir.plan import RETIRABLE, Action, PlannedWrite
from fhirtis.io import WritePlanShape

__all__ = ["batch_order", "deletes", "in_the_way", "makes_way", "single_order"]


def deletes(w: PlannedWrite) -> bool:
    """Whether ``w`` withdraws by deleting (a type without an ``entered-in-error`` status)."""
    return w.action is Action.WITHDRAW and w.derived.resource_type not in RETIRABLE


def makes_way(writes: Sequence[PlannedWrite], shape: WritePlanShape) -> set[str]:
    """Types whose withdrawals (deletes) must be sent before the creates of ``writes``: those
    with a conditional create that matches on other search parameters than fhirtis's identifier
    (:attr:`Derived.match`: R4 AdverseEvent has no ``identifier`` search). Such a condition can
    match the old resource being withdrawn (the same subject, onset and coding, another
    source): a create sent first is answered "exists" (R4 http.html#ccreate: one match, 200,
    nothing created) and the delete after it removes the only copy. R4 http.html#trules
    processes a transaction's DELETEs before its POSTs."""
    return {
        w.derived.resource_type
        for w in writes
        if w.action is Action.CREATE
        and w.derived.match is not None
        and shape.conditional_create.get(w.derived.resource_type, False)
    }


def in_the_way(writes: Sequence[PlannedWrite]) -> list[PlannedWrite]:
    """The creates of a transaction whose condition could resolve to a resource the same
    transaction deletes (:func:`makes_way`: a condition on other search parameters than
    fhirtis's identifier, a delete of the same type). R4 http.html#trules: "If any resource
    identities (including resolved identities from conditional update/delete) overlap in
    steps 1-3, then the transaction SHALL fail"; Medplum resolves a conditional create's
    condition before any DELETE runs and refuses the transaction with 400 "Duplicate resource
    identity found in Bundle" (@medplum/fhir-router src/batch.ts ``preprocessEntry``), so the
    old resource was never withdrawn nor its successor written, run after run. Such a create
    is sent without ``ifNoneExist``: a transaction is never sent again after a lost answer (the
    re-plan finds what it made by identifier), the plan found no copy of it, and a concurrent
    writer's copy is found by the duplicate check after the transaction."""
    deleted = {w.derived.resource_type for w in writes if deletes(w)}
    return [
        w
        for w in writes
        if w.action is Action.CREATE
        and w.derived.match is not None
        and w.derived.resource_type in deleted
    ]


def single_order(writes: Sequence[PlannedWrite], shape: WritePlanShape) -> list[PlannedWrite]:
    """The order of single requests: creates, then If-Match updates, then withdrawals (a new
    conclusion is stored before an old one is withdrawn), except the deletes that make way for
    a create (:func:`makes_way`), which go first. The creates follow them at once, even where
    such a delete failed (its retries ran out: it may have been made), so no withdrawal is left
    without its replacement attempted; a failure of either fails the run, which reports what
    was confirmed and what was not (and its Provenance names what was made)."""
    first = makes_way(writes, shape)
    order = {Action.CREATE: 1, Action.UPDATE: 2, Action.WITHDRAW: 3}

    def rank(w: PlannedWrite) -> int:
        if deletes(w) and w.derived.resource_type in first:
            return 0
        return order.get(w.action, 2)

    return sorted(writes, key=rank)


def batch_order(writes: Sequence[PlannedWrite], shape: WritePlanShape) -> list[PlannedWrite]:
    """A batch's entries: ``writes`` as planned, the deletes that make way for a create
    (:func:`makes_way`) first. R4 http.html#brules "considers" a batch run in a transaction's
    order (DELETE first), but HAPI FHIR runs a batch's writes in entry order
    (hapi-fhir BaseTransactionProcessor.batch: "run all non-gets sequentially")."""
    first = makes_way(writes, shape)
    if not first:
        return list(writes)
    ahead = [deletes(w) and w.derived.resource_type in first for w in writes]
    return [w for w, a in zip(writes, ahead, strict=True) if a] + [
        w for w, a in zip(writes, ahead, strict=True) if not a
    ]
