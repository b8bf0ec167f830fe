"""Attribute function: scheduled (incremental) or by hand (a backfill range, or a full rebuild).

Events::

    {"mode": "incremental"}                      # the schedule: the days since the last run
    {"from": "2026-01-01", "to": "2026-03-31"}   # a backfill
    {"mode": "full"}                             # every day of the retention period
"""

import os
from datetime import date, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.analytics.job import days_between, run_attribute_job
from closedloop.clock import day_of, now_ms
from closedloop.lake import Lake
from closedloop.observability import get_tracer, logger, metrics
from closedloop.settings import AttributeSettings
from closedloop.store import DynamoStore

JOB = "attribute"
settings = AttributeSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
lake = Lake(settings.bucket_name)
tracer = get_tracer()


def days_to_refresh(event: dict[str, Any], *, now: int, watermark: int | None) -> list[str]:
    """The days a run refreshes: the asked range, or from the watermark's day (or the lookback) to today."""
    today = date.fromisoformat(day_of(now))
    if "from" in event or "to" in event:
        first = date.fromisoformat(str(event.get("from") or event.get("to")))
        last = date.fromisoformat(str(event.get("to") or event.get("from")))
        if last < first or (last - first).days > 3660:
            raise ValueError("a backfill needs from <= to, at most ten years apart")
        return days_between(first, last)
    if event.get("mode") == "full" or watermark is None:
        return days_between(today - timedelta(days=settings.retention_days or 3650), today)
    return days_between(date.fromisoformat(day_of(watermark)), today)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = now_ms()
    event = event or {}
    watermark = store.get_job_watermark(JOB)
    days = days_to_refresh(event, now=started, watermark=watermark)
    backfill = "from" in event or "to" in event
    rebuild = event.get("mode") == "full" or (watermark is None and not backfill)
    report = run_attribute_job(
        store, lake, days=days, now_ms=started, settings=settings.job_settings(), rebuild=rebuild
    )
    if not backfill:  # a backfill of old days must not make the schedule skip what changed since its last run
        store.set_job_watermark(JOB, started)
    metrics.add_metric(name="AttributeRunSeconds", unit=MetricUnit.Seconds, value=(now_ms() - started) / 1000)
    metrics.add_metric(name="CreditRowsWritten", unit=MetricUnit.Count, value=report.credit_rows)
    metrics.add_metric(name="PartitionsWritten", unit=MetricUnit.Count, value=report.partitions_written)
    logger.info("attribute run done", **report.as_dict())
    return report.as_dict()
