"""A FHIR server that refuses every token fhirtis gets (SMART Backend Services).

SMART Backend Services (hl7.org/fhir/smart-app-launch/backend-services.html, "Obtain access
token" and "Access FHIR API") has a client reuse its token until it expires; fhirtis also gets
a new one once after a 401, for a token revoked early. When the token just fetched is refused
401 too, the 401 is not about the token's age: an `aud` the resource server does not accept, a
token issued by another tenant's authorization server (Oracle Health: `403/401 Tenant not valid
or accessible`), or the resource server's clock behind the token's `nbf`/`iat`. Every later
request then got a 401, asked the token endpoint for yet another token and sent the request
twice: one token request per FHIR request for a whole cohort run. After one refresh that did not
help, a 401 is final until that token expires; a token refused after it was accepted (revoked)
is still replaced once.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, SmartBackendAuth, Unauthorized
from tests.io._support import BASE, TOKEN_URL, FakeTime, patient, token_response


class RefusingServer(httpx.AsyncBaseTransport):
    """A token endpoint issuing at-1, at-2, …; a FHIR server that refuses every token until
    ``accept_from`` (a token number) is reached."""

    def __init__(self, accept_from: int | None = None) -> None:
        self.issued: list[str] = []
        self.fhir: list[str] = []
        self.accept_from = accept_from

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            token = f"at-{len(self.issued) + 1}"
            self.issued.append(token)
            return httpx.Response(200, json=token_response(token, 3600))
        header = request.headers.get("Authorization", "")
        self.fhir.append(header)
        number = int(header.rsplit("-", 1)[-1]) if header.startswith("Bearer at-") else 0
        if self.accept_from is None or number < self.accept_from:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        pid = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json=patient(int(pid.removeprefix("p"))))


async def test_a_refresh_that_did_not_help_is_not_repeated_for_every_request(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    server = RefusingServer()
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as fhir,
    ):
        for i in range(5):
            with pytest.raises(Unauthorized):
                await fhir.read("Patient", f"p{i}")
    # the first token, one refresh after its 401; then the 401s are final
    assert server.issued == ["at-1", "at-2"], server.issued
    assert server.fhir == ["Bearer at-1", "Bearer at-2"] + ["Bearer at-2"] * 4


async def test_the_token_after_expiry_gets_its_own_refresh_again(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    server = RefusingServer(accept_from=4)
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as fhir,
    ):
        with pytest.raises(Unauthorized):
            await fhir.read("Patient", "p1")
        with pytest.raises(Unauthorized):
            await fhir.read("Patient", "p2")
        fake_time.advance(3600)  # at-2 has expired: a new token, and one refresh after a 401
        assert (await fhir.read("Patient", "p3"))["id"] == "p3"
    assert server.issued == ["at-1", "at-2", "at-3", "at-4"], server.issued


async def test_a_token_revoked_after_it_was_accepted_is_still_replaced(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    server = RefusingServer(accept_from=2)
    async with (
        httpx.AsyncClient(transport=server) as http,
        FhirClient(smart_config(token_url=TOKEN_URL), http=http, timing=fake_time.timing()) as fhir,
    ):
        assert (await fhir.read("Patient", "p1"))["id"] == "p1"  # at-1 refused, at-2 accepted
        server.accept_from = 3  # at-2 revoked
        assert (await fhir.read("Patient", "p2"))["id"] == "p2"
    assert server.issued == ["at-1", "at-2", "at-3"]


def test_the_sync_driver_stops_too(
    smart_config: Callable[..., FhirClientConfig], fake_time: FakeTime
) -> None:
    issued: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            issued.append(f"at-{len(issued) + 1}")
            return httpx.Response(200, json=token_response(issued[-1], 3600))
        return httpx.Response(401)

    auth = SmartBackendAuth.from_config(
        smart_config(token_url=TOKEN_URL), clock=fake_time.timing().time
    )
    with httpx.Client(auth=auth, transport=httpx.MockTransport(handle)) as client:
        statuses = [client.get(f"{BASE}/Patient/p{i}").status_code for i in range(4)]
    assert statuses == [401] * 4
    assert issued == ["at-1", "at-2"]
