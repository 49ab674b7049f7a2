"""Registry partitions are evaluated under the batch collector settings, which end with them."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import fhirtis.registry.evaluate as registry_evaluate
from fhirtis.pipeline.batch_gc import BATCH_GEN0_THRESHOLD, batch_gc
from fhirtis.registry.evaluate import evaluate_partition
from fhirtis.registry.partition import byte_ranges, partition_range
from fhirtis.settings import Settings
from tests.synthetic import make_cohort, write_ndjson


@pytest.fixture
def nothing_frozen() -> Iterator[None]:
    """The process's collector with no frozen objects (as at start-up), then as it was."""
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    yield
    if was_frozen:
        gc.freeze()


def test_batch_settings_hold_inside_and_the_old_ones_come_back(nothing_frozen: None) -> None:
    before = gc.get_threshold()
    with batch_gc():
        assert gc.get_threshold() == (BATCH_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        with batch_gc():  # nested: the outer batch's settings stay
            pass
        assert gc.get_threshold()[0] == BATCH_GEN0_THRESHOLD
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_someone_else_is_left_as_it_is(nothing_frozen: None) -> None:
    gc.freeze()  # e.g. a server process after its start-up
    frozen = gc.get_freeze_count()
    # neither frozen again nor unfrozen (0); a frozen object that its last reference leaves is
    # freed all the same, so the count may fall by a few between two reads
    with batch_gc():
        assert 0 < gc.get_freeze_count() <= frozen
        assert gc.get_threshold()[0] == BATCH_GEN0_THRESHOLD
    assert 0 < gc.get_freeze_count() <= frozen


def test_overlapping_batches_in_threads_restore_once_the_last_ends() -> None:
    before = gc.get_threshold()
    first_in, release = threading.Event(), threading.Event()

    def first() -> None:
        with batch_gc():
            first_in.set()
            release.wait(5)

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(5)
    with batch_gc():
        pass
    assert gc.get_threshold()[0] == BATCH_GEN0_THRESHOLD  # the thread's batch still runs
    release.set()
    worker.join(5)
    assert gc.get_threshold() == before


def test_cycles_made_in_a_batch_are_still_collected() -> None:
    class Node:
        other: object = None

    with batch_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2


def test_a_partition_is_evaluated_under_the_batch_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_ndjson(make_cohort(3, seed=5), tmp_path / "export")
    out = tmp_path / "work"
    for r in byte_ranges(tmp_path / "export", 1 << 30):
        partition_range(r, str(out), 1)
    seen: list[int] = []
    real = registry_evaluate.evaluate_resources

    def spy(*args: object, **kwargs: object) -> registry_evaluate.EvaluatedPatient:
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_evaluate, "evaluate_resources", spy)
    before = gc.get_threshold()
    result = evaluate_partition(str(out), 0, Settings().model_dump_json(), {}, keep_derived=False)
    assert [o.error for o in result.outcomes] == [None, None, None]
    assert seen == [BATCH_GEN0_THRESHOLD] * 3
    assert gc.get_threshold() == before
