"""The one error body, {"error": {"code", "message", "detail"}}, for every failure the server can reach.

Routes raise ApiError; the handlers below turn it, FastAPI's validation errors, Starlette's 404/405 and any
unexpected exception into that body. The request guard (serve/guard.py) and the HTTP protocol
(serve/protocol.py) write the same body before the app is reached.
"""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("sqlft.serve")

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "body_timeout", 413: "body_too_large",
                415: "unsupported_media_type", 422: "invalid_request", 429: "busy", 500: "internal_error",
                503: "not_ready", 504: "timeout"}


class ApiError(Exception):
    """An expected failure, turned into the one error body by the handler below."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail, self.headers = status, code, message, detail, headers


def error_body(code: str, message: str, detail: Any = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "detail": detail}}).encode()


def error_response(status: int, code: str, message: str, detail: Any = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "detail": detail}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


async def api_error(request: Request, e: ApiError) -> JSONResponse:
    return error_response(e.status, e.code, e.message, e.detail, e.headers)


async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    if e.status_code == 400:  # FastAPI's "error parsing the body": e.g. bytes that are not UTF-8
        return error_response(422, "invalid_json", "The request body is not valid JSON (UTF-8 text expected).")
    message = {404: f"No route {request.url.path}; see /docs for the API.",
               405: f"{request.method} is not allowed on {request.url.path}; see /docs."}
    return error_response(e.status_code, STATUS_CODES.get(e.status_code, "http_error"),
                          message.get(e.status_code, str(e.detail)), headers=getattr(e, "headers", None))


async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
    # Not the offending input itself: it may be a 200 kB schema, echoed back for nothing.
    problems = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
                for err in e.errors()]
    if any(p["type"] == "json_invalid" for p in problems):
        return error_response(422, "invalid_json", "The request body is not valid JSON.", problems)
    summary = "; ".join(f"{'.'.join(str(p) for p in pr['loc'][1:]) or 'body'}: {pr['msg']}" for pr in problems)
    return error_response(422, "invalid_request", f"Invalid request: {summary}", problems)


async def unexpected(request: Request, e: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"Unexpected server error ({type(e).__name__}); the server "
                          "log has the details.")
