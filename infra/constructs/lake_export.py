"""The lake export: a second consumer of the table's stream writes the raw change logs under ``raw/``.

::

    table stream ──(filtered: touches, visitor links, leads, deal states, deal events)──▶ lake_export
        │  batches of up to 10,000 records or 60 s, bisected on error, then the DLQ  │
        │                                                                          ▼
        └── DLQ (batch positions that kept failing)        s3://<analytics>/raw/<dataset>/dt=<day>/*.parquet
                                                                                   │
                                  Glue tables raw_touches, raw_visitor_links, raw_leads, raw_deals,
                                  raw_deal_events (plain Parquet, partition projection on dt)

The function reads nothing from the table: its role may read the stream (the event source mapping's
grant) and put objects under ``raw/``, nothing else. See ``closedloop.analytics.raw_export`` and
docs/athena.md ("Raw datasets").
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from closedloop.analytics.datasets import PARTITION_KEY, Dataset
from closedloop.analytics.raw import RAW_DATASETS, RAW_PREFIX
from closedloop.analytics.raw_export import LAKE_EXPORT_FILTERS
from infra.constructs.analytics import (
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    PROJECTION_START,
)
from infra.constructs.bucket_grants import logical_id
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.storage import StorageConstruct

__all__ = ["BATCH_SIZE", "BATCH_WINDOW", "STREAM_RETRIES", "LakeExportConstruct", "raw_location"]

BATCH_SIZE = 10_000  # DynamoDB Streams' maximum; Lambda's 6 MB payload may cut a batch shorter
BATCH_WINDOW = Duration.seconds(60)  # fewer, larger objects: one per dataset per batch
STREAM_RETRIES = 10  # bisected each time; then the batch's position goes to the DLQ (records stay 24 h)


def raw_location(bucket_name: str, dataset: Dataset) -> str:
    """``s3://<bucket>/raw/<dataset>/``: the table's root; partitions are ``dt=yyyy-MM-dd/`` below it."""
    return f"s3://{bucket_name}/{RAW_PREFIX}{dataset.name}/"


class LakeExportConstruct(Construct):
    """``functions/lake_export`` on the table's stream, its DLQ, and the Glue tables of the raw datasets."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers: Sequence[lambda_.ILayerVersion],
        storage: StorageConstruct,
        bucket: s3.IBucket,
        database_name: str,
        log_retention_days: int,
        depends_on: Sequence[IConstruct] = (),
    ) -> None:
        """``layers``: pyarrow's (the AWS SDK for pandas layer) first, then Powertools and the common
        layer. ``depends_on``: what creates the Glue database (the analytics construct's ``Database``)."""
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        Validations.of(self.dead_letter_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue of the lake export's stream batches.",
            )
        )
        self.function = ClosedloopFunction(
            self,
            "lake_export",
            layers=list(layers),
            environment={"TABLE_NAME": storage.table.table_name, "BUCKET_NAME": bucket.bucket_name},
            log_retention_days=log_retention_days,
            memory_size=1024,
            timeout=Duration.minutes(2),
            description="Closedloop: table changes to raw change logs (Parquet) for the lake",
        )
        # Exactly PutObject under raw/: the export never reads, lists or deletes an object.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{RAW_PREFIX}*")]
            )
        )
        Validations.of(self).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{RAW_PREFIX}*]",
                reason="Objects under raw/*: one immutable Parquet object per stream batch and dataset, "
                "named by the batch (raw/<dataset>/dt=<day>/<shard>-<first>-<last>.parquet).",
            )
        )
        self.event_source = sources.DynamoEventSource(
            storage.table,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=BATCH_SIZE,
            max_batching_window=BATCH_WINDOW,
            bisect_batch_on_error=True,
            retry_attempts=STREAM_RETRIES,
            max_record_age=Duration.hours(24),
            on_failure=sources.SqsDlq(self.dead_letter_queue),
            filters=[lambda_.FilterCriteria.filter(pattern) for pattern in LAKE_EXPORT_FILTERS],
        )
        self.function.add_event_source(self.event_source)

        account = Stack.of(self).account
        self.database_name = database_name
        self.tables: dict[str, glue.CfnTable] = {}
        for dataset in RAW_DATASETS:
            table = self._table(dataset, account, bucket.bucket_name)
            for dependency in depends_on:
                table.node.add_dependency(dependency)
            self.tables[dataset.name] = table

    def _table(self, dataset: Dataset, account: str, bucket_name: str) -> glue.CfnTable:
        pascal = "".join(part.capitalize() for part in dataset.name.split("_"))
        key = PARTITION_KEY
        location = raw_location(bucket_name, dataset)
        return glue.CfnTable(
            self,
            f"{pascal}Table",
            catalog_id=account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=dataset.name,
                description=dataset.description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    "projection.enabled": "true",
                    f"projection.{key}.type": "date",
                    f"projection.{key}.format": "yyyy-MM-dd",
                    f"projection.{key}.range": f"{PROJECTION_START},NOW",
                    f"projection.{key}.interval": "1",
                    f"projection.{key}.interval.unit": "DAYS",
                    # Athena substitutes ${dt}; written literally (this is not an Fn::Sub).
                    "storage.location.template": f"{location}{key}=${{{key}}}/",
                },
                partition_keys=[
                    glue.CfnTable.ColumnProperty(
                        name=key,
                        type="string",
                        comment=f"Partition, yyyy-MM-dd (UTC): {dataset.partitioned_by}."[:255],
                    )
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[
                        glue.CfnTable.ColumnProperty(
                            name=column.name, type=column.glue_type, comment=column.description[:255]
                        )
                        for column in dataset.columns
                    ],
                    location=location,
                    input_format=PARQUET_INPUT_FORMAT,
                    output_format=PARQUET_OUTPUT_FORMAT,
                    compressed=False,
                    stored_as_sub_directories=False,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=PARQUET_SERDE, parameters={"serialization.format": "1"}
                    ),
                ),
            ),
        )
