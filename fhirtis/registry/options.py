"""How a registry run is made (``fhirtis cohort``'s options), apart from the clinical settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CohortOptions:
    write: bool = False
    concurrency: int = 8
    ledger: Path = Path("fhirtis-ledger.sqlite")
    work_dir: Path = Path(".fhirtis-work")
    keep_work_dir: bool = False
    engine: str = "local"  # local | dask
    scheduler: str | None = None  # a Dask scheduler address; None: a local cluster
    workers: int | None = None  # worker processes of a local Dask cluster (None: the CPUs)
    partitions: int | None = None  # hash partitions (None: from the input size and workers)
    progress: bool | None = None  # None: on a TTY and not in CI
    since: str | None = None
    validate: bool = False  # validate every written resource with the R4B models
    # A Group export: resource types read per patient over REST instead of exported (a server
    # whose Bulk export lacks them; types the export refuses are added when the run meets it)
    rest_types: tuple[str, ...] = ()
    # A Group export: called with each ``X-Progress`` the server sends while it exports
    on_export_progress: Callable[[str], object] | None = None
