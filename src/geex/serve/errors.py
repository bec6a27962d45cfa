"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the status a
client can act on: 400 a bad value, 401 no or a wrong key, 404 unknown model or path, 413 body too
large, 422 a body of the wrong shape, 429 the queue is full (with ``Retry-After``), 503 the model is
loading or the engine died. Nothing the client sent ever produces a traceback or a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """An error response: raise it from an endpoint."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every failure in OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, param=e.param, code=e.code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_response(400, "the body is not valid JSON", code="invalid_json")
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or None
        message = f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "invalid body")
        return error_response(422, message, param=where, code="invalid_body")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 400 and "parsing the body" in str(e.detail):  # FastAPI's own JSON failure
            return error_response(400, "the body is not valid JSON", code="invalid_json")
        message = "no such endpoint" if e.status_code == 404 else str(e.detail)
        return error_response(e.status_code, message, headers=getattr(e, "headers", None))

