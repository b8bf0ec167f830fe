"""Publish function: the table's stream -> write-back messages and domain events on the bus.

Invoked by the DynamoDB stream's event source mapping (filtered to the changes of interest, in shard
order, ``ReportBatchItemFailures``). The work is :func:`closedloop.publish.relay_changes`; what can
never be delivered is counted (``ChangesSkipped``, ``EventsRefused``), not retried.
"""

import os
from collections.abc import Sequence
from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.attribution.options import AttributionModel, AttributionOptions
from closedloop.changes import TableChange, interpret_change
from closedloop.deal_attribution import credit_deal
from closedloop.deals import StoredDeal
from closedloop.events import DealAttribution, EventPublisher
from closedloop.models.visits import Touch
from closedloop.observability import get_tracer, logger, metrics
from closedloop.publish import relay_changes
from closedloop.settings import PublishSettings
from closedloop.store import DynamoStore
from closedloop.writeback.queue import WritebackQueue

settings = PublishSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
publisher = EventPublisher(settings.event_bus_name) if settings.event_bus_name else None
queue = WritebackQueue(settings.writeback_queue_url) if settings.writeback_queue_url else None
options = AttributionOptions(lookback_days=settings.lookback_days)
tracer = get_tracer()


def credit(deal: StoredDeal, journey: Sequence[Touch], lead_created_at: int | None) -> DealAttribution:
    return credit_deal(
        deal,
        journey,
        lead_created_at=lead_created_at,
        model=AttributionModel(settings.attribution_model),
        options=options,
    )


def table_changes(event: dict[str, Any]) -> list[TableChange]:
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if stream is None or record.event_name is None:
            continue
        keys = stream.keys
        changes.append(
            TableChange(
                event_name=record.event_name.name,
                pk=str(keys.get("pk", "")),
                sk=str(keys.get("sk", "")),
                new=stream.new_image or None,
                old=stream.old_image or None,
                sequence_number=stream.sequence_number or "",
            )
        )
    return changes


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    changes = table_changes(event)
    result = relay_changes(
        changes,
        interpret=partial(interpret_change, reader=store, credit=credit),
        publisher=publisher,
        queue=queue,
    )
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=result.events)
    metrics.add_metric(name="WritebackLeadsQueued", unit=MetricUnit.Count, value=result.leads)
    if result.skipped:
        metrics.add_metric(name="ChangesSkipped", unit=MetricUnit.Count, value=result.skipped)
    if result.refused:
        metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=result.refused)
    if result.failed_sequence is not None:
        metrics.add_metric(name="ChangesRetried", unit=MetricUnit.Count, value=1)
        return {"batchItemFailures": [{"itemIdentifier": result.failed_sequence}]}
    return {"batchItemFailures": []}
