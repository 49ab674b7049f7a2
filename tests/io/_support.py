"""Test helpers for the FHIR I/O tests: fake time, Bundles, token responses."""

from __future__ import annotations

from typing import Any

from fhirtis.io import Timing

BASE = "https://fhir.example.org/r4"
TOKEN_URL = "https://auth.example.org/oauth2/token"
WELL_KNOWN = f"{BASE}/.well-known/smart-configuration"
START_WALL = 1_750_000_000.0

# Redox's FHIR API when the EHR behind it failed: 200 OK, the errors in ``issue``
# (docs.redoxengine.com, "Responding to queries", partial error)
REDOX_FAILED: dict[str, Any] = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "exception",
            "diagnostics": "The destination returned an error.",
        }
    ],
}


class FakeTime:
    """Records requested sleeps and advances both clocks by them; never really sleeps."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.mono = 1000.0
        self.wall = START_WALL
        self.rand = 0.5

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def timing(self) -> Timing:
        return Timing(
            sleep=self.sleep,
            random=lambda: self.rand,
            monotonic=lambda: self.mono,
            time=lambda: self.wall,
        )


def patient(i: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i}"}


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
        "link": [{"relation": "self", "url": f"{BASE}/Patient"}],
    }
    if next_url is not None:
        bundle["link"].append({"relation": "next", "url": next_url})
    return bundle


def token_response(token: str, expires_in: int = 300) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "system/Observation.rs",
    }
