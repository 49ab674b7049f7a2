"""A CDS client's JWT lifetime (CDS Hooks 2.0, "Trusting CDS Clients").

CDS Hooks 2.0 requires ``exp`` but sets no maximum lifetime (the 5-minute rule is SMART Backend
Services', for client assertions). Epic's CDS Hooks documentation ("Trusting CDS Clients", JWT
Tokens) shows a token with ``iat`` 1708123973 and ``exp`` 1708124873 (15 minutes) and ``nbf``
"typically set to 5 minutes prior to the issue time". fhirtis refused every such call 401.
The longest lifetime accepted is a per-client setting (default 900 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from fhirtis.settings import CdsSettings, TrustedCdsClient
from tests.api.test_security import (
    CDS_KEY,
    CDS_RSA,
    EHR_ISS,
    SIGN,
    app_client,
    cds_jwt,
    hook_call,
    jwks,
    validate_mode,
)


def epic_token(lifetime: int) -> str:
    """Epic's documented shape: RS384, ``iat`` now, ``nbf`` 5 minutes before, ``exp`` later."""
    now = int(time.time())
    return cds_jwt(
        key=CDS_RSA, alg="RS384", iat=now, nbf=now - 300, exp=now + lifetime, sub="epic-client"
    )


async def test_epics_15_minute_cds_jwt_is_accepted(fhir_base: str, tmp_path: Path) -> None:
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        auth = {"Authorization": f"Bearer {epic_token(900)}"}
        r = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
        assert r.status_code == 200, r.text
        assert any("exceeds" in c["summary"] for c in r.json()["cards"])


async def test_a_jwt_beyond_the_clients_lifetime_is_refused(fhir_base: str, tmp_path: Path) -> None:
    path = tmp_path / "ehr-jwks.json"
    path.write_text(jwks(CDS_KEY, CDS_RSA))
    strict = TrustedCdsClient(iss=EHR_ISS, jwks_path=path, max_token_lifetime_seconds=300)
    settings = {**validate_mode(tmp_path), "cds": CdsSettings(trusted_clients=[strict])}
    async with app_client(fhir_base, **settings) as client:
        for lifetime, status in ((900, 401), (240, 200)):
            auth = {"Authorization": f"Bearer {epic_token(lifetime)}"}
            r = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
            assert r.status_code == status, (lifetime, r.text)
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:  # default 900 s
        auth = {"Authorization": f"Bearer {epic_token(7200)}"}
        r = await client.post(SIGN, json=hook_call(fhir_base), headers=auth)
        assert r.status_code == 401 and "expiry" in r.json()["message"]


@pytest.mark.parametrize("seconds", [0, -1, 86_401])
def test_the_lifetime_setting_is_bounded(tmp_path: Path, seconds: int) -> None:
    with pytest.raises(ValidationError, match="max_token_lifetime_seconds"):
        TrustedCdsClient(
            iss=EHR_ISS, jwks_path=tmp_path / "k.json", max_token_lifetime_seconds=seconds
        )
