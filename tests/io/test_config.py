"""FhirClientConfig: defaults and validation."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from fhirtis import __version__
from fhirtis.io import FhirClientConfig
from tests.io._support import BASE


def test_defaults() -> None:
    config = FhirClientConfig(base_url=BASE + "/")
    assert config.base_url == BASE
    assert config.auth_mode == "none"
    assert config.page_size == 100
    assert config.retry_max_attempts == 5
    assert config.concurrency == 8
    assert config.alg == "RS384"
    assert config.user_agent == f"fhirtis/{__version__}"
    assert config.timeout == httpx.Timeout(60.0, connect=5.0, pool=5.0)
    assert type(config).__mro__[1] is BaseModel  # plain BaseModel, nestable in settings


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://fhir.example.org/r4",
        "https://fhir.example.org/r4?x=1",
        "https://user:pw@fhir.example.org/r4",
        "fhir.example.org/r4",
    ],
)
def test_bad_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(ValidationError):
        FhirClientConfig(base_url=base_url)


def test_bearer_needs_a_token_and_hides_it() -> None:
    with pytest.raises(ValidationError, match="bearer_token"):
        FhirClientConfig(base_url=BASE, auth_mode="bearer")
    config = FhirClientConfig(base_url=BASE, auth_mode="bearer", bearer_token="t0ken")
    assert "t0ken" not in repr(config)
    assert "t0ken" not in config.model_dump_json()


def test_smart_needs_its_fields() -> None:
    with pytest.raises(ValidationError, match="client_id, kid, scope"):
        FhirClientConfig(base_url=BASE, auth_mode="smart-backend", private_key_pem="x")
    with pytest.raises(ValidationError, match="exactly one"):
        FhirClientConfig(
            base_url=BASE, auth_mode="smart-backend", client_id="c", kid="k", scope="s"
        )
    with pytest.raises(ValidationError, match="alg"):
        FhirClientConfig(base_url=BASE, alg="HS256")
    with pytest.raises(ValidationError, match="token_url"):
        FhirClientConfig(base_url=BASE, token_url="/token")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        FhirClientConfig(base_url=BASE, page_sise=10)  # type: ignore[call-arg]
