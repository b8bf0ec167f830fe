"""The errors of the CRM webhooks, as branches of Closedloop's one exception tree.

Each class carries the HTTP status the API answers with (``status_code``), so the handler maps them
in one place: a bad or missing signature is a 401 and nothing is written; a payload the adapter
cannot read is a 400 that names the problem; a CRM API that is down or rate-limits the lookup is a
503, so the CRM retries the same delivery later (every write is idempotent).
"""

from __future__ import annotations

from closedloop.errors import (
    ClientInputError,
    ClosedloopError,
    DependencyError,
    InvalidInputError,
    UnauthorizedError,
)

__all__ = [
    "CrmApiError",
    "CrmApiNotFoundError",
    "CrmApiRetryableError",
    "CrmError",
    "CrmNotConfiguredError",
    "CurrencyRateError",
    "DealStateError",
    "UnknownCrmError",
    "WebhookAuthError",
    "WebhookPayloadError",
]


class CrmError(ClosedloopError):
    """Marker base: every error raised by ``closedloop.crm`` also inherits from this class."""


class WebhookAuthError(UnauthorizedError, CrmError):
    """The delivery's signature, token or credentials are missing, wrong or too old (401)."""

    code = "invalid_signature"


class WebhookPayloadError(InvalidInputError, CrmError):
    """The delivery is authentic but its body is not a shape the adapter reads (400)."""

    code = "invalid_payload"


class UnknownCrmError(ClientInputError, CrmError):
    """``/webhooks/{crm}`` names a CRM Closedloop has no adapter for (404)."""

    status_code = 404
    code = "unknown_crm"


class CrmNotConfiguredError(ClientInputError, CrmError):
    """The CRM has an adapter but no section in the webhook secret: nothing can verify it (404)."""

    status_code = 404
    code = "crm_not_configured"


class CrmApiError(DependencyError, CrmError):
    """A lookup in the CRM's own API failed (bad token, unexpected answer).

    Parameters
    ----------
    message
        What failed, without personal data or credentials.
    status
        The HTTP status the CRM answered, or ``None`` when no answer came.
    """

    code = "crm_api_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CrmApiRetryableError(CrmApiError):
    """The CRM API timed out, was unreachable, rate-limited (429) or failed (5xx): retry later (503).

    Parameters
    ----------
    message
        What failed.
    status
        The HTTP status the CRM answered, or ``None`` on a timeout or connection error.
    retry_after
        Seconds the CRM asked to wait (``Retry-After``), when it said so.
    """

    code = "crm_api_unavailable"

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class CrmApiNotFoundError(CrmApiError):
    """The CRM API answered 404: the record was deleted or merged since the event was sent."""

    code = "crm_record_not_found"


class CurrencyRateError(CrmError):
    """No exchange rate is configured to convert an amount to the base currency."""


class DealStateError(CrmError):
    """A deal event was applied to the state of another deal (a programming error, not input)."""
