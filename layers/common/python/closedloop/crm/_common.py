"""Helpers the CRM adapters share: body limits, JSON, clocks and the CRMs' many time formats."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from closedloop.crm.errors import WebhookPayloadError
from closedloop.crm.models import MAX_DEAL_TIME_MS, DealEvent, WebhookRequest
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
    except RecursionError:
        raise WebhookPayloadError(f"the {crm} webhook body is nested too deeply") from None


def describe(exc: ValidationError, what: str) -> WebhookPayloadError:
    """A 400 naming each invalid field and why, never echoing the values (they may be personal data)."""
    problems = []
    details = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
        details.append({"field": where, "problem": error["msg"]})
    return WebhookPayloadError(f"invalid {what}: " + "; ".join(problems), details=details)


def deal_event(what: str, **fields: Any) -> DealEvent:
    """Build an adapter's :class:`DealEvent`; a value it cannot hold (an id or stage over 256
    characters, a time before 1970 or after 2100, an amount DynamoDB cannot keep) is the CRM's 400,
    raised while the delivery is parsed, so nothing of it is written."""
    try:
        return DealEvent(**fields)
    except ValidationError as exc:
        raise describe(exc, what) from None


def to_ms(value: object, *, field: str = "a time") -> int | None:
    """Read a time a CRM sent: epoch seconds or ms (number or digits), ISO 8601 (naive means UTC),
    or a date. Returns ``None`` for ``None``, blanks and text that is no time. A time before 1970 or
    after 2100 (:class:`DealEvent`'s bounds) or a number that is no time (NaN, infinite, thousands of
    digits) is a 400 naming ``field``, never an overflow deep in the parse or a write DynamoDB refuses."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite:
            raise WebhookPayloadError(f"{field} is not a finite number")
        if not -MAX_DEAL_TIME_MS <= value <= MAX_DEAL_TIME_MS:  # before int(): 1E+999999 has a million digits
            raise WebhookPayloadError(f"{field} is before 1970 or after 2100")
        number = int(value)
        return _in_range(number * 1000 if abs(number) < _SECONDS_LIMIT else number, field)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return _in_range(int(moment.timestamp() * 1000), field)
    if isinstance(value, date):
        return to_ms(datetime(value.year, value.month, value.day, tzinfo=UTC), field=field)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        try:
            number = int(text)
        except ValueError:  # over Python's 4300-digit limit, or digits int() does not read ("²")
            raise WebhookPayloadError(f"{field} is not a readable number") from None
        return to_ms(number, field=field)
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return None
    return to_ms(parsed, field=field)


def _in_range(ms: int, field: str) -> int:
    if not 0 <= ms <= MAX_DEAL_TIME_MS:
        raise WebhookPayloadError(f"{field} is before 1970 or after 2100")
    return ms


def to_date(value: object, *, field: str = "a date") -> date | None:
    """Read a close date: ``YYYY-MM-DD``, an ISO datetime or epoch ms (its UTC day); ``None`` and the
    400 as :func:`to_ms`."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    ms = to_ms(value, field=field)
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
