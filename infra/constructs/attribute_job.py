"""The scheduled attribute job: journeys -> attribution -> Parquet datasets on S3, every hour by default.

pyarrow and numpy come from AWS's managed "AWS SDK for pandas" layer (see docs/athena.md, Packaging):
our own common layer stays small, and the three layers together stay under Lambda's 250 MB.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from closedloop.analytics.datasets import DATASETS
from closedloop.lake import SPEND_PREFIX, STATE_PREFIX
from infra.constructs.bucket_grants import grant_prefixes, logical_id
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.layers import PYTHON_VERSION
from infra.constructs.storage import StorageConstruct

# AWS SDK for pandas release whose managed layer we use; bump deliberately (its pyarrow/numpy come with it).
# Not 3.16.1: its layer grew to ~204 MB unzipped (aws/aws-sdk-pandas#3331); 3.16.0's is ~167 MB.
SDK_FOR_PANDAS_VERSION = "3.16.0"
SDK_FOR_PANDAS_PARAMETER = (
    f"/aws/service/aws-sdk-pandas/{SDK_FOR_PANDAS_VERSION}/py{PYTHON_VERSION}/arm64/layer-arn"
)
TABLE_ACTIONS = ("GetItem", "PutItem", "Query")  # reads, and the job's watermark item
RETRY_ATTEMPTS = 2
MAX_EVENT_AGE = Duration.hours(1)


class AttributeJobConstruct(Construct):
    """``functions/attribute`` on a schedule, its exact grants, and a dead-letter queue for failed runs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers: list[lambda_.ILayerVersion],
        table: StorageConstruct,
        bucket: s3.IBucket,
        environment: dict[str, str],
        log_retention_days: int,
        schedule_expression: str = "rate(1 hour)",
    ) -> None:
        super().__init__(scope, construct_id)
        sdk_for_pandas_arn = ssm.StringParameter.value_for_string_parameter(self, SDK_FOR_PANDAS_PARAMETER)
        self.sdk_for_pandas = lambda_.LayerVersion.from_layer_version_arn(
            self, "SdkForPandas", sdk_for_pandas_arn
        )
        self.function = ClosedloopFunction(
            self,
            "attribute",
            # First: Lambda extracts layers in order, later ones overwrite shared files, so the
            # Powertools and common layers' newer pydantic/typing_extensions win over pandas' copies.
            layers=[self.sdk_for_pandas, *layers],
            environment={
                "TABLE_NAME": table.table.table_name,
                "BUCKET_NAME": bucket.bucket_name,
                "LOOKBACK_DAYS": "90",
                "BASE_CURRENCY": "USD",
                **environment,
            },
            log_retention_days=log_retention_days,
            memory_size=2048,
            timeout=Duration.minutes(15),
            description="Closedloop attribution: journeys to credits, Parquet datasets for Athena",
        )
        table.grant(self.function, *TABLE_ACTIONS)
        self._grant_bucket(bucket)

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
                reason="This queue is itself the dead-letter queue of the attribute schedule and of the "
                "function's asynchronous invocations.",
            )
        )
        # The Scheduler invokes Lambda asynchronously: its retry policy and DLQ cover delivery failures,
        # the function's async config covers runs that raise. Both end in the same queue.
        self.function.configure_async_invoke(
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )
        # Our own role (not the stack-wide one the target would create), so its grants are reviewed here.
        schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description="Closedloop: EventBridge Scheduler invokes the attribute job",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule=scheduler.ScheduleExpression.expression(schedule_expression),
            description="Closedloop: incremental attribution run",
            target=targets.LambdaInvoke(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object({"mode": "incremental"}),
                retry_attempts=RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
                dead_letter_queue=self.dead_letter_queue,
                role=schedule_role,
            ),
        )
        # For a run by hand (a backfill, the first test) and for reading failed runs (docs/deploy.md).
        for key, value, description in (
            ("AttributeFunctionName", self.function.function_name, "Invoke it for a backfill"),
            ("AttributeDeadLetterQueueUrl", self.dead_letter_queue.queue_url, "Failed attribute runs"),
        ):
            CfnOutput(self, key, value=value, description=description).override_logical_id(key)
        function_id = logical_id(self.function)
        Validations.of(schedule_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                reason="CDK's grantInvoke adds the function's versions and aliases (<arn>:*) next to its "
                "ARN; only this one function can be invoked.",
            )
        )

    def _grant_bucket(self, bucket: s3.IBucket) -> None:
        """Read/write/delete under each dataset's prefix and ``state/``, read ``spend/``, list only those."""
        grant_prefixes(
            self,
            self.function,
            bucket,
            read_write=[*(f"{d.name}/" for d in DATASETS), STATE_PREFIX],
            read_only=[SPEND_PREFIX],
            reason="one dataset's dt=<day>/part-N.parquet files the job rewrites each run, the spend "
            "CSVs it reads, or its own state between runs.",
        )
