"""The HTTP service: FHIR operations for SMART apps and EHRs (``fhirtis serve``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from fhirtis import __version__
from fhirtis.api import cds_hooks, ops, web
from fhirtis.api.access import (
    INSUFFICIENT_SCOPE,
    INVALID_TOKEN,
    Caller,
    TokenValidator,
    authorize,
    bearer_token,
)
from fhirtis.api.cds_hooks.trust import CdsChallenge
from fhirtis.api.errors import (
    FHIR_JSON,
    FHIR_JSON_UTF8,
    ApiError,
    FhirJSONResponse,
    GenericJsonAnswer,
    install_error_handlers,
    require_json_answer,
)
from fhirtis.api.evaluate import (
    EvaluateParameters,
    check_policy_override_on_write,
    parameters_from_body,
    parameters_from_query,
    parse_parameters,
    result_bundle,
)
from fhirtis.api.limits import BodyLimit, InFlightLimit
from fhirtis.api.ops import (
    HeadAsGet,
    Metrics,
    SecurityHeaders,
    Timer,
    audit,
    counting_client,
    who_of_claims,
    who_of_unverified_token,
)
from fhirtis.fhir.codes import profiles_dir
from fhirtis.fhir.plan import Action
from fhirtis.io import BearerTokenAuth, FhirClient, FhirClientConfig, normalize_base
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings, load_settings

log = logging.getLogger("fhirtis.api")
OPERATION = "myositis-evaluate"


class ServiceState:
    """What the service shares between requests: settings, HTTP connection pools (one per
    allow-listed FHIR server, so that a server that hangs holds only its own connections, and
    one for everything else: CDS clients' JWKS, the readiness check), the token validator, and
    (validate mode) one FHIR client per server with its cached backend token."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        service = settings.service
        allowed = list(service.allowed_fhir_servers)
        if not allowed and settings.fhir is not None:
            allowed = [settings.fhir.base_url]
        self.allowed = [str(normalize_base(u)) for u in allowed]
        self.validator = TokenValidator(service) if service.auth_mode == "validate" else None
        self._timeout = settings.fhir.timeout if settings.fhir else httpx.Timeout(30.0)
        self.http = counting_client(self.metrics, self._timeout)
        self._server_http: dict[str, httpx.AsyncClient] = {}
        self._backend_clients: dict[str, FhirClient] = {}

    def http_for(self, server: str) -> httpx.AsyncClient:
        """The connection pool for the allow-listed FHIR ``server`` (its token endpoint's
        requests included): made on first use, kept for the service's life. One pool for all
        servers let one that accepts connections and never answers take every connection while
        its callers waited, and the calls to the other servers then waited too."""
        http = self._server_http.get(server)
        if http is None:
            http = counting_client(self.metrics, self._timeout)
            self._server_http[server] = http
        return http

    def server_for(self, requested: str | None) -> str:
        if not self.allowed:
            raise ApiError(503, "no FHIR server is configured for the service")
        if requested is None:
            return self.allowed[0]
        try:
            wanted = str(normalize_base(requested))
        except Exception:
            raise ApiError(400, "server is not a valid URL", expression="server") from None
        if wanted not in self.allowed:
            raise ApiError(
                403, "that FHIR server is not on the service's allow-list", expression="server"
            )
        return wanted

    def config_for(self, server: str) -> FhirClientConfig:
        """The client configuration for ``server``: the settings' for the configured server,
        else the defaults; either way waiting on one request, retries included, is capped by
        ``service.fhir_wait_seconds`` (a caller is answered, 504, rather than kept waiting): the
        read timeout, the retry budget and the request's deadline (an answer trickling in
        passes no read timeout)."""
        fhir = self.settings.fhir
        config = fhir if fhir is not None and fhir.base_url == server else None
        config = config or FhirClientConfig(base_url=server)
        wait = self.settings.service.fhir_wait_seconds
        return config.model_copy(
            update={
                "read_timeout_seconds": min(config.read_timeout_seconds, wait),
                "retry_budget_seconds": min(config.retry_budget_seconds, wait),
                "request_deadline_seconds": min(config.request_deadline_seconds or wait, wait),
            }
        )

    def client_for(self, server: str, caller: Caller) -> tuple[FhirClient, bool]:
        """A FHIR client for ``server``, and whether the caller must close it."""
        config = self.config_for(server)
        if self.validator is None:
            auth = BearerTokenAuth(caller.token, base_url=server)
            return FhirClient(config, http=self.http_for(server), auth=auth), True
        client = self._backend_clients.get(server)
        if client is None:
            client = FhirClient(config, http=self.http_for(server))
            self._backend_clients[server] = client
        return client, False

    def caller(self, request: Request) -> Caller:
        token = bearer_token(request)
        if self.validator is not None:
            return self.validator.validate(token)
        return Caller(token)

    async def aclose(self) -> None:
        for client in self._backend_clients.values():
            await client.aclose()
        for http in self._server_http.values():
            await http.aclose()
        await self.http.aclose()


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.fhirtis
    return state


# FHIR's endpoints answer in JSON only: 406 when _format or Accept rules JSON out
router = APIRouter(dependencies=[Depends(require_json_answer)])


def capability_statement(state: ServiceState) -> dict[str, Any]:
    """What the service offers, and nothing it does not."""
    op = {
        "name": OPERATION,
        "definition": "http://fhirtis.org/fhir/OperationDefinition/myositis-evaluate",
        "documentation": "Evaluate one patient (TIS, deterioration, IVIG exposure, thrombosis) "
        "from the configured FHIR server; write=true writes the derived resources back.",
    }
    security: dict[str, Any] = {
        "cors": bool(state.settings.service.cors_origins),
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": (
            "Bearer tokens required. "
            + (
                "Tokens are validated by the service (issuer, audience, expiry, SMART scopes, "
                "patient context)."
                if state.validator is not None
                else "Tokens are passed through to the FHIR server, whose access control decides."
            )
        ),
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "kind": "instance",
        "software": {"name": "fhirtis", "version": __version__},
        "implementation": {"description": "fhirtis: myositis TIS and IVIG safety service"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": security,
                # a Patient operation only (OperationDefinition system false): never listed in
                # rest.operation, which is for system-level operations (R4 CapabilityStatement)
                "resource": [
                    {"type": "Patient", "operation": [op]},
                    # the operation's definition, read at /OperationDefinition/myositis-evaluate
                    {"type": "OperationDefinition", "interaction": [{"code": "read"}]},
                ],
            }
        ],
    }


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> JSONResponse:
    return FhirJSONResponse(capability_statement(_state(request)), media_type=FHIR_JSON_UTF8)


