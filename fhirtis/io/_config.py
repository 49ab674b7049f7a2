"""Configuration of the FHIR client: a plain pydantic model, nested later in the settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fhirtis import __version__
from fhirtis.io import _urls

AuthMode = Literal["none", "bearer", "smart-backend", "client-secret"]
SigningAlg = Literal["RS384", "ES384"]

_SENDABLE_TOKEN = re.compile(r"[\x21-\x7e]+").fullmatch
UNSENDABLE_TOKEN = (
    "is not a token that can be sent in an Authorization header (visible ASCII characters "
    "only, RFC 6750)"
)


def sendable_token(token: str) -> str | None:
    """``token`` as it is sent (``Authorization: Bearer``): without the whitespace around it
    (the final newline of a secret file, or of an environment variable set from one); None
    where what is left cannot be sent in an HTTP header. Such a token must be refused before
    it is sent: httpx's error for an illegal header value quotes the whole header, token
    included, into every traceback and log that shows the error."""
    stripped = token.strip()
    return stripped if _SENDABLE_TOKEN(stripped) else None


def checked_token(value: SecretStr | None) -> SecretStr | None:
    """A configured bearer token, :func:`sendable_token`; None for an empty one (an environment
    variable set to nothing); ValueError (which never carries the token) for one that cannot be
    sent."""
    if value is None or not value.get_secret_value().strip():
        return None
    token = sendable_token(value.get_secret_value())
    if token is None:
        raise ValueError(UNSENDABLE_TOKEN)
    return SecretStr(token)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


def checked_identifier(value: str | None, name: str) -> str | None:
    """A client id or key id as it is sent: without the whitespace around it (the final
    newline of a secret file, or of an environment variable set from one, as a Kubernetes
    Secret made from a file gives it); None when nothing is left. ValueError naming the setting,
    never the value, for a control character inside it (a line break between two values)."""
    if value is None:
        return None
    stripped = value.strip()
    if _CONTROL(stripped):
        raise ValueError(
            f"{name} holds a control character (a line break?) inside it; give the value alone"
        )
    return stripped or None


def checked_scope(value: str | None) -> str | None:
    """OAuth scopes as they are sent: scope-tokens separated by single spaces (RFC 6749 §3.3),
    so a line end, or a line break between scopes (a TOML multi-line string), is no part of a
    scope; None when there is none."""
    if value is None:
        return None
    return " ".join(value.split()) or None


class FhirClientConfig(BaseModel):
    """Everything a site may change about talking to its FHIR server.

    ``auth_mode``:
    - ``none``: no Authorization header;
    - ``bearer``: a static ``bearer_token`` (e.g. passed through from a caller);
    - ``smart-backend``: SMART Backend Services (client_credentials + private_key_jwt), needing
      ``client_id``, ``kid``, ``scope`` and one of ``private_key_pem`` / ``private_key_path``;
      ``token_url`` is discovered from ``{base_url}/.well-known/smart-configuration`` if unset;
    - ``client-secret``: OAuth 2.0 client credentials with a client secret sent as HTTP Basic
      (RFC 6749 §2.3.1, §4.4; Azure Health Data Services through Microsoft Entra ID, Medplum,
      Oracle Health system accounts), needing ``client_id``, ``scope`` and one of
      ``client_secret`` / ``client_secret_path``; ``token_url`` discovered as above if unset.
    """

    # an invalid value is never echoed in an error: it may be a token, a secret or a key
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str

    auth_mode: AuthMode = "none"
    bearer_token: SecretStr | None = None
    client_id: str | None = None
    private_key_pem: SecretStr | None = None
    private_key_path: Path | None = None
    client_secret: SecretStr | None = None
    client_secret_path: Path | None = None
    kid: str | None = None
    alg: SigningAlg = "RS384"
    scope: str | None = None
    token_url: str | None = None

    page_size: int = Field(default=100, ge=1, le=10_000, description="default _count")
    max_response_bytes: int = Field(
        default=100_000_000,
        ge=1,
        description="a larger answer (a page, a batch response) is refused as it arrives, "
        "never read whole",
    )
    max_pages_per_search: int = Field(
        default=1000, ge=1, description="a search with more pages than this is stopped"
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=60.0, gt=0)

    retry_max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_base_seconds: float = Field(default=0.5, gt=0)
    retry_backoff_max_seconds: float = Field(default=30.0, gt=0)
    retry_budget_seconds: float = Field(default=120.0, ge=0)
    request_deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        description="the longest one request may take, retries included: its connection, token, "
        "waits and answer (a stream's until its headers). The timeouts alone bound no request: "
        "an answer trickling in never passes the read timeout, and a retry started within the "
        "budget may then wait its whole read timeout. Unset: no deadline (the service sets it "
        "to service.fhir_wait_seconds)",
    )

    concurrency: int = Field(default=8, ge=1, le=256)
    max_requests_per_second: float | None = Field(
        default=None, gt=0, description="never send more requests than this per second"
    )

    bulk_poll_interval_seconds: float = Field(
        default=5.0, gt=0, description="first wait between $export status polls without Retry-After"
    )
    bulk_poll_max_interval_seconds: float = Field(
        default=120.0, gt=0, description="cap of the growing wait between status polls"
    )
    bulk_budget_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="total time to wait for an $export to complete"
    )
    user_agent: str = f"fhirtis/{__version__}"

    write_base_url: str | None = Field(
        default=None,
        description="send derived resources to this FHIR server instead of base_url (e.g. a "
        "registry's own store); reads stay on base_url. Same idempotence; the same auth settings "
        "are used against it, unless write_auth_mode, write_scope or write_token_url say otherwise",
    )
    write_auth_mode: AuthMode | None = Field(
        default=None,
        description="how fhirtis authenticates to write_base_url (e.g. none for a registry store "
        "that takes no credentials); unset: auth_mode. The client (client_id, key, secret) is "
        "the same",
    )
    write_scope: str | None = Field(
        default=None,
        description="the scopes asked for write_base_url's token (e.g. {write fhirurl}/.default "
        "for a second Azure FHIR service, its own audience); unset: scope",
    )
    write_token_url: str | None = Field(
        default=None,
        description="write_base_url's token endpoint; unset: discovered from write_base_url "
        "(its .well-known/smart-configuration), never base_url's token_url",
    )
    equivalent_origins: list[str] = Field(
        default_factory=list,
        description="other origins of the same server (scheme://host[:port]) that its search "
        "next links, Bulk Data status URLs and token-protected file URLs may use, e.g. "
        "http://127.0.0.1:8080 for a server configured as localhost, "
        "or an internal base behind a gateway; such a link is fetched from base_url's origin "
        "(same path and query), so the token never leaves it",
    )
    max_bundle_entries: int | None = Field(
        default=None,
        ge=1,
        description="the most entries of one transaction or batch Bundle of writes (FHIR Works "
        "on AWS takes 25 a transaction, Azure's FHIR services 500 a Bundle); a patient's larger "
        "write is sent in parts of at most this many, no longer atomic, then its Provenance. "
        "Unset: no limit, until the server refuses a Bundle for its number of entries",
    )
    capabilities_ttl_seconds: float = Field(
        default=3600.0, ge=0, description="how long a server's CapabilityStatement is cached"
    )

    @field_validator("bearer_token")
    @classmethod
    def _check_bearer_token(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_token(value)

    @field_validator("client_id", "kid")
    @classmethod
    def _check_identifier(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_identifier(value, str(info.field_name))

    @field_validator("scope", "write_scope")
    @classmethod
    def _check_scope(cls, value: str | None) -> str | None:
        return checked_scope(value)

    @field_validator("write_base_url")
    @classmethod
    def _check_write_base_url(cls, value: str | None) -> str | None:
        return None if value is None else str(_urls.normalize_base(value))

    @field_validator("equivalent_origins")
    @classmethod
    def _check_equivalent_origins(cls, value: list[str]) -> list[str]:
        return [_urls.origin_text(_urls.normalize_base(v)) for v in value]

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return str(_urls.normalize_base(value))

    @field_validator("token_url", "write_token_url")
    @classmethod
    def _check_token_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = httpx.URL(value)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("a token URL must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _check_bulk(self) -> Self:
        if self.bulk_poll_max_interval_seconds < self.bulk_poll_interval_seconds:
            raise ValueError(
                "bulk_poll_max_interval_seconds must not be less than bulk_poll_interval_seconds"
            )
        return self

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if self.auth_mode == "bearer" and self.bearer_token is None:
            raise ValueError("auth_mode 'bearer' needs bearer_token")
        if self.auth_mode == "smart-backend":
            missing = [name for name in ("client_id", "kid", "scope") if not getattr(self, name)]
            if missing:
                raise ValueError(f"auth_mode 'smart-backend' needs {', '.join(missing)}")
            if (self.private_key_pem is None) == (self.private_key_path is None):
                raise ValueError(
                    "auth_mode 'smart-backend' needs exactly one of private_key_pem, "
                    "private_key_path"
                )
        if self.auth_mode == "client-secret":
            missing = [name for name in ("client_id", "scope") if not getattr(self, name)]
            if missing:
                raise ValueError(f"auth_mode 'client-secret' needs {', '.join(missing)}")
            if (self.client_secret is None) == (self.client_secret_path is None):
                raise ValueError(
                    "auth_mode 'client-secret' needs exactly one of client_secret, "
                    "client_secret_path"
                )
        return self

    @model_validator(mode="after")
    def _check_write_auth(self) -> Self:
        settings = ("write_auth_mode", "write_scope", "write_token_url")
        named = [n for n in settings if getattr(self, n)]
        if not named:
            return self
        if self.write_base_url is None or self.write_base_url == self.base_url:
            raise ValueError(
                f"{', '.join(named)}: the settings of a separate write server, which needs "
                "write_base_url (another server than base_url)"
            )
        try:
            FhirClientConfig.model_validate(self.for_writes().model_dump())
        except ValidationError as exc:
            why = "; ".join(
                str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors(include_url=False, include_input=False, include_context=False)
            )
            raise ValueError(
                f"the write server (write_base_url, auth_mode {self.for_writes().auth_mode!r}): "
                f"{why} (its scope is write_scope, else scope)"
            ) from None
        return self

    @property
    def base(self) -> httpx.URL:
        return httpx.URL(self.base_url)

    @property
    def aliases(self) -> tuple[httpx.URL, ...]:
        """The equivalent origins, as URLs."""
        return tuple(httpx.URL(o) for o in self.equivalent_origins)

    def for_writes(self) -> FhirClientConfig:
        """The configuration of the server derived resources go to."""
        if self.write_base_url is None or self.write_base_url == self.base_url:
            return self
        update: dict[str, object] = {
            "base_url": self.write_base_url,
            "write_base_url": None,
            "token_url": self.write_token_url,
            "write_auth_mode": None,
            "write_scope": None,
            "write_token_url": None,
        }
        if self.write_auth_mode is not None:
            update["auth_mode"] = self.write_auth_mode
        if self.write_scope is not None:
            update["scope"] = self.write_scope
        return self.model_copy(update=update)

    @property
    def timeout(self) -> httpx.Timeout:
        """Connect timeout for connecting and for waiting on the pool; read for the rest."""
        return httpx.Timeout(
            self.read_timeout_seconds,
            connect=self.connect_timeout_seconds,
            pool=self.connect_timeout_seconds,
        )
