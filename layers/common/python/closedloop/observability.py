"""One logger, tracer and metrics object per process (Powertools), configured from the environment.

Log with keyword fields, never f-strings, and never personal data (emails, names, IPs, full URLs).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["logger", "metrics", "tracer"]

METRICS_NAMESPACE = "Closedloop"

logger = Logger(log_uncaught_exceptions=True)
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)
