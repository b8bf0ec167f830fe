"""CRM write-back worker: "lead changed" messages -> the lead's source fields on each configured CRM.

Invoked by the write-back queue's event source mapping with ``ReportBatchItemFailures``: each message
is one lead, handled by :class:`closedloop.writeback.worker.Worker` (its retries and re-queues are
described there); a message whose handling raises is reported failed and comes back.
"""

import os
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.crm import CrmNotConfiguredError, CrmSecrets
from closedloop.deals import WebhookSecret
from closedloop.observability import get_tracer, logger, metrics
from closedloop.settings import WritebackSettings
from closedloop.store import DynamoStore
from closedloop.writeback.queue import WritebackQueue
from closedloop.writeback.service import CrmWriter, configured_writers
from closedloop.writeback.throttle import CrmThrottle
from closedloop.writeback.worker import Worker

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


def configured() -> list[CrmWriter]:
    """The writers of the CRMs the webhook secret configures (none when it configures none)."""
    try:
        return writers_for(secret.load())
    except CrmNotConfiguredError:
        return []


worker = Worker(store=store, writers=configured, queue=queue, throttle=throttle, settings=settings)


def record_handler(record: SQSRecord) -> None:
    worker.handle(
        record.body,
        receives=int(record.attributes.approximate_receive_count or 1),
        receipt_handle=record.receipt_handle,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
