"""Every error the API answers is `{"error": "<one sentence>"}`: the exception handlers that make it so, and the
`responses=` tables routes use to declare their error codes in the OpenAPI document."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from morgus.app.api_models import ErrorView

log = structlog.get_logger()


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorView} for code in codes}


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For a route whose success is not JSON (the event stream): its errors still are."""
    return {
        code: {
            "description": HTTPStatus(code).phrase,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorView"}}},
        }
        for code in codes
    }


READ_ERRORS = errors(400, 401, 404, 422)
WRITE_ERRORS = errors(400, 401, 403, 404, 409, 415, 422, 503)


def first_error(errors: Any) -> str:
    """One sentence from pydantic's error list: `<field>: <what is wrong>`."""
    first: dict[str, Any] = next(iter(errors), {}) if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    return f"{where}: {msg}" if where else msg


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return JSONResponse({"error": first_error(exc.errors())}, status_code=422)


async def _bad_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ResponseValidationError)
    log.error("a response did not match its declared model", path=request.url.path, errors=str(exc.errors())[:2000])
    return JSONResponse({"error": "internal error"}, status_code=500)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail
    if exc.status_code == 404 and message == "Not Found":
        message = f"there is no endpoint at {request.url.path} (the API is described at /openapi.json)"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}" + (f" (use {allowed})" if allowed else "")
    elif not isinstance(message, str):
        message = str(message)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The last resort: the client learns nothing of the internals; the log has the trace.
    log.error("unexpected error in the API", path=request.url.path, method=request.method, exc_info=exc)
    return JSONResponse({"error": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(ResponseValidationError, _bad_response)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
