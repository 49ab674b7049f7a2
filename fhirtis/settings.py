"""Every knob of fhirtis, from environment variables and an optional settings file.

Environment variables have the prefix ``FHIRTIS_`` and ``__`` between nested names, e.g.
``FHIRTIS_POLICY__CYCLE_GAP_DAYS=10``, ``FHIRTIS_FHIR__BASE_URL=https://ehr.example.org/fhir``,
``FHIRTIS_CONCEPT_MAP=site/conceptmap.json``. A settings file (TOML or JSON) is named by
``FHIRTIS_SETTINGS_FILE`` or the CLI's ``--settings``; environment variables override it.
A relative path inside a settings file (``concept_map``, ``service.jwks_path``,
``fhir.private_key_path``, …) is relative to that file's folder, so a settings file works from
any working directory; a relative path in an environment variable is relative to the working
directory.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fhirtis.clinical.policy import Policy
from fhirtis.io import FhirClientConfig, TerminologyConfig

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


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
    max_body_bytes: int = Field(
        10_000_000, ge=1, description="larger request bodies are answered 413, unread"
    )
    max_requests_in_flight: int = Field(
        32,
        ge=1,
        le=10_000,
        description="requests held at once (each holds its body while it waits for the FHIR "
        "server or an evaluation thread); past it a request is answered 503 with Retry-After, "
        "unread. /livez, /readyz and /metrics are never refused",
    )
    fhir_wait_seconds: float = Field(
        25.0,
        gt=0,
        le=600,
        description="the longest the service waits on the FHIR server for one request, retries "
        "included (it caps fhir.read_timeout_seconds, fhir.retry_budget_seconds and "
        "fhir.request_deadline_seconds for the service): a hanging FHIR server is answered 504 "
        "within 30 s by default",
    )
    evaluation_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="reading and evaluating one patient ($myositis-evaluate) longer than this "
        "is answered 504, and fetching stops (a CDS call has its own cds.deadline_seconds)",
    )
    allow_policy_override_on_write: bool = Field(
        False,
        description="whether a request may change a policy value (a clinical choice) and write "
        "the result (write=true); no request can raise the label's maximum infusion rates",
    )
    frame_ancestors: list[str] = Field(
        default_factory=list,
        description="the EHR origins allowed to embed the clinician's page (CSP frame-ancestors); "
        "empty: none",
    )

    cors_origins: list[str] = Field(
        default_factory=list,
        description="the browser origins (browser-based CDS clients, SMART apps served "
        "elsewhere) allowed to call the service cross-origin (CORS, answered to these origins "
        "only, without credentials: callers send bearer tokens, not cookies); empty: none",
    )

    @field_validator("frame_ancestors", "cors_origins")
    @classmethod
    def _origins(cls, values: list[str], info: ValidationInfo) -> list[str]:
        for value in values:
            if not _ORIGIN.fullmatch(value):
                raise ValueError(
                    f"{info.field_name} holds origins such as https://ehr.example.org (scheme, "
                    "host and optional port; no path, wildcard, spaces or quotes)"
                )
        return values

    docs_enabled: bool = Field(
        True, description="serve /docs (its assets served by fhirtis itself) and /openapi.json"
    )
    public_base_url: str | None = Field(
        None,
        description="the address callers reach the service at (e.g. https://cds.example.org/"
        "fhirtis behind a reverse proxy): a CDS client's JWT must name a service under it in "
        "aud; unset, the URL the request arrived at (its Host header) is used",
    )

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.netloc
            or parts.query
            or (parts.fragment or "#" in value or "?" in value)
        ):
            raise ValueError(
                "public_base_url is an http(s) URL such as https://cds.example.org/fhirtis "
                "(no query or fragment)"
            )
        return value.rstrip("/")


class TrustedCdsClient(BaseModel):
    """A CDS client (an EHR) whose signed JWTs the CDS services accept: its ``iss`` and its
    public keys, a JWKS at ``jwks_url`` or in the file ``jwks_path``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iss: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks_path: Path | None = None
    max_token_lifetime_seconds: int = Field(default=900, ge=1, le=86_400)
    """The furthest ahead a JWT's ``exp`` may be when it arrives (30 s more for clock skew).
    CDS Hooks 2.0 sets no maximum; Epic documents 15-minute tokens, hence 900. A JWT id is
    remembered (replay) until its ``exp``: a shorter lifetime keeps that record shorter."""

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedCdsClient:
        if (self.jwks_url is None) == (self.jwks_path is None):
            raise ValueError("a trusted CDS client needs exactly one of jwks_url and jwks_path")
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        return self


