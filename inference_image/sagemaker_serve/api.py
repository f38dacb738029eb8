"""FastAPI for the endpoints that are not on the hot path, and the OpenAPI description of all of them.

``/ping`` and ``/invocations`` are answered by `app.ServeApp` before a request reaches FastAPI; their routes
here exist so that the schema (``/openapi.json``, ``/docs``) describes the whole contract, which is what
the fuzz tests (schemathesis) generate requests from.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from . import __version__
from .config import Settings
from .errors import error_body

__all__ = ["build_api"]

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "status", "message"],
    "properties": {
        "error": {"type": "string"},
        "status": {"type": "integer"},
        "message": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


_INVOCATION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                    {
                        "type": "object",
                        "required": ["instances"],
                        "properties": {
                            "instances": {
                                "type": "array",
                                "items": {"type": "array", "items": {"type": "number"}},
                            }
                        },
                    },
                ]
            }
        },
        "text/csv": {"schema": {"type": "string"}},
        "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
    },
}


def build_api(settings: Settings) -> FastAPI:
    api = FastAPI(
        title="sagemaker-serve",
        version=__version__,
        description="Amazon SageMaker hosting contract: GET /ping, POST /invocations, "
        "GET /execution-parameters.",
    )

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return Response(
            error_body(exc.status_code, code, str(exc.detail)),
            status_code=exc.status_code,
            media_type="application/json",
            headers=exc.headers,
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return Response(
            error_body(400, "bad_request", str(exc.errors())[:500]), 400, media_type="application/json"
        )

    @api.get(
        "/ping",
        summary="Health check: 200 once the model is loaded, 503 before",
        responses={200: {"description": "ready", "content": {}}, 503: _error_response("not ready")},
    )
    async def ping() -> Response:  # pragma: no cover - answered by ServeApp
        return Response(status_code=200)

    @api.post(
        "/invocations",
        summary="Predict",
        openapi_extra={
            "requestBody": _INVOCATION_BODY,
            "parameters": [
                {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"}},
                {
                    "name": "X-Amzn-SageMaker-Custom-Attributes",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
        },
        responses={
            200: {
                "description": "the prediction, in the negotiated media type",
                "content": {
                    "application/json": {"schema": {}},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            400: _error_response("malformed body (the message says where)"),
            406: _error_response("no acceptable response type"),
            413: _error_response("body over the limit"),
            415: _error_response("unsupported Content-Type"),
            500: _error_response("the model failed (traceback in the server log)"),
            504: _error_response("the model did not answer in time"),
        },
    )
    async def invocations() -> Response:  # pragma: no cover - answered by ServeApp
        return Response(status_code=500)

    @api.get(
        "/execution-parameters",
        summary="Batch transform tuning hints",
        responses={
            200: {
                "description": "MaxConcurrentTransforms, BatchStrategy, MaxPayloadInMB",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"],
                            "properties": {
                                "MaxConcurrentTransforms": {"type": "integer"},
                                "BatchStrategy": {"type": "string"},
                                "MaxPayloadInMB": {"type": "integer"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def execution_parameters() -> JSONResponse:
        return JSONResponse(settings.execution_parameters())

    return api
