"""What the command families share: exit codes, reading input, settings, optional extras."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path

import typer

from fhirtis.io import FhirClientConfig
from fhirtis.settings import Settings

EXIT_BAD_INPUT = 2

#: The optional extras and the modules each brings (``pip install 'fhirtis[NAME]'``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
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


def read_input(path: str) -> bytes:
    """A file's bytes, or standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def fmt(value: Decimal | None) -> str:
    return "—" if value is None else format(value.normalize(), "f")


def fhir_config(settings: Settings, server: str | None) -> FhirClientConfig | None:
    """The settings' FHIR client configuration, with ``--server`` replacing the base URL."""
    fhir = settings.fhir
    if server is None:
        return fhir
    base = FhirClientConfig(base_url=server)
    return base if fhir is None else fhir.model_copy(update={"base_url": base.base_url})