class CdsSettings(BaseModel):
    """CDS Hooks (``/cds-services``): the trusted CDS clients (CDS Hooks 2.0, "Trusting CDS
    Clients"). In ``validate`` mode every service call must carry a JWT of one of them; in
    ``pass-through`` mode too when any is configured. Discovery stays public."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted_clients: list[TrustedCdsClient] = Field(default_factory=list)
    deadline_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="the longest one CDS service call may take, from its arrival: the reads "
        "of what prefetch lacked (every stage: the searches, the Medications and Devices "
        "their _include did not bring, the ingredients' Substances), the terminology server "
        "and the start of the evaluation. At the deadline the reads in flight are cancelled "
        "and the call is answered 504 (fhir-server-timeout while waiting on the FHIR server, "
        "else timeout), also while the evaluation runs (it runs off the event loop; its "
        "result is then dropped); an evaluation is not started after it. CDS Hooks 2.0: "
        "services SHOULD "
        "respond on the order of 500 ms; set it to the EHR's own CDS timeout, or just under",
    )


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if get_origin(annotation) in {Union, types.UnionType}:
        return any(_is_path(a) for a in get_args(annotation))
    return False


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = get_args(annotation) if get_origin(annotation) in {Union, types.UnionType} else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _resolve_paths(model: type[BaseModel], values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``values`` (read from a settings file in ``folder``) with every relative path made
    relative to ``folder``; walks nested models by their field annotations."""
    out = dict(values)
    for name, field in model.model_fields.items():
        value = out.get(name)
        if value is None:
            continue
        if _is_path(field.annotation) and isinstance(value, str | Path):
            path = Path(value).expanduser()
            out[name] = path if path.is_absolute() else folder / path
        elif (sub := _model_of(field.annotation)) is not None and isinstance(value, dict):
            out[name] = _resolve_paths(sub, value, folder)
        elif (
            get_origin(field.annotation) is list
            and (sub := _model_of(get_args(field.annotation)[0])) is not None
            and isinstance(value, list)
        ):  # e.g. cds.trusted_clients[].jwks_path
            out[name] = [
                _resolve_paths(sub, v, folder) if isinstance(v, dict) else v for v in value
            ]
    return out


class _FileRelativePaths(PydanticBaseSettingsSource):
    """A settings-file source whose relative paths are relative to the file."""

    def __init__(
        self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource, folder: Path
    ):
        super().__init__(settings_cls)
        self._inner = inner
        self._folder = folder

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        return _resolve_paths(self.settings_cls, self._inner(), self._folder)


