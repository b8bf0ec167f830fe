"""Where analysts read the loop: the Parquet bucket, its Glue tables, an Athena workgroup and its queries.

The tables come from ``closedloop.analytics.datasets`` (the same definition the attribute job writes with)
and use partition projection on ``dt``: Athena computes the partitions from the table's parameters, so
no crawler, no ``MSCK REPAIR TABLE`` and no ``BatchCreatePartition`` call is ever needed.
"""

from __future__ import annotations

import re

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from closedloop.analytics.datasets import DATASETS, PARTITION_KEY, Dataset
from closedloop.analytics.queries import named_queries
from infra.config import RetentionSettings

# The Glue database's and the Athena workgroup's names are unique per account and region: every stack
# names its own (analytics_name); the default stack's are ``closedloop``, as the queries' SQL says.
MAX_NAME_LENGTH = 128  # Athena's limit on a workgroup's name (Glue allows 255)
ATHENA_RESULTS_PREFIX = "athena-results/"
# The one dataset whose rows expire with retentionDays (as its items do in the table); leads and deals stay.
TOUCHES_PREFIX = "touches/"
GIB = 1024**3
PROJECTION_START = "2020-01-01"

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


def analytics_name(stack_name: str) -> str:
    """The Glue database's and the Athena workgroup's name for a stack: ``closedloop`` for the default
    stack ``Closedloop``, else the stack name in snake case (``ClosedloopStaging``: ``closedloop_staging``),
    which Glue (lower case, letters, digits, ``_``) and Athena both accept."""
    if Token.is_unresolved(stack_name):
        raise ValueError("the stack name must be known at synthesis to name the Glue database")
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stack_name).lower()
    return re.sub(r"[^a-z0-9]+", "_", snake).strip("_")[:MAX_NAME_LENGTH]


def dataset_location(bucket_name: str, dataset: Dataset) -> str:
    """``s3://<bucket>/<dataset>/``: the table's root; partitions are ``dt=yyyy-MM-dd/`` below it."""
    return f"s3://{bucket_name}/{dataset.name}/"


def projection_parameters(bucket_name: str, dataset: Dataset) -> dict[str, str]:
    """Partition projection on ``dt``: one partition a day, from 2020 up to today."""
    key = PARTITION_KEY
    return {
        "projection.enabled": "true",
        f"projection.{key}.type": "date",
        f"projection.{key}.format": "yyyy-MM-dd",
        f"projection.{key}.range": f"{PROJECTION_START},NOW",
        f"projection.{key}.interval": "1",
        f"projection.{key}.interval.unit": "DAYS",
        # Athena substitutes ${dt}; written literally (this is not an Fn::Sub).
        "storage.location.template": f"{dataset_location(bucket_name, dataset)}{key}=${{{key}}}/",
    }


class AnalyticsConstruct(Construct):
    """The analytics bucket, the Glue database (a table per dataset) and the Athena workgroup, both named
    after the stack (:func:`analytics_name`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        production: bool,
        retention_days: int | None = None,
        bytes_scanned_cutoff: int = 10 * GIB,
    ) -> None:
        """``retention_days``: the stack's ``retentionDays``; ``None`` reads it from the context, 0 keeps."""
        super().__init__(scope, construct_id)
        if retention_days is None:
            retention_days = RetentionSettings.from_context(self.node.try_get_context).retention_days
        self.retention_days = retention_days
        # Server access logs are allowed by a bucket policy, not the legacy LogDeliveryWrite ACL, whatever
        # the app's feature flags say (context set here applies to this construct's children only).
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        removal_policy = RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging accepts only SSE-S3 targets
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(90))],
            removal_policy=removal_policy,
            auto_delete_objects=not production,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # SSE-S3, not KMS: Athena, the attribute job and analysts' tools read it with no key grants.
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="analytics/",
            lifecycle_rules=[
                # The job rewrites whole partitions each run: old versions are a 30-day undo, then go.
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="ExpireAthenaResults",
                    prefix=ATHENA_RESULTS_PREFIX,
                    expiration=Duration.days(30),
                ),
                *self._touches_expiry(retention_days),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=not production,
        )

        account = Stack.of(self).account
        name = analytics_name(Stack.of(self).stack_name)
        self.database_name = name
        self.workgroup_name = name
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=name,
                description="Closedloop: touches, leads, deals and their attribution (Parquet on S3).",
            ),
        )
        self.tables: dict[str, glue.CfnTable] = {}
        for dataset in DATASETS:
            table = self._table(dataset, account)
            table.node.add_dependency(database)
            self.tables[dataset.name] = table

        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=name,
            description="Closedloop analytics: results in the analytics bucket, scans capped per query.",
            state="ENABLED",
            # Configuration only (results live in the retained bucket): deleting the stack deletes it,
            # with its query history, so a redeploy can create it again under the same name.
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=account,
                ),
            ),
        )

        self.named_queries: dict[str, athena.CfnNamedQuery] = {}
        for query in (q.in_database(name) for q in named_queries()):
            pascal = "".join(part.capitalize() for part in query.name.split("_"))
            named = athena.CfnNamedQuery(
                self,
                f"{pascal}Query",
                name=query.name,
                description=query.description[:1024],
                database=name,
                query_string=query.sql,
                work_group=self.workgroup.ref,
            )
            self.named_queries[query.name] = named

        outputs = [
            CfnOutput(
                self, "AnalyticsBucketName", value=self.bucket.bucket_name, description="Parquet datasets"
            ),
            CfnOutput(self, "GlueDatabase", value=name, description="Glue database of the tables"),
            CfnOutput(
                self, "AthenaWorkgroup", value=self.workgroup.ref, description="Athena workgroup to query in"
            ),
        ]
        for output in outputs:  # stable keys, as docs/deploy.md names them
            output.override_logical_id(output.node.id)

    @staticmethod
    def _touches_expiry(retention_days: int) -> list[s3.LifecycleRule]:
        """Touch partitions (visitor and lead ids, landing paths) go ``retention_days`` after the last write.

        The job writes a day's partition on that day (and again for a late touch, a backfill or a full
        rebuild, which restarts the count). The version that expiry or a rewrite makes noncurrent goes a
        day later, not after the bucket's 30-day undo: the table rebuilds touches (``{"mode": "full"}``).
        """
        if not retention_days:
            return []
        return [
            s3.LifecycleRule(
                id="ExpireTouches",
                prefix=TOUCHES_PREFIX,
                expiration=Duration.days(retention_days),
                noncurrent_version_expiration=Duration.days(1),
            ),
            # Expiry leaves a delete marker; once its last old version is gone, remove the marker too.
            s3.LifecycleRule(
                id="RemoveExpiredTouchMarkers", prefix=TOUCHES_PREFIX, expired_object_delete_marker=True
            ),
        ]

    def _table(self, dataset: Dataset, account: str) -> glue.CfnTable:
        bucket_name = self.bucket.bucket_name
        pascal = "".join(part.capitalize() for part in dataset.name.split("_"))
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
                    **projection_parameters(bucket_name, dataset),
                },
                partition_keys=[
                    glue.CfnTable.ColumnProperty(
                        name=PARTITION_KEY,
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
                    location=dataset_location(bucket_name, dataset),
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
