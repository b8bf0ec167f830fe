"""One builder for every function: names, code and log group derive from the folder under functions/."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


class ClosedloopFunction(lambda_.Function):
    """``functions/<folder>/handler.py`` on Python 3.12, arm64, with X-Ray, JSON logs and its layers.

    ``layers`` are listed in exactly the order given: a later layer's files win where they overlap.
    """

    def __init__(
        self,
        scope: Construct,
        folder: str,
        *,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        log_retention_days: int,
        memory_size: int = 256,
        timeout: Duration | None = None,
        description: str = "",
    ) -> None:
        pascal = "".join(part.capitalize() for part in folder.split("_"))
        log_group = logs.LogGroup(
            scope,
            f"{pascal}Logs",
            retention=_retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Our own role instead of the managed AWSLambdaBasicExecutionRole: writes to its own log group only.
        role = iam.Role(
            scope,
            f"{pascal}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Closedloop {folder} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        super().__init__(
            scope,
            f"{pascal}Function",
            role=role,
            description=description or f"Closedloop {folder}",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / folder), exclude=["__pycache__", "*.pyc"]),
            layers=layers,
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(10),
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": service_name(folder),
                "POWERTOOLS_METRICS_NAMESPACE": "Closedloop",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
            },
        )

        # Lambda extracts layers in the order listed, a later one overwriting an earlier one's files. With
        # @aws-cdk/aws-lambda:recognizeLayerVersion (cdk.json) CDK sorts them by construct path instead:
        # list them exactly as given (tests/infra/test_layer_order.py).
        cfn_function = cast(lambda_.CfnFunction, self.node.default_child)
        cfn_function.add_property_override("Layers", [layer.layer_version_arn for layer in layers])

        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level "
                "permissions; data resources are granted by exact ARN.",
            )
        )


def service_name(folder: str) -> str:
    """The function's Powertools service: its logs' ``service`` and its metrics' ``service`` dimension."""
    return f"closedloop-{folder.replace('_', '-')}"


# CloudWatch Logs' retention choices, in days. jsii enums carry their names, not these numbers, in Python.
RETENTION_CHOICES = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def _retention(days: int) -> logs.RetentionDays:
    """The smallest CloudWatch retention that keeps logs at least ``days``."""
    for value, name in sorted(RETENTION_CHOICES.items()):
        if value >= days:
            return logs.RetentionDays[name]
    return logs.RetentionDays.INFINITE
