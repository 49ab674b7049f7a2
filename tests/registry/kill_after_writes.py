"""``python tests/registry/kill_after_writes.py N ARGS…``: ``fhirtis ARGS…`` that SIGKILLs itself
right after the N-th patient's write reached the server and before the ledger records it (the
worst moment for a crash, at a point the test picks, with no timing). The product has no such
switch: this wraps the ``settle`` that the registry's local engine calls."""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

from fhirtis.pipeline.server import PatientRun, RunStatus
from fhirtis.registry import cohort


def main() -> None:
    kill_after, args = int(sys.argv[1]), sys.argv[2:]
    real_settle = cohort.settle
    written = 0

    async def settle(*positional: Any, **keywords: Any) -> PatientRun:
        nonlocal written
        run = await real_settle(*positional, **keywords)
        if run.status is RunStatus.WRITTEN:
            written += 1
            if written >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        return run

    cohort.settle = settle  # type: ignore[assignment]
    sys.argv = ["fhirtis", *args]
    runpy.run_module("fhirtis", run_name="__main__")


if __name__ == "__main__":
    main()
