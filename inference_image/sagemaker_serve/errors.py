"""Errors that carry their HTTP status; `app` turns them into JSON responses at one place.

Messages are short and meant for the caller (SageMaker hands them back inside a ModelError, at most 2,048
characters); tracebacks only ever go to the log.
"""

from __future__ import annotations

import json

__all__ = [
    "BadRequest",
    "ModelError",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "PredictTimeout",
    "ServeError",
    "ServiceUnavailable",
    "UnsupportedMediaType",
    "error_body",
]

#: Longest message we send back; SageMaker truncates ModelError messages at 2,048 characters.
MAX_MESSAGE = 1000


class ServeError(Exception):
    """An error that maps to an HTTP status and a short message for the caller."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


class BadRequest(ServeError):
    status, code = 400, "bad_request"


class NotFound(ServeError):
    status, code = 404, "not_found"


class NotAcceptable(ServeError):
    status, code = 406, "not_acceptable"


class PayloadTooLarge(ServeError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServeError):
    status, code = 415, "unsupported_media_type"


class ModelError(ServeError):
    status, code = 500, "model_error"


class ServiceUnavailable(ServeError):
    status, code = 503, "unavailable"


class PredictTimeout(ServeError):
    status, code = 504, "timeout"


def error_body(status: int, code: str, message: str, request_id: str | None = None) -> bytes:
    doc: dict[str, object] = {"error": code, "status": status, "message": message}
    if request_id:
        doc["request_id"] = request_id
    return json.dumps(doc).encode()
