"""CRM write-back worker: "lead changed" messages -> the lead's source fields on each configured CRM.

Invoked by the write-back queue's event source mapping with ``ReportBatchItemFailures``: each message
is one lead (:func:`closedloop.writeback.service.write_back_lead`). A failed message is made visible
again after its back-off (exponential with jitter, or the CRM's ``Retry-After``) and retried; after the
queue's ``maxReceiveCount`` it moves to the dead-letter queue. A lead stopped only by rate limits is
re-queued as a new message for after the wait, uncounted, and the rate-limited CRM is held back for the
rest of the batch (and later batches of this warm function) until then (:mod:`closedloop.writeback.queue`).
"""

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.clock import now_ms
from closedloop.crm import CrmApiError, CrmNotConfiguredError, CrmSecrets
from closedloop.deals import WebhookSecret
from closedloop.errors import DependencyError
from closedloop.observability import get_tracer, logger, metrics
from closedloop.settings import WritebackSettings
from closedloop.store import DynamoStore
from closedloop.writeback.queue import LeadChanged, WritebackQueue, parse_lead_changed, rate_limited_copy
from closedloop.writeback.service import CrmWriter, configured_writers, retry_delay, write_back_lead
from closedloop.writeback.throttle import CrmRateLimitedError, CrmThrottle

settings = WritebackSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
secret = WebhookSecret(settings.webhook_secret_arn, max_age=settings.webhook_secret_max_age)
queue = WritebackQueue(settings.writeback_queue_url)
# Report every failed message, even when all fail: each carries its own back-off (visibility timeout).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
tracer = get_tracer()
# The CRMs a rate limit holds back, for every message this warm function handles.
throttle = CrmThrottle()


_writers: tuple[CrmSecrets, list[CrmWriter]] | None = None


def writers_for(secrets: CrmSecrets) -> list[CrmWriter]:
    """The writers of the current secret, kept while it is unchanged (HubSpot's property check and
    Salesforce's token then happen once per warm function, not once per message)."""
    global _writers
    if _writers is None or _writers[0] is not secrets:
        _writers = (secrets, configured_writers(secrets))
    return _writers[1]


class ContactNotYetInCrmError(Exception):
    """The CRM has no record with the lead's e-mail yet (its own form sync may be slower): retried."""


def _receives(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def _retry_later(record: SQSRecord, error: Exception | None, attempt: int) -> None:
    delay = retry_delay(
        error, attempt, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
    )
    try:
        queue.postpone(record.receipt_handle, delay)
    except DependencyError:
        logger.warning("back-off not set: the queue's visibility timeout applies")
    logger.info("write-back retried later", delay_seconds=delay, attempt=attempt, receives=_receives(record))


def _requeue(record: SQSRecord, message: LeadChanged, *, until: int, now: int) -> bool:
    """Re-send the lead for ``until`` as a new message (``False``: it is retried on this one instead)."""
    planned = rate_limited_copy(message, receives=_receives(record), until=until, now=now)
    if planned is None:
        return False
    copy, delay = planned
    try:
        queue.requeue(copy, delay)
    except DependencyError as exc:
        logger.warning("re-queue refused: retried on the received message", error=str(exc))
        return False
    logger.info("write-back re-queued", delay_seconds=delay, failures=copy.failures)
    return True


def record_handler(record: SQSRecord) -> None:
    message = parse_lead_changed(record.body)
    attempt = message.failures + _receives(record)
    now = now_ms()
    # A long rate-limit wait, relayed 15 minutes at a time: no CRM is called before its end.
    not_before = message.not_before or 0
    if now < not_before and _requeue(record, message, until=not_before, now=now):
        return
    try:
        writers = writers_for(secret.load())
    except CrmNotConfiguredError:
        writers = []
    try:
        report = write_back_lead(message.lead_id, store=store, writers=writers, now=now, throttle=throttle)
    except CrmRateLimitedError as exc:
        metrics.add_metric(name="WritebackRateLimited", unit=MetricUnit.Count, value=1)
        logger.info("write-back rate-limited", crms=sorted(exc.waits), wait_seconds=exc.retry_after)
        until = now + 1000 * retry_delay(
            exc, attempt, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
        )
        if not _requeue(record, message, until=until, now=now):
            _retry_later(record, exc, attempt)
            raise
        return
    except (CrmApiError, DependencyError) as exc:
        metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
        logger.warning("write-back failed", error=str(exc), status=getattr(exc, "status", None))
        _retry_later(record, exc, attempt)
        raise
    metrics.add_metric(name="WritebackWritten", unit=MetricUnit.Count, value=len(report.written))
    metrics.add_metric(name="WritebackUnchanged", unit=MetricUnit.Count, value=len(report.unchanged))
    logger.info("write-back done", written=report.written, unchanged=report.unchanged, missing=report.missing)
    if report.missing and attempt < settings.missing_record_retries:
        _retry_later(record, None, attempt)
        raise ContactNotYetInCrmError(", ".join(report.missing))
    if report.missing:
        metrics.add_metric(name="WritebackRecordMissing", unit=MetricUnit.Count, value=len(report.missing))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
