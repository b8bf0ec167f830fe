"""The erase function: an admin invokes it with ``{"email": "..."}`` to erase one person (GDPR art. 17).

No HTTP route and no schedule: only a principal allowed ``lambda:InvokeFunction`` on it (an admin's
role) can run it. Its grants are exactly what ``closedloop.erasure`` does: read the person's partitions,
rewrite a deal's contacts, delete items in batches; read, rewrite and list the partitions of the five
datasets that hold rows of a person and the attribute job's training journeys under ``state/`` (never
``channel_daily`` or ``spend/``).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from closedloop.erasure import DEAL_DATASETS
from closedloop.lake import STATE_PREFIX
from infra.constructs.bucket_grants import grant_prefixes
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.storage import StorageConstruct

# Query (a person's partitions), GetItem (none today; the store reads a deal's state by Query), PutItem
# (a deal's state, over its revision), UpdateItem (a deal event's contacts), BatchWriteItem (deletes).
TABLE_ACTIONS = ("Query", "PutItem", "UpdateItem", "BatchWriteItem")
PERSON_DATASETS = ("touches", "leads", *DEAL_DATASETS, "pipeline")


class ErasureConstruct(Construct):
    """``functions/erase`` with the AWS SDK for pandas layer (pyarrow) and its exact grants."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers: list[lambda_.ILayerVersion],
        table: StorageConstruct,
        bucket: s3.IBucket,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ClosedloopFunction(
            self,
            "erase",
            layers=layers,
            environment={"TABLE_NAME": table.table.table_name, "BUCKET_NAME": bucket.bucket_name},
            log_retention_days=log_retention_days,
            memory_size=1024,
            timeout=Duration.minutes(5),
            description='Closedloop erasure of one person: invoke with {"email": "..."}',
        )
        table.grant(self.function, *TABLE_ACTIONS)
        grant_prefixes(
            self,
            self.function,
            bucket,
            read_write=[*(f"{name}/" for name in PERSON_DATASETS), STATE_PREFIX],
            reason="the partitions of one dataset (or the job's state); an erasure rewrites the ones "
            "that hold the person's rows.",
        )
        CfnOutput(
            self,
            "EraseFunctionName",
            value=self.function.function_name,
            description='Erase a person: aws lambda invoke --payload \'{"email": "..."}\' (docs/security.md)',
        ).override_logical_id("EraseFunctionName")
