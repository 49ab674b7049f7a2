"""The ``fhirtis`` command line: one module per command family.

``calc`` (the IMACS calculator), ``evaluate`` and ``run`` (Bundles on disk, patients on a
server), ``capabilities`` (what fhirtis will do with a server), ``serve`` (the HTTP service,
extra ``[serve]``), ``cohort`` and ``report`` (registries, extra ``[registry]``).
A command whose extra is missing says which one to install.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from fhirtis import __version__
from fhirtis.cli import calc, capabilities, evaluate, registry, serve

app = typer.Typer(
    name="fhirtis",
    help="Myositis Total Improvement Score and IVIG safety over HL7 FHIR R4.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fhirtis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """fhirtis: measure response (TIS) and watch IVIG clot risk from FHIR data."""


app.command()(calc.calc)
app.command()(evaluate.evaluate)
app.command()(evaluate.run)
app.command()(capabilities.capabilities)
app.command()(serve.serve)
app.command()(registry.cohort)
app.command()(registry.report)


def main() -> None:
    # httpx logs every request URL at INFO; fhirtis logs what it does itself (ids and counts).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app()
