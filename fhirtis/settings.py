"""Every knob of fhirtis, from environment variables and an optional settings file.

Environment variables have the prefix ``FHIRTIS_`` and ``__`` between nested names, e.g.
``FHIRTIS_POLICY__CYCLE_GAP_DAYS=10``, ``FHIRTIS_FHIR__BASE_URL=https://ehr.example.org/fhir``,
``FHIRTIS_CONCEPT_MAP=site/conceptmap.json``. A settings file (TOML or JSON) is named by
``FHIRTIS_SETTINGS_FILE`` or the CLI's ``--settings``; environment variables override it.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fhirtis.clinical.policy import Policy
from fhirtis.io._config import FhirClientConfig


class ServiceSettings(BaseModel):
    """The HTTP service (``fhirtis serve``): who may call it and which FHIR servers it talks to.

    ``auth_mode``:
    - ``pass-through``: the caller's bearer token (a SMART access token of the EHR) is used to
      read the EHR's FHIR server, so the EHR's own access control decides;
    - ``validate``: the service validates the token itself (signature against ``jwks``/
      ``jwks_path``, ``issuer``, ``audience``, expiry, SMART scopes, patient context) and reads
      with its own backend-services credentials (``fhir``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    auth_mode: Literal["pass-through", "validate"] = "pass-through"
    issuer: str | None = None
    audience: str | None = None
    jwks: str | None = Field(None, description="a JWKS as JSON text")
    jwks_path: Path | None = Field(None, description="a file holding the JWKS")
    allowed_fhir_servers: list[str] = Field(
        default_factory=list,
        description="FHIR base URLs the service may talk to; the first is the default. Empty: "
        "only fhir.base_url.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


_settings_file: ContextVar[str | None] = ContextVar("fhirtis_settings_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FHIRTIS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    policy: Policy = Field(default_factory=Policy, description="clinical choices (DOMAIN.md)")
    concept_map: Path | None = Field(
        None, description="ConceptMap (R4 JSON) from a site's local codes to fhirtis's codes"
    )
    default_uln: dict[str, Decimal] = Field(
        default_factory=dict,
        description="upper limit of normal (U/L) per enzyme (ck, aldolase, ldh, ast, alt), used "
        "when an Observation has no referenceRange.high",
    )
    fhir: FhirClientConfig | None = Field(None, description="the FHIR server to read and write")
    service: ServiceSettings = Field(default_factory=ServiceSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        file = _settings_file.get() or os.environ.get("FHIRTIS_SETTINGS_FILE")
        if file:
            path = Path(file)
            if path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                sources.append(JsonConfigSettingsSource(settings_cls, json_file=path))
        return tuple(sources)


def load_settings(settings_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, the settings file and explicit overrides (which win)."""
    if settings_file is not None and not settings_file.is_file():
        raise FileNotFoundError(f"settings file {settings_file} not found")
    token = _settings_file.set(str(settings_file) if settings_file is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _settings_file.reset(token)
