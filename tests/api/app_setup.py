"""The service in-process for the API tests: the app's lifespan run and an httpx client on its
ASGI transport (so pytest-httpx still sees the app's own calls to a FHIR server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from fhirtis.api.app import create_app
from fhirtis.settings import Settings

BASE = "http://fhirtis.test"


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = BASE) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``, its lifespan started (and ended when the block ends)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the service made with ``settings``, its lifespan started."""
    async with serving(create_app(settings)) as client:
        yield client
