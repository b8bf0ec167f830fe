"""CRM write-back worker: "lead changed" messages -> the lead's source fields on each configured CRM.

Invoked by the write-back queue's event source mapping with ``ReportBatchItemFailures``: each message
is one lead (:func:`closedloop.writeback.service.write_back_lead`). A failed message is made visible
again after its back-off (a rate limit's ``Retry-After``, else exponential with jitter) and retried;
after the queue's ``maxReceiveCount`` it moves to the dead-letter queue.
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
from closedloop.writeback.queue import WritebackQueue, parse_lead_changed
from closedloop.writeback.service import CrmWriter, configured_writers, retry_delay, write_back_lead

settings = WritebackSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
secret = WebhookSecret(settings.webhook_secret_arn, max_age=settings.webhook_secret_max_age)
queue = WritebackQueue(settings.writeback_queue_url)
# Report every failed message, even when all fail: each carries its own back-off (visibility timeout).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
tracer = get_tracer()


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


def _retry_later(record: SQSRecord, error: Exception | None) -> None:
    receives = int(record.attributes.approximate_receive_count or 1)
    delay = retry_delay(
        error, receives, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
    )
    try:
        queue.postpone(record.receipt_handle, delay)
    except DependencyError:
        logger.warning("back-off not set: the queue's visibility timeout applies")
    logger.info("write-back retried later", delay_seconds=delay, receives=receives)


def record_handler(record: SQSRecord) -> None:
    message = parse_lead_changed(record.body)
    try:
        writers = writers_for(secret.load())
    except CrmNotConfiguredError:
        writers = []
    try:
        report = write_back_lead(message.lead_id, store=store, writers=writers, now=now_ms())
    except (CrmApiError, DependencyError) as exc:
        metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
        logger.warning("write-back failed", error=str(exc), status=getattr(exc, "status", None))
        _retry_later(record, exc)
        raise
    metrics.add_metric(name="WritebackWritten", unit=MetricUnit.Count, value=len(report.written))
    metrics.add_metric(name="WritebackUnchanged", unit=MetricUnit.Count, value=len(report.unchanged))
    logger.info("write-back done", written=report.written, unchanged=report.unchanged, missing=report.missing)
    receives = int(record.attributes.approximate_receive_count or 1)
    if report.missing and receives < settings.missing_record_retries:
        _retry_later(record, None)
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
