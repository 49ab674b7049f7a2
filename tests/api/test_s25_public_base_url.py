"""``service.public_base_url``: the address CDS clients call fhirtis at (behind a reverse proxy).

A CDS client's JWT names the service it calls in ``aud`` (CDS Hooks 2.0, "Trusting CDS
Clients": "aud ... the CDS Service endpoint"). Without the setting, fhirtis compares it with the
URL of the request as it arrived, built from the ``Host`` header, which the caller chooses. With
it, the audience is the configured public address, whatever Host the request carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fhirtis.settings import ServiceSettings
from tests.api.test_cds_hooks import SIGN
from tests.api.test_security import BASE, app_client, cds_jwt, hook_call, validate_mode

PUBLIC = "https://cds.hospital.example/fhirtis"


async def test_the_public_address_is_the_audience_whatever_the_host(
    fhir_base: str, tmp_path: Path
) -> None:
    settings = validate_mode(tmp_path)
    async with app_client(fhir_base, public_base_url=PUBLIC + "/", **settings) as client:
        ok = {"Authorization": f"Bearer {cds_jwt(aud=PUBLIC + SIGN)}"}
        r = await client.post(SIGN, json=hook_call(fhir_base), headers=ok)
        assert r.status_code == 200, r.text
        # the URL built from this request's Host is no longer an audience fhirtis answers to
        host_made = {"Authorization": f"Bearer {cds_jwt(aud=BASE + SIGN)}"}
        r = await client.post(SIGN, json=hook_call(fhir_base), headers=host_made)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text


async def test_feedback_is_heard_at_the_public_address(fhir_base: str, tmp_path: Path) -> None:
    settings = validate_mode(tmp_path)
    body = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-01-01"}]}
    async with app_client(fhir_base, public_base_url=PUBLIC, **settings) as client:
        for aud, status in (
            (PUBLIC + SIGN + "/feedback", 200),
            (PUBLIC + SIGN, 200),  # the service's own URL, as for a feedback without it
            (BASE + SIGN + "/feedback", 401),
        ):
            headers = {"Authorization": f"Bearer {cds_jwt(aud=aud)}"}
            r = await client.post(SIGN + "/feedback", json=body, headers=headers)
            assert r.status_code == status, (aud, r.text)


async def test_without_the_setting_the_request_url_is_the_audience(
    fhir_base: str, tmp_path: Path
) -> None:
    async with app_client(fhir_base, **validate_mode(tmp_path)) as client:
        r = await client.post(
            SIGN,
            json=hook_call(fhir_base),
            headers={"Authorization": f"Bearer {cds_jwt(aud=BASE + SIGN)}"},
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "value",
    [
        "cds.hospital.example",
        "ftp://cds.hospital.example",
        "https://h.example/x?y=1",
        "https://h.example/#f",
        "https://",
    ],
)
def test_a_public_base_url_is_an_http_url_without_query(value: str) -> None:
    with pytest.raises(ValidationError, match="public_base_url"):
        ServiceSettings(public_base_url=value)
