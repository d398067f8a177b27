"""Errors as `application/problem+json` (RFC 9457), each with a machine `code`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://warroom.dev/problems/"

TITLES = {
    "invalid_transition": "Invalid status transition",
    "version_conflict": "Version conflict",
    "not_found": "Not found",
    "validation_error": "Invalid request",
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "unavailable": "Service unavailable",
    "method_not_allowed": "Method not allowed",
    "too_large": "Request too large",
    "internal": "Internal error",
}


class FieldError(BaseModel):
    field: str
    message: str


class ProblemBody(BaseModel):
    """The body of every error response (extra members depend on `code`)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    errors: list[FieldError] | None = None
    current_status: str | None = None
    current_version: int | None = None


class Problem(Exception):
    """An error to answer with; raise it from routes and dependencies."""

    def __init__(self, status: int, code: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or code)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code.replace("_", "-"),
            "title": TITLES.get(self.code, self.code.replace("_", " ").capitalize()),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers)

    @classmethod
    def unauthorized(cls, detail: str) -> Problem:
        return cls(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})

    @classmethod
    def forbidden(cls, detail: str) -> Problem:
        return cls(403, "forbidden", detail)

    @classmethod
    def not_found(cls, detail: str) -> Problem:
        return cls(404, "not_found", detail)

    @classmethod
    def invalid(cls, field: str, message: str) -> Problem:
        return cls(422, "validation_error", f"{field}: {message}",
                   errors=[{"field": field, "message": message}])

    @classmethod
    def unavailable(cls, detail: str, retry_after_s: int = 1) -> Problem:
        return cls(503, "unavailable", detail, headers={"Retry-After": str(retry_after_s)})


def field_errors(err: RequestValidationError) -> list[dict[str, str]]:
    """One `{field, message}` per problem, the field named as the client sent it."""
    out = []
    for problem in err.errors():
        loc = [str(part) for part in problem.get("loc", ())]
        # The first element says where (body, query, path, header); the rest is the field.
        field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else "body")
        out.append({"field": field or "body", "message": str(problem.get("msg", "invalid"))})
    return out


# Ready-made `responses=` entries so the OpenAPI documents the error bodies.
def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ProblemBody, "content": {MEDIA_TYPE: {}}} for status in statuses}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path` (Starlette names only the first route's)."""
    try:
        from fastapi.routing import iter_route_contexts

        routes = [context.original_route for context in iter_route_contexts(app.routes)]
    except ImportError:  # FastAPI without lazily included routers
        routes = list(app.routes)
    methods: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Render every error of the app as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return Problem(422, "validation_error", detail, errors=errors).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 400:
            # A body that cannot even be parsed is a validation error like any other (SPEC §7).
            return Problem.invalid("body", str(exc.detail)).response()
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path)) or headers.get("Allow", "")
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                413: "too_large", 422: "validation_error", 431: "too_large",
                503: "unavailable"}.get(exc.status_code, "validation_error")
        if exc.status_code >= 500:
            code = "unavailable" if exc.status_code == 503 else "internal"
        return Problem(exc.status_code, code, str(exc.detail), headers=headers).response()

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        what = "PostgreSQL" if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)) else (
            "Kafka" if isinstance(exc, KafkaError) else type(exc).__name__)
        log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, exc)
        return Problem.unavailable(f"{what} is unavailable: {exc}").response()

    # Registered per class (not for Exception) so they are answered without a traceback.
    for cls in (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.exceptions.OperatorInterventionError, asyncpg.TooManyConnectionsError,
                KafkaError, OSError):
        app.add_exception_handler(cls, _unavailable)

    @app.exception_handler(asyncpg.DataError)
    async def _bad_data(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # Input PostgreSQL cannot represent (e.g. an out-of-range number) is the client's to fix.
        log.info("%s %s: data refused by PostgreSQL: %s", request.method, request.url.path, exc)
        return Problem(422, "validation_error", str(exc)).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this response is sent, so the server logs the traceback.
        return Problem(500, "internal", "unexpected error; see the gateway log").response()
