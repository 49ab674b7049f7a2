"""``fhirtis serve``: the HTTP service (needs the ``[serve]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from joserfc.errors import JoseError

from fhirtis.cli._common import (
    check_credentials,
    check_settings,
    problem_text,
    require_extra,
    usage_error,
)
from fhirtis.settings import ServiceSettings, load_settings


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
        if settings.fhir is not None:
            check_credentials(settings.fhir)
        _check_token_keys(settings.service)
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


def _check_token_keys(service: ServiceSettings) -> None:
    """In ``validate`` mode, the keys, issuer and audience the service checks tokens against,
    read as the service will read them at start (uvicorn would fail its start-up with a
    traceback). Raises ValueError naming the setting."""
    if service.auth_mode != "validate":
        return
    from fhirtis.api.access import TokenValidator  # noqa: PLC0415 - the [serve] extra

    try:
        TokenValidator(service)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ValueError(f"service.jwks_path {service.jwks_path}: {why}") from None
    except (ValueError, KeyError, JoseError) as exc:
        keys = service.jwks is not None or service.jwks_path is not None
        if keys and service.issuer and service.audience:  # they are there, but are no JWKS
            where = (
                "service.jwks"
                if service.jwks is not None
                else f"service.jwks_path {service.jwks_path}"
            )
            raise ValueError(f"{where}: not a JWKS ({exc})") from None
        raise ValueError(str(exc)) from None  # what validate mode needs
