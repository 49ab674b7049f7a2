"""CPU-bound steps run off the asyncio event loop, in a small pool of threads.

Reading a patient's FHIR JSON into facts, the clinical computation and deriving the output are
pure and take from milliseconds to about a second (a record of 20,000 hourly weights); parsing a
large CDS Hooks request body takes as long. Run on the event loop, such a step held every other
request of the process until it ended: ``/livez`` and ``/readyz`` (the orchestrator's probes),
other callers' requests, and the deadlines (``cds.deadline_seconds``,
``service.evaluation_timeout_seconds``), which fire only when the loop gets a turn.

:func:`off_the_loop` runs one such step in a thread of its own pool and waits for it. The GIL
still runs one thread's Python at a time, but the loop gets a turn at least every switch
interval (5 ms), so it answers the probes and other callers, and a deadline answers on time.
At most :data:`EVALUATION_THREADS` steps run at once (the rest wait their turn); a step whose
caller stopped waiting (a deadline, a cancelled request) before its turn never starts, and one
already running ends in its thread and its result is dropped: whatever the caller would have
done with it (a write back to the FHIR server) is done by the caller, on the loop, and is not
done once the caller was cancelled.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["EVALUATION_THREADS", "off_the_loop"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

EVALUATION_THREADS = 4
"""The most CPU-bound steps (evaluations, request parses) running at once per process. Their
Python runs one at a time (the GIL): more threads add no speed, only memory; fewer make a step
wait behind one whose caller has already given up."""

_pool = ThreadPoolExecutor(max_workers=EVALUATION_THREADS, thread_name_prefix="fhirtis-cpu")


async def off_the_loop(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``fn(*args, **kwargs)`` in the pool, with the caller's context variables (as
    :func:`asyncio.to_thread`); cancelling the wait drops the step if it has not started."""
    loop = asyncio.get_running_loop()
    call = functools.partial(_in_context, contextvars.copy_context(), fn, *args, **kwargs)
    return await loop.run_in_executor(_pool, call)


def _in_context(
    context: contextvars.Context, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """``fn(*args, **kwargs)`` in ``context``; a StopIteration it raises as a RuntimeError (as
    PEP 479 makes it in a coroutine): an asyncio Future refuses StopIteration, so the loop
    would drop it (logged) and the caller would wait for ever."""
    try:
        return context.run(fn, *args, **kwargs)
    except StopIteration as exc:
        raise RuntimeError(f"{getattr(fn, '__qualname__', fn)!s} raised StopIteration") from exc
