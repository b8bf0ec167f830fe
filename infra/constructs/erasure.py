"""The erase function: an admin invokes it with ``{"email": "..."}`` to erase one person (GDPR art. 17).

No HTTP route and no schedule: only a principal allowed ``lambda:InvokeFunction`` on it (an admin's
role) can run it. Its grants are exactly what ``closedloop.erasure`` does: read the person's partitions,
rewrite a deal's contacts, delete items in batches; read, rewrite and list the partitions of the five
datasets that hold rows of a person and the attribute job's training journeys under ``state/`` (never
``channel_daily`` or ``spend/``).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Duration, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from closedloop.erasure import DEAL_DATASETS
from closedloop.lake import STATE_PREFIX
from infra.constructs.attribute_job import _logical_id
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.storage import StorageConstruct

# Query (a person's partitions), GetItem (none today; the store reads a deal's state by Query), PutItem
# (a deal's state, over its revision), UpdateItem (a deal event's contacts), BatchWriteItem (deletes).
TABLE_ACTIONS = ("Query", "PutItem", "UpdateItem", "BatchWriteItem")
PERSON_DATASETS = ("touches", "leads", *DEAL_DATASETS, "pipeline")
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")


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
        prefixes = [f"{name}/*" for name in PERSON_DATASETS] + [f"{STATE_PREFIX}*"]
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": prefixes}},
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(OBJECT_ACTIONS),
                resources=[bucket.arn_for_objects(prefix) for prefix in prefixes],
            )
        )
        bucket_id = _logical_id(bucket)
        for prefix in prefixes:
            Validations.of(self).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}]",
                    reason=f"The partitions of one dataset (or the job's state) under {prefix}; an erasure "
                    "rewrites the ones that hold the person's rows.",
                )
            )
        CfnOutput(
            self,
            "EraseFunctionName",
            value=self.function.function_name,
            description='Erase a person: aws lambda invoke --payload \'{"email": "..."}\' (docs/security.md)',
        ).override_logical_id("EraseFunctionName")
