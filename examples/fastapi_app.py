"""A FastAPI backend on Instasent: one client for the process, errors as HTTP answers.

    pip install 'instasent-async' fastapi uvicorn
    export INSTASENT_TOKEN=<product token> INSTASENT_PROJECT=proj_xxx
    uvicorn examples.fastapi_app:app

- The lifespan creates the one ``Instasent`` client (configured from the environment)
  and closes it at shutdown; every request shares its connection pool and its
  rate-limit governor.
- A dependency (``Client``) hands the client to the handlers.
- ``max_wait`` bounds how long a handler may wait for a rate-limit permit: an HTTP
  request should answer in seconds, so past that the SDK raises ``RateLimitError``
  at once and the app answers 503 with ``Retry-After``.
- SDK errors become HTTP answers in one exception handler.
- Models are returned as JSON: ``to_dict(model)`` (the wire form), or validated into
  a pydantic response model.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from instasent_async import (
    APIConnectionError,
    APITimeoutError,
    Contact,
    Instasent,
    InstasentError,
    NotFoundError,
    RateLimitError,
    UnprocessableEntityError,
    to_dict,
)

log = logging.getLogger("fastapi_app")

# Handlers wait at most this long for a rate-limit permit (the SDK's default is 120 s).
HANDLER_MAX_WAIT = 5.0
# The datasource contacts are written to ("dsapi": the project's first API datasource).
DATASOURCE = os.environ.get("INSTASENT_DATASOURCE", "dsapi")


def create_app(**client_options: Any) -> FastAPI:
    """The app; ``client_options`` go to ``Instasent`` (token, project... else the environment)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        options = {"max_wait": HANDLER_MAX_WAIT, **client_options}
        async with Instasent(**options) as client:
            app.state.instasent = client
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_exception_handler(InstasentError, instasent_error)  # type: ignore[arg-type]
    app.include_router(router)
    return app


def get_client(request: Request) -> Instasent:
    """The app's one client (a FastAPI dependency)."""
    client: Instasent = request.app.state.instasent
    return client


Client = Annotated[Instasent, Depends(get_client)]


async def instasent_error(request: Request, exc: InstasentError) -> JSONResponse:
    """Every SDK error as an HTTP answer (the SDK's messages stay in the log)."""
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": "not found"}, status_code=404)
    if isinstance(exc, UnprocessableEntityError):
        return JSONResponse({"detail": "rejected by Instasent"}, status_code=422)
    if isinstance(exc, RateLimitError):
        retry_after = 1
        if exc.reset_at is not None:
            wait = (exc.reset_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
            retry_after = max(1, math.ceil(wait))
        headers = {"Retry-After": str(retry_after)}
        return JSONResponse({"detail": "busy, retry later"}, status_code=503, headers=headers)
    log.warning("Instasent call failed: %s", exc)
    if isinstance(exc, APITimeoutError):
        return JSONResponse({"detail": "upstream timeout"}, status_code=504)
    if isinstance(exc, APIConnectionError):
        return JSONResponse({"detail": "upstream unreachable"}, status_code=502)
    # Authentication, permissions, 5xx after retries, a bad request...: not the caller's fault.
    return JSONResponse({"detail": "upstream error"}, status_code=502)


class ContactOut(BaseModel):
    """A pydantic response model read from a contact's wire form (aliases: the wire keys)."""

    user_id: str = Field(validation_alias="_user_id")
    email: str | None = Field(default=None, validation_alias="_email")
    plan: str | None = None


class NewContact(BaseModel):
    """What a caller posts to create or update a contact."""

    user_id: str
    email: str | None = None
    plan: str | None = None


router = APIRouter()


@router.get("/contacts/{user_id}")
async def get_contact(user_id: str, client: Client) -> dict[str, Any]:
    """The contact as Instasent sends it (``_user_id``, ``_email``, custom attributes)."""
    contact = await client.audience.get_by_user_id(user_id)
    return to_dict(contact)


@router.get("/contacts/{user_id}/summary", response_model=ContactOut)
async def contact_summary(user_id: str, client: Client) -> ContactOut:
    """The same contact through a pydantic model of the app's own."""
    contact = await client.audience.get_by_user_id(user_id)
    return ContactOut.model_validate(to_dict(contact))


@router.post("/contacts", status_code=202)
async def upsert_contact(body: NewContact, client: Client) -> dict[str, Any]:
    """Create or update a contact (queued by Instasent: readable a moment later)."""
    attributes = {"plan": body.plan} if body.plan is not None else {}
    contact = Contact(user_id=body.user_id, email=body.email, attributes=attributes)
    report = await client.datasource(DATASOURCE).contacts.upsert([contact])
    if not report.ok:
        errors = report.rejected[0].errors if report.rejected else None
        raise HTTPException(status_code=422, detail={"rejected": errors})
    return {"accepted": report.accepted}


app = create_app()
