"""Lake export function: the table's stream -> raw change logs (Parquet) under ``raw/`` on S3.

Invoked by the stream's second event source mapping, filtered to the items the raw datasets keep
(``closedloop.analytics.raw_export.LAKE_EXPORT_FILTERS``), in batches of up to 10,000 records or 60
seconds. The work is :func:`closedloop.analytics.raw_export.export_stream_batch`; it reads nothing from
the table. A malformed record is skipped and counted (``RawRecordsSkipped``); an S3 failure raises, so
Lambda retries the batch (bisecting it), and a retry writes the same objects.
"""

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.analytics.raw_export import export_stream_batch
from closedloop.analytics.raw_lake import RawLake
from closedloop.observability import get_tracer, logger, metrics
from closedloop.settings import LakeExportSettings

settings = LakeExportSettings.from_env(os.environ)
lake = RawLake(settings.bucket_name)
tracer = get_tracer()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = (event or {}).get("Records") or []
    # Lambda's stream event names no shard (only a tumbling window's does): the batch's digest stands in.
    result = export_stream_batch(records, lake=lake, shard_id=(event or {}).get("shardId"))
    metrics.add_metric(name="RawChangesExported", unit=MetricUnit.Count, value=result.changes)
    metrics.add_metric(name="RawObjectsWritten", unit=MetricUnit.Count, value=len(result.objects))
    metrics.add_metric(name="RawRecordsSkipped", unit=MetricUnit.Count, value=result.skipped)
    logger.info(
        "raw changes exported",
        records=len(records),
        rows=result.rows,
        objects=len(result.objects),
        skipped=result.skipped,
        ignored=result.ignored,
    )
    return {"rows": result.changes, "objects": len(result.objects), "skipped": result.skipped}
