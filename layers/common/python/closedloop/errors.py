"""The exception tree of Closedloop, mapped to HTTP in one place (``closedloop.api``).

``ClientInputError`` and its children are the caller's fault (4xx, never retried as-is);
``DependencyError`` and its children are ours or AWS's (5xx, safe to retry because every write is
idempotent).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientInputError",
    "ClosedloopError",
    "DependencyError",
    "ForbiddenError",
    "InvalidInputError",
    "PayloadTooLargeError",
    "StoreUnavailableError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]


class ClosedloopError(Exception):
    """Root of every error Closedloop raises on purpose."""


class ClientInputError(ClosedloopError):
    """The request is wrong; the reply says what is wrong and nothing was written."""

    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInputError(ClientInputError):
    """A field has the wrong shape or value."""


class PayloadTooLargeError(ClientInputError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ClientInputError):
    status_code = 415
    code = "unsupported_media_type"


class UnauthorizedError(ClientInputError):
    """Missing or wrong credentials or signature."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(ClientInputError):
    status_code = 403
    code = "forbidden"


class DependencyError(ClosedloopError):
    """A dependency (DynamoDB, S3, a CRM API) failed; the caller may retry the same request."""

    status_code = 503
    code = "dependency_unavailable"


class StoreUnavailableError(DependencyError):
    """DynamoDB refused or failed the write after the SDK's own retries."""