@router.get("/OperationDefinition/myositis-evaluate", summary="The operation's definition")
async def operation_definition() -> JSONResponse:
    path = profiles_dir() / "OperationDefinition-myositis-evaluate.json"
    return JSONResponse(json.loads(path.read_text()), media_type=FHIR_JSON_UTF8)


async def _evaluate(
    request: Request, patient_id: str, params: EvaluateParameters, server_header: str | None
) -> JSONResponse:
    """:func:`_evaluate_for`, timed, with its audit line (who, which patient, what, outcome)."""
    state = _state(request)
    who: dict[str, Any] = {"verified": False}
    status = 500
    try:
        with Timer(state.metrics, "evaluate"):
            caller = state.caller(request)
            who = (
                who_of_claims(caller.claims, verified=True)
                if caller.validated
                else who_of_unverified_token(caller.token)
            )
            response = await _evaluate_for(request, caller, patient_id, params, server_header)
        status = response.status_code
        return response
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        audit("write" if params.write else "evaluate", patient_id, who, status)


async def _evaluate_for(
    request: Request,
    caller: Caller,
    patient_id: str,
    params: EvaluateParameters,
    server_header: str | None,
) -> JSONResponse:
    state = _state(request)
    if params.server is not None and server_header is not None and params.server != server_header:
        raise ApiError(400, "server given twice, differently", expression="server")
    requested = params.server or server_header
    if params.patient_server is not None:  # an absolute reference names the Patient's server
        named = state.server_for(params.patient_server)  # 403 off the allow-list
        if requested is not None and state.server_for(requested) != named:
            raise ApiError(
                400,
                "parameter patient is a Patient on another FHIR server than the server named",
                expression="patient",
            )
        requested = named
    server = state.server_for(requested)
    authorize(caller, patient_id, write=params.write)
    if params.write and not caller.validated:
        _check_pass_through_write(state.config_for(server))
    policy = params.policy_over(state.settings.policy)  # 400: invalid, or a raised label limit
    if params.write and params.policy:
        check_policy_override_on_write(params, state.settings.service)
    settings = state.settings.model_copy(update={"policy": policy})
    client, owned = state.client_for(server, caller)
    budget = state.settings.service.evaluation_timeout_seconds
    try:
        async with asyncio.timeout(budget):  # on expiry the reads in flight are cancelled
            run = await run_patient(
                client, patient_id, settings, params.options(), write=params.write
            )
    except TimeoutError:
        raise ApiError(
            504,
            f"reading and evaluating the patient took longer than {budget:g} s "
            "(service.evaluation_timeout_seconds); stopped",
        ) from None
    finally:
        if owned:
            await client.aclose()
    log.info("evaluate Patient/%s: %s", patient_id, run.status.value)
    if run.status is RunStatus.NOT_FOUND:
        hint = run.error.removeprefix("patient not found") if run.error else ""
        raise ApiError(404, f"Patient/{patient_id} not found on the FHIR server{hint}")
    if run.status is RunStatus.FAILED and run.result is None:
        status = run.error_status or 502
        if status == 401 and caller.validated:
            # validate mode reads with fhirtis's own credentials: their refusal (a token
            # endpoint's invalid_client, a FHIR server's 401 to fhirtis's token) is a failure
            # upstream, not an invalid caller token (RFC 6750 §3.1: the caller would fetch a
            # new one and call again, to the same refusal)
            raise ApiError(
                502,
                f"the FHIR server refused fhirtis's own credentials (FHIRTIS_FHIR__AUTH_MODE "
                f"and its client settings): {run.error}",
                code="security",
            )
        if status >= 500 and run.error_code == "not-supported":  # another FHIR release
            why = f"{run.error}"
        elif status >= 500:
            why = f"the FHIR server failed: {run.error}"
        elif status == 422:  # a merged Patient record: the server answered as it should
            why = f"{run.error}"
        else:
            why = f"the FHIR server refused: {run.error}"
        raise ApiError(
            status,
            why,
            code=run.error_code,
            headers=INVALID_TOKEN if status == 401 else None,  # the server refused the token
        )
    assert run.result is not None  # a failed write still returns the computed result
    evaluation = run.result.evaluation
    nothing_read = not evaluation.course.assessments and not evaluation.exposure.cycles
    if nothing_read and not _changes_something(run):
        missing = [
            {"severity": "error", "code": "required", "diagnostics": _NOTHING_READ},
            *(i.as_fhir() for i in run.result.issues),
        ]
        raise ApiError(422, "this patient's data cannot be evaluated", issues=missing)
    answer = result_bundle(run, write=params.write)
    if nothing_read:  # answered all the same: the run changed (or, dry, would change) output
        outcome = answer["entry"][0]["resource"]
        outcome["issue"].insert(
            1, {"severity": "warning", "code": "required", "diagnostics": _NOTHING_READ}
        )
    return FhirJSONResponse(answer, media_type=FHIR_JSON_UTF8)