class _EnvListsAsText(EnvSettingsSource):
    """The environment, where a list or tuple value that is not JSON is passed on as its text
    for the model to read: ``FHIRTIS_POLICY__ENZYME_TIE_ORDER=ldh,ck,aldolase,ast,alt``, the
    comma form a result's policy block reports (the policy splits it, and checks it as any
    value). pydantic-settings would refuse it with "error parsing value for field policy"."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


_settings_file: ContextVar[str | None] = ContextVar("fhirtis_settings_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FHIRTIS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    policy: Policy = Field(default_factory=Policy, description="clinical choices (clinical spec)")
    concept_map: Path | None = Field(
        None, description="ConceptMap (R4 JSON) from a site's local codes to fhirtis's codes"
    )
    default_uln: dict[str, Decimal] = Field(
        default_factory=dict,
        description="upper limit of normal (U/L) per enzyme (ck, aldolase, ldh, ast, alt), used "
        "when an Observation has no referenceRange.high",
    )
    fhir: FhirClientConfig | None = Field(None, description="the FHIR server to read and write")
    terminology: TerminologyConfig | None = Field(
        None,
        description="a FHIR terminology server asked ($subsumes) about SNOMED CT codes the "
        "shipped ValueSet expansions do not list (FHIRTIS_TERMINOLOGY__BASE_URL)",
    )
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    cds: CdsSettings = Field(default_factory=CdsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # replaced by _EnvListsAsText
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvListsAsText(settings_cls)]
        file = _settings_file.get() or os.environ.get("FHIRTIS_SETTINGS_FILE")
        if file:
            path = Path(file)
            inner: PydanticBaseSettingsSource = (
                TomlConfigSettingsSource(settings_cls, toml_file=path)
                if path.suffix == ".toml"
                else JsonConfigSettingsSource(settings_cls, json_file=path)
            )
            sources.append(_FileRelativePaths(settings_cls, inner, path.resolve().parent))
        return tuple(sources)


def load_settings(settings_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, the settings file and explicit overrides (which win).

    The settings file (``settings_file``, else ``FHIRTIS_SETTINGS_FILE``) must be there: one
    that is not is FileNotFoundError, never the defaults in its place. A file that cannot be
    read or parsed is ValueError naming it."""
    if settings_file is not None and not settings_file.is_file():
        raise FileNotFoundError(f"settings file {settings_file} not found")
    named = os.environ.get("FHIRTIS_SETTINGS_FILE")
    if settings_file is None and named and not Path(named).is_file():
        raise FileNotFoundError(f"settings file {named} not found (FHIRTIS_SETTINGS_FILE)")
    unknown = unknown_environment(os.environ)
    if unknown:
        raise ValueError("; ".join(unknown))
    file = str(settings_file) if settings_file is not None else named or None
    token = _settings_file.set(str(settings_file) if settings_file is not None else None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(exc) from None
    except (OSError, ValueError) as exc:  # the file's bytes: TOML, JSON, UTF-8; unreadable
        if file is None:
            raise
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"settings file {file}: {why}") from None
    finally:
        _settings_file.reset(token)


#: ``FHIRTIS_`` variables that are not settings: the settings file's name, the clinician's
#: page's client id (fhirtis.api.web), the switch that validates every written resource
#: (fhirtis.fhir.validation)
NOT_SETTINGS = frozenset({"FHIRTIS_SETTINGS_FILE", "FHIRTIS_APP_CLIENT_ID", "FHIRTIS_VALIDATE"})


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """A line for each ``FHIRTIS_`` variable of ``environ`` that names no setting section
    (``FHIRTIS_POLICY_CYCLE_GAP_DAYS``, one underscore where two are needed; ``FHIRTIS_POLCY__…``),
    which pydantic-settings passes over without a word: the run would go on with the default
    in its place (a site's lower maximum infusion rate among them). A misspelt name inside a
    section is already refused (``extra="forbid"``). Names only, never values."""
    fields = set(Settings.model_fields)
    lines = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("FHIRTIS_") or upper in NOT_SETTINGS:
            continue
        rest = upper.removeprefix("FHIRTIS_")
        head = rest.split("__", 1)[0].lower()
        if head in fields:
            continue
        line = f"{name}: not a setting (FHIRTIS_SECTION__NAME, two underscores between"
        section = next((f for f in sorted(fields) if head.startswith(f + "_")), None)
        if section is not None and "__" not in rest:
            line += f"; did you mean FHIRTIS_{section.upper()}__{rest[len(section) + 1 :]}?)"
        else:
            line += ", e.g. FHIRTIS_POLICY__CYCLE_GAP_DAYS)"
        lines.append(line)
    return lines


class SettingsError(ValueError):
    """Invalid settings, described by where and what is wrong, never by the values given (a
    settings error must not echo a token or a private key into a terminal or a log)."""

    def __init__(self, exc: ValidationError) -> None:
        lines = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(p) for p in err["loc"]) or "(settings)"
            lines.append(f"{where}: {err['msg']}")
        super().__init__(f"{len(lines)} invalid setting(s):\n" + "\n".join(lines))
