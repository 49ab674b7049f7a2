"""Makes a Dask worker ready for fhirtis before its first task (a Dask *preload* module).

A fresh Python process needs seconds before it evaluates its first patient: importing the
evaluation code, building the UCUM unit registry (ucumvert parses the UCUM definitions) and
loading the shipped terminology. Done on the first partition, that start-up is paid inside the
run by every worker at once — with many workers, a large share of a short run. Preloaded, it is
paid when the worker starts.

The local cluster of ``fhirtis cohort --engine dask`` preloads this module itself. Start the
workers of a cluster the same way::

    dask worker tcp://scheduler:8786 --nthreads 1 --preload fhirtis.registry.dask_worker
"""

from __future__ import annotations

from typing import Any


def warm() -> None:
    """Import the evaluation code, build the unit registry, load the shipped terminology."""
    import fhirtis.registry.evaluate  # noqa: F401, PLC0415 - the code every task runs
    from fhirtis.fhir.codes import terminology  # noqa: PLC0415
    from fhirtis.fhir.units import check_registry  # noqa: PLC0415

    check_registry()
    terminology()


def dask_setup(worker: Any) -> None:
    """Called by Dask when a worker starts with this module preloaded."""
    warm()