_NOTHING_READ = (
    "no core set measure (PGA, PtGA, MMT-8, HAQ, enzymes, extramuscular) and no IVIG "
    "administration could be read"
)


def _changes_something(run: PatientRun) -> bool:
    """Whether the run wrote anything, or finds earlier output to withdraw or update (its
    records entered-in-error since): such a run did (or, dry, would do) the operation's work and
    is answered with what it did, never 422, which would say that nothing changed."""
    return bool(run.written) or any(
        action in (Action.WITHDRAW, Action.UPDATE) for _, _, action in run.planned
    )


def _check_pass_through_write(config: FhirClientConfig) -> None:
    """403 when a pass-through caller's write would go to a separate write server
    (``fhir.write_base_url``): it is written with the service's own credentials (the caller's
    token never leaves the server it was issued for), so no one would check that the caller may
    write; only validate mode, which checks the token's write scopes, writes there."""
    if config.for_writes() is not config:
        raise ApiError(
            403,
            "write=true sends the derived resources to a separate write server "
            "(FHIRTIS_FHIR__WRITE_BASE_URL) with the service's own credentials; the service "
            "checks a caller's write scopes only with FHIRTIS_SERVICE__AUTH_MODE=validate",
            headers=INSUFFICIENT_SCOPE,
        )


_SERVER_HEADER_NAME = "X-FHIR-Server"
_SERVER_HEADER = Header(alias=_SERVER_HEADER_NAME, description="A FHIR base on the allow-list")


_PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Parameters"]},
        "parameter": {"type": "array", "items": {"type": "object"}},
    },
}
# the body is read by the operation itself (JSON only, 415 otherwise): documented here
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {t: {"schema": _PARAMETERS_SCHEMA} for t in (FHIR_JSON, "application/json")},
    }
}
# the query is read by the operation itself, as POST reads its Parameters: documented here
_QUERY_DOC: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in (
            ("baseline-date", {"type": "string", "format": "date"}),
            ("population", {"type": "string", "enum": ["adult", "juvenile"]}),
            ("server", {"type": "string"}),
            ("write", {"type": "string", "enum": ["false"]}),
        )
    ]
}


