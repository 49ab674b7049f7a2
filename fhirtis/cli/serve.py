"""``fhirtis serve``: the HTTP service (needs the ``[serve]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fhirtis.cli._common import check_settings, problem_text, require_extra, usage_error
from fhirtis.settings import load_settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (default: settings, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default: settings, 8080).")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="Settings file (TOML or JSON).")
    ] = None,
) -> None:
    """Run the HTTP service: FHIR operations, CDS Hooks and the clinician's page (uvicorn)."""
    require_extra("serve", "serve")
    import uvicorn  # noqa: PLC0415 - the [serve] extra

    from fhirtis.api.app import create_app  # noqa: PLC0415
    from fhirtis.api.ops import log_config  # noqa: PLC0415

    try:
        settings = load_settings(settings_file)
        check_settings(settings)
        application = create_app(settings)
    except (ValueError, FileNotFoundError) as exc:
        raise usage_error("serve", problem_text(exc)) from None
    uvicorn.run(
        application,
        host=settings.service.host if host is None else host,
        port=settings.service.port if port is None else port,
        log_level="info",
        log_config=log_config("INFO"),  # JSON lines on stderr, with an audit line per access
        access_log=False,  # access lines carry query strings; fhirtis logs ids and counts itself
        # one process: uvicorn would read WEB_CONCURRENCY and refuse an app object; scale with
        # more processes behind the proxy (docs/operations.md)
        workers=1,
    )
