"""The page tests use the real FHIR engine of the e2e tests, a test SMART authorization server
in front of it, fhirtis itself, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fhirtis.api.app import create_app
from fhirtis.api.web import DEFAULT_CLIENT_ID
from fhirtis.settings import ServiceSettings, Settings
from tests.fhir_test_server import FhirTestServer
from tests.web.auth_server import SmartAuthServer, loopback_socket, serving, url_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH = "xyz"
PATIENT = "p1"


@dataclass
class Stack:
    fhirtis: str
    auth: SmartAuthServer

    @property
    def iss(self) -> str:
        return self.auth.iss


@contextmanager
def serving_stack(
    fhir_server: FhirTestServer, need_patient_banner: bool | None = None
) -> Iterator[Stack]:
    """fhirtis (allow-list: the test EHR's iss) and the test EHR, each in a uvicorn thread;
    the EHR's token answer says ``need_patient_banner`` when it is not None."""
    fhirtis_sock = loopback_socket()
    auth_sock = loopback_socket()
    fhirtis_url = url_of(fhirtis_sock)
    auth = SmartAuthServer(
        url_of(auth_sock),
        fhir_server.base_url,
        clients={DEFAULT_CLIENT_ID: {f"{fhirtis_url}/app/"}},
        launches={LAUNCH: PATIENT},
        app_origins=[fhirtis_url],
        need_patient_banner=need_patient_banner,
    )
    app = create_app(Settings(service=ServiceSettings(allowed_fhir_servers=[auth.iss])))
    with serving(auth.app, auth_sock), serving(app, fhirtis_sock):
        yield Stack(fhirtis_url, auth)


@pytest.fixture
def stack(fhir_server: FhirTestServer) -> Iterator[Stack]:
    """The test stack (:func:`serving_stack`), its EHR saying nothing of a patient banner."""
    with serving_stack(fhir_server) as served:
        yield served


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (never a downloaded browser): a missing one is a failure, not a skip."""
    found = CHROMIUM if CHROMIUM.is_file() else None
    if found is None:
        which = shutil.which("chromium")
        found = Path(which) if which else None
    if found is None:
        pytest.fail(
            "Chromium is required for the page tests but /usr/bin/chromium is missing. Install "
            "Debian's package: `apt-get update && apt-get install -y chromium` (Playwright's own "
            "browser downloads are not used)."
        )
    return found