async def _body_parameters(request: Request) -> list[tuple[str, Any]]:
    """A POST's parameters: its Parameters body only (FHIR R4 operations.html); one in the query
    string is 400, never silently left out (FHIR's general parameters, ``_format`` ..., aside)."""
    in_query = parameters_from_query(request.query_params.multi_items())
    if in_query:
        name = in_query[0][0]
        raise ApiError(
            400,
            f"parameter {name} is in the query string: a POST takes the operation's parameters "
            "in its Parameters body (the query only with GET)",
            expression=name,
        )
    return parameters_from_body(await request.body(), request.headers.get("content-type"))


def _instance_parameters(patient_id: str, pairs: list[tuple[str, Any]]) -> EvaluateParameters:
    params = parse_parameters(pairs)
    if params.patient is not None and params.patient != patient_id:
        raise ApiError(
            400, "parameter patient differs from the Patient in the URL", expression="patient"
        )
    return params


@router.get(
    f"/Patient/{{patient_id}}/${OPERATION}",
    summary="Evaluate a patient (dry run)",
    description="The parameters of POST (policy values by name included) in the query; "
    "write=true needs POST.",
    openapi_extra=_QUERY_DOC,
)
async def evaluate_get(
    request: Request,
    patient_id: str,
    x_fhir_server: Annotated[str | None, _SERVER_HEADER] = None,
) -> JSONResponse:
    pairs = parameters_from_query(request.query_params.multi_items())
    params = _instance_parameters(patient_id, pairs)
    if params.write:
        raise ApiError(400, "write=true needs POST", expression="write")
    return await _evaluate(request, _patient_id(patient_id), params, x_fhir_server)


@router.post(
    f"/Patient/{{patient_id}}/${OPERATION}", summary="Evaluate a patient", openapi_extra=_BODY_DOC
)
async def evaluate_instance(
    request: Request,
    patient_id: str,
    x_fhir_server: Annotated[str | None, _SERVER_HEADER] = None,
) -> JSONResponse:
    params = _instance_parameters(patient_id, await _body_parameters(request))
    return await _evaluate(request, _patient_id(patient_id), params, x_fhir_server)


@router.post(
    f"/Patient/${OPERATION}", summary="Evaluate a patient (type level)", openapi_extra=_BODY_DOC
)
async def evaluate_type(
    request: Request,
    x_fhir_server: Annotated[str | None, _SERVER_HEADER] = None,
) -> JSONResponse:
    params = parse_parameters(await _body_parameters(request))
    if params.patient is None:
        raise ApiError(400, "parameter patient is required", expression="patient")
    return await _evaluate(request, params.patient, params, x_fhir_server)


def _patient_id(value: str) -> str:
    from fhirtis.fhir.primitives import is_id  # noqa: PLC0415

    if not is_id(value):
        raise ApiError(400, "not a valid Patient id", expression="id")
    return value


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.fhirtis = ServiceState(settings, metrics)
        try:
            yield
        finally:
            await app.state.fhirtis.aclose()

    about: dict[str, Any] = {
        "title": "fhirtis",
        "version": __version__,
        "description": "Myositis Total Improvement Score and IVIG safety over HL7 FHIR R4: FHIR "
        "operations for SMART apps and EHRs, and CDS Hooks for IVIG orders.",
        "lifespan": lifespan,
    }
    app = (
        # /docs with its assets served by fhirtis (fastapi-offline), never from a CDN
        FastAPIOffline(docs_url="/docs", redoc_url=None, **about)
        if settings.service.docs_enabled
        else FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **about)
    )
    app.state.fhirtis_metrics = metrics
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(ops.router)
    cds_hooks.install(app)
    web.install(app, settings.service.frame_ancestors)
    # the last added is the outermost: security headers, CORS, the FHIR JSON type asked for,
    # the CDS 401 challenge, requests in flight, body limit, HEAD served as GET
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, max_bytes=settings.service.max_body_bytes)
    # outside the body limit: a request refused for the service being busy is never read
    app.add_middleware(InFlightLimit, limit=settings.service.max_requests_in_flight)
    app.add_middleware(CdsChallenge)
    app.add_middleware(GenericJsonAnswer)
    if settings.service.cors_origins:
        # outside all but the security headers, so refusals (401, 413, 429 ...) reach the
        # browser readable too, and its own preflight answers carry the security headers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.service.cors_origins,
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", _SERVER_HEADER_NAME],
            expose_headers=[
                "Location",
                "Content-Location",
                "ETag",
                "Retry-After",
                "WWW-Authenticate",
            ],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, metrics=metrics)
    return app
