"""Helpers the CRM adapters share: body limits, JSON, clocks and the CRMs' many time formats."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from closedloop.crm.errors import WebhookPayloadError
from closedloop.crm.models import WebhookRequest
from closedloop.crm.money import normalise_currency, parse_amount

MAX_BODY_BYTES = 1_048_576
# Epoch numbers below this are seconds, above it milliseconds (10**11 s is the year 5138).
_SECONDS_LIMIT = 10**11


def current_ms(now_ms: int | None) -> int:
    """The injected clock, else the system clock, in ms."""
    return now_ms if now_ms is not None else time.time_ns() // 1_000_000


def check_body(request: WebhookRequest) -> None:
    """Refuse bodies no CRM sends (HubSpot batches at most 100 events, Salesforce 100 notifications)."""
    if len(request.body) > MAX_BODY_BYTES:
        raise WebhookPayloadError(f"the body is larger than {MAX_BODY_BYTES} bytes")


def load_json(body: bytes, crm: str) -> Any:
    """Decode a JSON body or raise a 400 that says so."""
    if not body.strip():
        raise WebhookPayloadError(f"the {crm} webhook has an empty body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookPayloadError(f"the {crm} webhook body is not valid JSON") from None


def describe(exc: ValidationError, what: str) -> WebhookPayloadError:
    """A 400 naming each invalid field and why, never echoing the values (they may be personal data)."""
    problems = []
    details = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
        details.append({"field": where, "problem": error["msg"]})
    return WebhookPayloadError(f"invalid {what}: " + "; ".join(problems), details=details)


def to_ms(value: object) -> int | None:
    """Read a time a CRM sent: epoch seconds or ms (number or digits), ISO 8601 (naive means UTC),
    or a date. Returns ``None`` for ``None``, blanks and anything unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = int(value)
        return number * 1000 if abs(number) < _SECONDS_LIMIT else number
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return to_ms(int(text))
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return None
    return to_ms(parsed)


def to_date(value: object) -> date | None:
    """Read a close date: ``YYYY-MM-DD``, an ISO datetime or epoch ms (its UTC day)."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    ms = to_ms(value)
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def lenient_amount(value: object) -> Decimal | None:
    """An amount from a CRM record; an unreadable one is treated as absent rather than losing the deal."""
    try:
        return parse_amount(value)
    except ValueError:
        return None


def lenient_currency(value: object, default: str | None) -> str | None:
    """A currency from a CRM record, else the configured default."""
    if isinstance(value, str):
        try:
            code = normalise_currency(value)
        except ValueError:
            code = None
        if code:
            return code
    return default


def text(value: object) -> str | None:
    """A CRM value as a non-blank string (ids may come as numbers), else ``None``."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    result = str(value).strip()
    return result or None
