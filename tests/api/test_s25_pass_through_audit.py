"""Who called, in pass-through mode's audit line.

In pass-through mode the caller's token is the EHR's (fhirtis forwards it to the FHIR server and
never validates it), so the audit line said only ``{"verified": false}``: an auditor could not
tell one caller from another. The line now carries a fingerprint of the token (the first 16 hex
digits of its SHA-256, which the EHR's authorization server can compute for the tokens it
issued; the token itself is never written), and, for a JWT, the ``sub``, ``client_id`` and
``iss`` it claims, marked unverified."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import orjson
import pytest

from tests.api.test_security import OP, app_client
from tests.e2e.test_run import load
from tests.fhir.patients import responder


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, object]) -> str:
    header = _b64(orjson.dumps({"alg": "RS384", "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(claims))}.{_b64(b'not-a-real-signature')}"


async def _audit_of(fhir_base: str, token: str, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    load(fhir_base, responder())
    caplog.set_level("INFO", logger="fhirtis.audit")
    async with app_client(fhir_base) as client:
        r = await client.post(OP, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    (record,) = [r for r in caplog.records if r.name == "fhirtis.audit"]
    logged = record.getMessage() + json.dumps(record.audit)  # type: ignore[attr-defined]
    assert token not in logged
    return record.audit  # type: ignore[attr-defined,no-any-return]


async def test_an_opaque_token_is_named_by_its_fingerprint(
    fhir_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = "epic-opaque-token-0123456789abcdef"
    audit = await _audit_of(fhir_base, token, caplog)
    assert audit["who"] == {
        "verified": False,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:16],
    }


async def test_a_jwt_is_named_by_what_it_claims_marked_unverified(
    fhir_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = unsigned_jwt(
        {"sub": "dr-who", "client_id": "smart-app", "iss": "https://ehr.test", "patient": "p1"}
    )
    audit = await _audit_of(fhir_base, token, caplog)
    assert audit["who"] == {
        "verified": False,
        "sub": "dr-who",
        "client_id": "smart-app",
        "iss": "https://ehr.test",
        "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:16],
    }


@pytest.mark.parametrize(
    "token",
    [
        "a.b.c",  # three parts, none JSON
        f"{_b64(b'{}')}.{_b64(b'[1, 2]')}.sig",  # claims not an object
        f"{_b64(b'{}')}.{_b64(orjson.dumps({'sub': 'x' * 300}))}.sig",  # too long to log
        f"{_b64(b'{}')}.{_b64(orjson.dumps({'sub': 7}))}.sig",  # not a string
    ],
)
async def test_a_token_whose_claims_cannot_be_read_is_named_by_its_fingerprint_only(
    fhir_base: str, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    audit = await _audit_of(fhir_base, token, caplog)
    assert set(audit["who"]) == {"verified", "token_sha256"}
