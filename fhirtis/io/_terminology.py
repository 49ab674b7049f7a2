"""A FHIR terminology server client answering subsumption questions (``CodeSystem/$subsumes``).

It implements the asynchronous side of the terminology port of :mod:`fhirtis.fhir.codes`
(``SubsumptionOracle.is_a(system, code, parent)``): ``codeA`` is the parent, ``codeB`` the code;
the outcome ``subsumes`` or ``equivalent`` means "is-a" (True), ``subsumed-by`` or
``not-subsumed`` means it is not (False). Anything else — an HTTP error, a timeout, a reply that
is not a ``Parameters`` with an ``outcome`` — is ``None`` ("cannot tell"): the caller reports the
code as unclassified. Definite answers are cached per ``(system, code, parent)``; failures are
not, so a later run asks again. Codes are never logged (a problem list is patient data).

Specification: FHIR R4 ``CodeSystem/$subsumes``, http://hl7.org/fhir/R4/codesystem-operation-subsumes.html
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, MutableMapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from fhirtis import __version__
from fhirtis.io import _urls
from fhirtis.io._closing import AsyncClosing
from fhirtis.io._config import checked_token

log = logging.getLogger(__name__)

Question = tuple[str, str, str]  # (system, code, parent)

_IS_A = {"subsumes": True, "equivalent": True, "subsumed-by": False, "not-subsumed": False}


class TerminologyConfig(BaseModel):
    """The terminology server a site asks about codes its shipped expansions do not list."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str = Field(description="FHIR base URL of the terminology server")
    bearer_token: SecretStr | None = Field(None, description="sent as Authorization: Bearer")
    timeout_seconds: float = Field(
        10.0, gt=0, description="per request, the whole answer (else: cannot tell)"
    )
    concurrency: int = Field(8, ge=1, le=64, description="requests in flight at once")

    @field_validator("base_url")
    @classmethod
    def _valid_base(cls, value: str) -> str:
        _urls.normalize_base(value)
        return value

    @field_validator("bearer_token")
    @classmethod
    def _check_bearer_token(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_token(value)


class TerminologyClient(AsyncClosing):
    """Asks ``$subsumes``; use as ``async with TerminologyClient(config) as client``.

    ``cache`` may be shared between clients (e.g. across the patients of one run).
    """

    def __init__(
        self,
        config: TerminologyConfig,
        *,
        cache: MutableMapping[Question, bool] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.cache: MutableMapping[Question, bool] = {} if cache is None else cache
        headers = {"Accept": "application/fhir+json", "User-Agent": f"fhirtis/{__version__}"}
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"
        self._base = _urls.normalize_base(config.base_url)
        self._http = httpx.AsyncClient(
            headers=headers, timeout=config.timeout_seconds, transport=transport
        )
        self._limit = asyncio.Semaphore(config.concurrency)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def is_a(self, system: str, code: str, parent: str) -> bool | None:
        """Is ``code`` ``parent`` or a descendant of it in ``system``? ``None``: cannot tell."""
        key = (system, code, parent)
        known = self.cache.get(key)  # one look-up: a shared cache may be emptied meanwhile
        if known is not None:
            return known
        if code == parent:
            return True
        async with self._limit:
            answer = await self._subsumes(system, code, parent)
        if answer is not None:
            self.cache[key] = answer
        return answer

    async def answer_all(self, questions: Iterable[Question]) -> dict[Question, bool | None]:
        """Every question, asked concurrently (at most ``concurrency`` at once)."""
        unique = sorted(set(questions))
        answers = await asyncio.gather(*(self.is_a(*q) for q in unique))
        failed = sum(a is None for a in answers)
        if failed:
            log.warning("terminology server: %d of %d questions unanswered", failed, len(unique))
        return dict(zip(unique, answers, strict=True))

    async def _subsumes(self, system: str, code: str, parent: str) -> bool | None:
        params = {"system": system, "codeA": parent, "codeB": code}
        try:
            # the whole request within timeout_seconds: httpx's timeout is per read, and an
            # answer trickling in passes it however long it takes
            async with asyncio.timeout(self.config.timeout_seconds):
                response = await self._http.get(
                    _urls.join(self._base, "CodeSystem", "$subsumes"), params=params
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("terminology server unreachable: %s", type(exc).__name__)
            return None
        if response.status_code != 200:
            log.warning("terminology server answered HTTP %d to $subsumes", response.status_code)
            return None
        try:
            body: Any = response.json()
        except ValueError:
            return None
        return _outcome(body)


def _outcome(body: Any) -> bool | None:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return None
    for p in body.get("parameter") or []:
        if isinstance(p, dict) and p.get("name") == "outcome":
            value = p.get("valueCode")
            return _IS_A.get(value) if isinstance(value, str) else None
    return None
