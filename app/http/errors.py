"""The one place errors become HTTP responses: the OpenAI error envelope, whatever went wrong."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lorag.core.errors import LoragError
from lorag.core.faults import as_lorag_error

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error", 503: "service_unavailable"}


MAX_PROBLEMS = 10  # validation problems listed in one message
MAX_PART = 64  # characters of one part of a field's location quoted in a message


def envelope(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoragError, _lorag_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


def error_response(exc: LoragError) -> JSONResponse:
    retry_after = getattr(exc, "retry_after", None)  # BackendUnavailable, RateLimited
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(exc.envelope(), status_code=exc.status_code, headers=headers)


async def _lorag_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoragError)
    return error_response(exc)


def fault_response(exc: Exception) -> JSONResponse | None:
    """A database that is restarting or a full disk: 503/507 with Retry-After; None for anything else."""
    error = as_lorag_error(exc)
    return error_response(error) if error is not None else None


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # A location can hold the caller's own keys (an unknown field's name): each part is cut to a short prefix.
    problems = [f"{_where(err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:MAX_PROBLEMS]]
    first = exc.errors()[0]["loc"] if exc.errors() else ()
    return JSONResponse(envelope("; ".join(problems), "invalid_request_error", "invalid_value",
                                 _where(first) or None), 400)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part)[:MAX_PART] for part in loc[1:])


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = _TYPES.get(exc.status_code, "invalid_request_error" if exc.status_code < 500 else "internal_error")
    return JSONResponse(envelope(str(exc.detail), type_), exc.status_code, headers=exc.headers)
