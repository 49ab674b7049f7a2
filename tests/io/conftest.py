"""Shared fixtures for the FHIR I/O tests: fake time, configs, signing keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from pydantic import SecretStr

from fhirtis.io import FhirClientConfig, SigningAlg
from tests.io._support import BASE, FakeTime


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_config() -> Callable[..., FhirClientConfig]:
    def make(**overrides: Any) -> FhirClientConfig:
        values: dict[str, Any] = {"base_url": BASE}
        values.update(overrides)
        return FhirClientConfig(**values)

    return make


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384")


@pytest.fixture
def smart_config(rsa_key: RSAKey, ec_key: ECKey) -> Callable[..., FhirClientConfig]:
    def make(alg: SigningAlg = "RS384", **overrides: Any) -> FhirClientConfig:
        key = rsa_key if alg == "RS384" else ec_key
        values: dict[str, Any] = {
            "base_url": BASE,
            "auth_mode": "smart-backend",
            "client_id": "fhirtis-test",
            "kid": f"kid-{alg}",
            "alg": alg,
            "scope": "system/Observation.rs system/Observation.cu",
            "private_key_pem": SecretStr(key.as_pem(private=True).decode()),
        }
        values.update(overrides)
        return FhirClientConfig(**values)

    return make
