"""Turn bad requests into readable 4xx JSON: which field, what is wrong, what to do."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vidrec.recommender import STORE_DOWN
from vidrec.serving.auth import Refused
from vidrec.serving.pool import WorkerGone
from vidrec.serving.schemas import BODY_TAGS, ErrorResponse, Problem

log = logging.getLogger(__name__)
_SHOWN = 5  # problems spelled out in the one-line detail
_KINDS = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid_request",
          429: "rate_limited"}  # fmt: skip
"""The kind an error answer is counted under in ``vidrec_errors_total`` (see :mod:`vidrec.serving.metrics`)."""


class RequestProblem(Exception):
    """A request the routes refuse after schema validation (e.g. an unknown video)."""

    def __init__(self, problems: list[Problem], status_code: int = 422) -> None:
        self.problems = problems
        self.status_code = status_code
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


def field_path(loc: tuple | list) -> str:
    """``('body', 'many', 2, 'ts')`` -> ``body[2].ts``; union tags are dropped."""
    out = ""
    for part in loc:
        if part in BODY_TAGS:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def _message(error: dict) -> str:
    """Pydantic's message, reworded where it would puzzle a client."""
    kind, msg = error.get("type", ""), str(error.get("msg", ""))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        at = error.get("loc", ("body", 0))[-1]
        return (
            f"the body is not valid JSON ({reason}, at character {at}); "
            "send one event object or a list of them"
        )
    if kind == "missing":
        return "is required but was not given"
    if kind == "extra_forbidden":
        return "is not a known field; check its spelling"
    return msg.removeprefix("Value error, ")


def _answer(problems: list[Problem], status_code: int) -> JSONResponse:
    shown = "; ".join(f"{p.field}: {p.message}" for p in problems[:_SHOWN])
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    body = ErrorResponse(detail=f"invalid request: {shown}{more}", errors=problems)
    return JSONResponse(status_code=status_code, content=body.model_dump())


def _count(request: Request, kind: str) -> None:
    """Name the error's kind for the metrics (read by :class:`~vidrec.serving.metrics.Instrument`)."""
    request.state.error_kind = kind


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    _count(request, "invalid_request")
    problems = [
        Problem(field="body" if e.get("type") == "json_invalid" else field_path(e.get("loc", ())),
                message=_message(e))
        for e in exc.errors()
    ]
    return _answer(problems, 422)


async def _on_request_problem(request: Request, exc: RequestProblem) -> JSONResponse:
    _count(request, _KINDS.get(exc.status_code, f"http_{exc.status_code}"))
    return _answer(exc.problems, exc.status_code)


async def _on_refused(request: Request, exc: Refused) -> JSONResponse:
    _count(request, _KINDS.get(exc.status_code, f"http_{exc.status_code}"))
    body = ErrorResponse(detail=exc.detail)
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(), headers=exc.headers)


async def _on_http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (a body that cannot be parsed, an unknown route or method) in the
    :class:`ErrorResponse` shape every other error has."""
    if exc.status_code == 400:
        _count(request, "unreadable_body")
        detail = "the body could not be read; send UTF-8 JSON (one object or a list of them)"
    else:
        detail = str(exc.detail)
    body = ErrorResponse(detail=detail)
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(), headers=exc.headers)


async def _on_store_down(request: Request, exc: Exception) -> JSONResponse:
    _count(request, "store_unavailable")
    log.warning("request %s %s %s: the online store does not answer (%s)", _request_id(request), request.method,
                request.url.path, exc)  # fmt: skip
    body = ErrorResponse(detail="the online store does not answer; retry shortly (GET /ready says what is down)")
    return JSONResponse(status_code=503, content=body.model_dump(), headers={"Retry-After": "1"})


async def _on_worker_gone(request: Request, exc: WorkerGone) -> JSONResponse:
    _count(request, "worker_gone")
    log.error("request %s %s: %s", request.method, request.url.path, exc)
    body = ErrorResponse(detail=f"a model worker exited ({exc}); retry shortly (GET /ready says which)")
    return JSONResponse(status_code=503, content=body.model_dump(), headers={"Retry-After": "1"})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request %s %s %s failed", _request_id(request), request.method, request.url.path)
    body = ErrorResponse(
        detail=f"the service failed to answer ({type(exc).__name__}); it has been logged"
    )
    return JSONResponse(status_code=500, content=body.model_dump())


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the :class:`ErrorResponse` shape."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestProblem, _on_request_problem)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(Refused, _on_refused)  # type: ignore[arg-type]
    for kind in STORE_DOWN:
        app.add_exception_handler(kind, _on_store_down)
    app.add_exception_handler(WorkerGone, _on_worker_gone)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)


def _request_id(request: Request) -> str:
    """The answer's ``X-Request-ID`` (set by :class:`~vidrec.serving.metrics.Instrument`), for the log."""
    return str(getattr(request.state, "request_id", "-"))
