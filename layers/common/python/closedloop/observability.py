"""One logger, metrics and (on demand) tracer per process (Powertools), configured from the environment.

Log with keyword fields, never f-strings, and never personal data (emails, names, IPs, full URLs).

The tracer is made on first use: Powertools' Tracer imports the X-Ray SDK and patches botocore, about
180 ms of cold start on this machine. The collect function, the hot path whose cold start is budgeted
at 300 ms, relies on Lambda's own active tracing instead; the other functions call ``get_tracer()``.
"""

from functools import cache

from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["METRICS_NAMESPACE", "get_tracer", "logger", "metrics"]

METRICS_NAMESPACE = "Closedloop"

logger = Logger(log_uncaught_exceptions=True)
metrics = Metrics(namespace=METRICS_NAMESPACE)


@cache
def get_tracer() -> Tracer:
    return Tracer()
