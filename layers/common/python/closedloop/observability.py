"""One logger, metrics and (on demand) tracer per process (Powertools), configured from the environment.

Log with keyword fields, never f-strings, and never personal data. As a second line of defence the
logger's formatter redacts anything shaped like an email or an IPv4/IPv6 address from every line, and
logs an HTTP API event (when an operator turns on ``POWERTOOLS_LOGGER_LOG_EVENT``) as its route only:
bodies, headers, query strings and cookies carry form fields, URL tokens and credentials. A batch of
records (the table's stream, the write-back queue) is logged as counts: stream images hold names,
companies and job titles that no pattern can redact.

The tracer is made on first use: Powertools' Tracer imports the X-Ray SDK and patches botocore, about
180 ms of cold start on this machine. The collect function, the hot path whose cold start is budgeted
at 300 ms, relies on Lambda's own active tracing instead; the other functions call ``get_tracer()``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

__all__ = ["METRICS_NAMESPACE", "RedactingFormatter", "get_tracer", "logger", "metrics"]

METRICS_NAMESPACE = "Closedloop"
_PERSONAL = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"  # email
    r"|\b(?:\d{1,3}\.){3}\d{1,3}\b"  # IPv4
    r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"  # IPv6, full form
    r"|\b(?:[0-9a-fA-F]{1,4}:)+:(?:[0-9a-fA-F]{1,4}:?)*[0-9a-fA-F]{0,4}\b"  # IPv6 with ::
)


def _is_http_event(message: object) -> bool:
    return (
        isinstance(message, dict)
        and "requestContext" in message
        and ("rawPath" in message or "path" in message)
    )


def _event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What an HTTP API event may show in a log: its route and size, never its body, headers, query
    string or cookies (form fields, URL tokens, credentials, IP addresses)."""
    context = event.get("requestContext") or {}
    return {
        "event": "summarised",
        "routeKey": event.get("routeKey"),
        "rawPath": event.get("rawPath") or event.get("path"),
        "requestId": context.get("requestId"),
        "bodyLength": len(event.get("body") or ""),
    }


def _is_record_batch(message: object) -> bool:
    return isinstance(message, dict) and isinstance(message.get("Records"), list)


def _batch_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What a stream or queue batch may show in a log: how many records of which kind, never their data."""
    kinds: dict[str, int] = {}
    for record in event["Records"]:
        if isinstance(record, dict):
            kind = f"{record.get('eventSource', '?')}:{record.get('eventName', 'message')}"
            kinds[kind] = kinds.get(kind, 0) + 1
    return {"event": "summarised", "records": len(event["Records"]), "kinds": kinds}


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with emails and IP addresses replaced by ``[redacted]``, and an incoming
    event (``POWERTOOLS_LOGGER_LOG_EVENT=true``) logged as its route (HTTP) or its record counts."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        if _is_http_event(log.get("message")):
            log = {**log, "message": _event_summary(log["message"])}
        elif _is_record_batch(log.get("message")):
            log = {**log, "message": _batch_summary(log["message"])}
        return _PERSONAL.sub("[redacted]", super().serialize(log))


logger = Logger(log_uncaught_exceptions=True, logger_formatter=RedactingFormatter())
metrics = Metrics(namespace=METRICS_NAMESPACE)


@cache
def get_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer()
