"""A CDS client's JWT ``aud`` is checked against the URL the request arrived at (its ``Host``
header, which the caller chooses) when ``service.public_base_url`` is unset: the audience check
then binds the token to no particular address. The service says so once, at start-up, wherever
CDS clients' JWTs are checked (trusted clients configured), so the integrator sets it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fhirtis.settings import CdsSettings, ServiceSettings, Settings, TrustedCdsClient
from tests.api.test_security import CDS_KEY, EHR_ISS, jwks, served, validate_mode

_SAYS = "public_base_url"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("fhirtis") and r.levelno >= logging.WARNING
    ]


def _trusted(tmp_path: Path) -> CdsSettings:
    path = tmp_path / "ehr-jwks.json"
    path.write_text(jwks(CDS_KEY))
    return CdsSettings(trusted_clients=[TrustedCdsClient(iss=EHR_ISS, jwks_path=path)])


async def test_trusted_clients_without_a_public_address_warn_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = validate_mode(tmp_path)
    cds = settings.pop("cds")
    async with served(Settings(service=ServiceSettings(**settings), cds=cds)):
        pass
    said = [m for m in _warnings(caplog) if _SAYS in m]
    assert len(said) == 1, _warnings(caplog)
    assert "FHIRTIS_SERVICE__PUBLIC_BASE_URL" in said[0] and "Host" in said[0]


async def test_pass_through_with_trusted_clients_warns_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with served(Settings(cds=_trusted(tmp_path))):
        pass
    assert [m for m in _warnings(caplog) if _SAYS in m], _warnings(caplog)


async def test_a_public_address_or_no_jwt_check_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    public = ServiceSettings(public_base_url="https://cds.hospital.example/fhirtis")
    async with served(Settings(service=public, cds=_trusted(tmp_path))):
        pass
    async with served(Settings()):  # pass-through, no trusted client: no JWT is checked
        pass
    assert not [m for m in _warnings(caplog) if _SAYS in m], _warnings(caplog)
