"""What the command families share: exit codes, reading input, settings, optional extras."""

from __future__ import annotations

import importlib.util
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from types import FrameType

import typer
from pydantic import ValidationError
from rich.console import Console

from fhirtis.fhir.primitives import is_id
from fhirtis.io import FhirClientConfig, build_auth
from fhirtis.pipeline.offline import extractor_for
from fhirtis.registry.partition import PRIVATE_FILE, private_tree
from fhirtis.settings import Settings, load_settings

EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: what shells, cron and Kubernetes report for SIGTERM

#: The optional extras and the modules each brings (``pip install 'fhirtis[NAME]'``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "prometheus_client", "fastapi_offline"),
    "registry": ("distributed", "matplotlib"),
}


def require_extra(command: str, extra: str) -> None:
    """Exit with a clear message when ``command`` needs an extra that is not installed."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        typer.echo(
            f"fhirtis {command} needs the optional extra [{extra}] "
            f"(missing: {', '.join(missing)}): pip install 'fhirtis[{extra}]'",
            err=True,
        )
        raise typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def stopping_on_sigterm(command: str) -> Iterator[None]:
    """While a command runs, SIGTERM (``docker stop``, Kubernetes stopping a pod, systemd)
    ends it at once, as Python's default action does, with one line on standard error and exit
    status 143. What was written stays as a kill leaves it, which the next run settles (the
    ledger's transactions, the Provenance catch-up). Python's default action does not reach a
    process that is PID 1 of its container (``docker run --entrypoint fhirtis IMAGE cohort``,
    a Kubernetes CronJob): the kernel ignores a signal with no handler sent to it, and the run
    went on until the SIGKILL at the end of the grace period (exit 137)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        line = f"fhirtis {command}: stopped by SIGTERM; run the same command again to resume\n"
        os.write(2, line.encode())
        os._exit(EXIT_TERMINATED)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def err_console() -> Console:
    """Standard error for messages: one line each, never wrapped at the terminal's width (a
    message is read by logs and grep as well as by people). Never highlighted: rich's
    highlighter takes time that grows with the square of a long word's length, and messages
    echo what an input holds."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def report_console() -> Console:
    """Standard output for the readable reports (tables fit the terminal; text lines are not
    wrapped). Plain text, never highlighted: the reports echo what an input holds (a status, a
    reference), and rich's highlighter takes time that grows with the square of a long word's
    length (a 100,000-character status took minutes)."""
    return Console(soft_wrap=True, highlight=False)


def usage_error(command: str, message: str) -> typer.Exit:
    """Print ``fhirtis COMMAND: message`` on standard error; the Exit to raise (status 2)."""
    err_console().print(f"fhirtis {command}: {message}", markup=False, highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


def problem_text(exc: Exception) -> str:
    """A settings or option error as plain text: a pydantic error's messages (without its
    input echo and documentation links), else the exception's text."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".lstrip(": ")
            for e in exc.errors(include_url=False)
        )
    return str(exc)


def check_settings(settings: Settings) -> None:
    """Load what the settings name (the concept map) once, before any patient is read: a file
    that is missing or is no ConceptMap is a usage error, not a failure at the first patient.
    Raises ValueError naming the file."""
    if settings.concept_map is None:
        return
    try:
        extractor_for(settings)
    except (OSError, ValueError) as exc:  # ValueError: TerminologyError, naming what is wrong
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"concept_map {settings.concept_map}: {why}") from None


def resource_id(text: str, resource_type: str, option: str) -> str:
    """An id as given, or as the reference ``Type/id``; ValueError for one that is no FHIR id."""
    rid = text.strip().removeprefix(f"{resource_type}/")
    if not is_id(rid):
        raise ValueError(f"{option}: {text!r} is not a FHIR id (letters, digits, '-', '.'; 1-64)")
    return rid


def patient_ids(texts: list[str], option: str = "--patient") -> list[str]:
    """Patient ids as people give them (``id`` or ``Patient/id``; a file's byte order mark and
    blank entries left out), each once, in the order first given. ValueError for one that is
    no FHIR id."""
    ids: dict[str, None] = {}
    for text in texts:
        entry = text.strip().removeprefix("\ufeff").strip()
        if entry:
            ids[resource_id(entry, "Patient", option)] = None
    return list(ids)


def output_folder(path: Path) -> Path:
    """A folder for files that hold patient data: it and the missing folders above it are
    created 0700 (folders that exist are left as they are). ValueError when it cannot be
    made or written."""
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is not a folder")
        private_tree(path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{path}: cannot write there")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    return path


def part_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: ``.{name}.{pid}.part`` beside
    it. The parts of ``path`` that a killed run left (SIGKILL, a power cut: no handler ran),
    those of a process that no longer exists, are removed first; nothing else is touched (not
    another name's part, not a live process's, not what is no plain file)."""
    prefix, own = f".{path.name}.", os.getpid()
    try:
        names = os.listdir(path.parent)
    except OSError:
        names = []
    for name in names:
        pid = name[len(prefix) : -len(".part")]
        if not (name.startswith(prefix) and name.endswith(".part") and pid.isdigit()):
            continue
        if int(pid) == own or _alive(int(pid)):
            continue
        stale = path.parent / name
        with suppress(OSError):
            if stat.S_ISREG(stale.lstat().st_mode):
                stale.unlink()
    return path.with_name(f"{prefix}{own}.part")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts: it is not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path``, readable by its owner only (0600, whatever the umask), whole or
    not at all: written beside it and renamed, so an interrupted run leaves no cut file (and a
    killed run's part is removed by the next: :func:`part_path`)."""
    part = part_path(path)
    fd = os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), PRIVATE_FILE)
            out.write(data)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def read_input(path: str) -> bytes:
    """A file's bytes, or standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def fmt(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


def settings_for_server(settings_file: Path | None, server: str | None) -> Settings:
    """The settings, with ``--server`` as the FHIR base URL: the other ``fhir`` settings (auth,
    paging, a write server: environment or file) are kept, and need no base URL of their own.
    ValueError for a ``--server`` that is no FHIR base URL, or for invalid settings."""
    if server is None:
        return load_settings(settings_file)
    base = FhirClientConfig(base_url=server)  # one line naming what is wrong with it
    return load_settings(settings_file, fhir={"base_url": base.base_url})


def fhir_config(settings: Settings, server: str | None) -> FhirClientConfig | None:
    """The settings' FHIR client configuration, with ``--server`` replacing the base URL.
    ValueError naming the setting when its credentials cannot be used
    (:func:`check_credentials`)."""
    fhir = settings.fhir
    if server is None:
        config = fhir
    else:
        base = FhirClientConfig(base_url=server)
        config = base if fhir is None else fhir.model_copy(update={"base_url": base.base_url})
    if config is not None:
        check_credentials(config)
    return config


def check_credentials(config: FhirClientConfig) -> None:
    """Read the credentials ``config`` names (a private key file, a client secret file) as the
    client will, before anything is read or a ledger is made: a file that is missing, unreadable
    or no usable key is a usage error naming the setting, not a traceback at the first request.
    Nothing is sent anywhere. Raises ValueError."""
    build_auth(config)
