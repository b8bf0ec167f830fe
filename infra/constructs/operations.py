"""Operations: alarms on what breaks the loop, an encrypted SNS topic they notify, and the loop's dashboard.

Alarms watch AWS's own metrics (API Gateway, Lambda, DynamoDB, SQS); the dashboard adds the loop's
business metrics, which the functions publish with Powertools (namespace ``Closedloop``, one ``service``
dimension per function, plus ``crm`` and ``reason`` on the webhook metrics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from closedloop.observability import METRICS_NAMESPACE
from closedloop.store import schema
from infra.constructs.functions import service_name

FIVE_MINUTES = Duration.minutes(5)
ONE_HOUR = Duration.hours(1)
# API: alarm when more than this share of requests fail with a 5xx in 2 of 3 five-minute periods, once
# there is traffic enough for a rate to mean something. By contract a 5xx is only a dependency failure.
API_5XX_RATE_PERCENT = 1
API_5XX_MIN_REQUESTS = 20
# DynamoDB on-demand throttles only on a hot partition or a doubling of the previous peak: the SDK
# retries, so a single event is noise; throttling in two consecutive periods is not.
DYNAMODB_THROTTLE_EVENTS = 1
# When the schedule cannot be read as a rate (cron, at): assume a daily run, with two hours of slack.
DEFAULT_NOT_RUNNING_WINDOW = Duration.hours(26)
MAX_ALARM_WINDOW_SECONDS = 7 * 24 * 3600  # CloudWatch: period x evaluation periods <= 7 days
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def not_running_window(schedule_expression: str) -> Duration:
    """How long without a single invocation means the schedule is broken: twice its interval.

    ``rate(1 hour)`` gives 2 hours; a cron or one-off expression gives 26 hours (a daily run, late).
    """
    match = _RATE.match(schedule_expression.strip())
    if not match:
        return DEFAULT_NOT_RUNNING_WINDOW
    seconds = 2 * int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]
    return Duration.seconds(min(max(seconds, 300), MAX_ALARM_WINDOW_SECONDS))


def _ours(
    name: str,
    function: str,
    *,
    label: str | None = None,
    statistic: str = "Sum",
    period: Duration = ONE_HOUR,
) -> cloudwatch.Metric:
    """One of our Powertools metrics, as the function named by its folder publishes it."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service_name(function)},
        statistic=statistic,
        period=period,
        label=label or name,
    )


def _search(
    name: str, dimensions: str, function: str, *, label: str = "", hourly: bool = True
) -> cloudwatch.MathExpression:
    """Every series of a metric whose dimensions vary (a CRM, a rejection reason): a search expression.

    Not ``hourly``: the widget's period is used (a whole time range for a single-value total).
    """
    query = f'{{{METRICS_NAMESPACE},{dimensions}}} MetricName="{name}" service="{service_name(function)}"'
    period = ", 3600" if hourly else ""
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{query}', 'Sum'{period})", using_metrics={}, label=label, period=ONE_HOUR
    )


class OperationsConstruct(Construct):
    """Alarms to an encrypted SNS topic (e-mailed when ``alarm_email`` is set) and the loop's dashboard.

    ``functions`` maps the folder under ``functions/`` to the function; ``attribute`` is the scheduled
    job. ``dead_letter_queues`` maps a label to a queue whose every message is a failure.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        http_api: apigwv2.HttpApi,
        functions: Mapping[str, lambda_.IFunction],
        table: dynamodb.TableV2,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        attribute_schedule: str,
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.alarms: list[cloudwatch.Alarm] = []

        # CloudWatch publishes to an encrypted topic only with a key whose policy lets it use the key:
        # an AWS-managed key (alias/aws/sns) cannot be given that, so the topic gets its own key.
        self.topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Closedloop: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # it encrypts notifications in flight, nothing at rest
            pending_window=Duration.days(7),
        )
        alarms_of_this_account = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}"
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": f"{alarms_of_this_account}:alarm:*"},
                },
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="Closedloop alarms",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: with only its TLS Deny,
        # CloudWatch could not publish a single alarm. So allow it explicitly, for this account's alarms.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": f"{alarms_of_this_account}:alarm:*"},
                },
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._action = cloudwatch_actions.SnsAction(self.topic)

        self._api_alarm(http_api)
        for name, function in functions.items():
            # The attribute job's errors have their own alarm below, over its schedule's hour.
            self._function_alarms(name, function, errors=name != "attribute")
        self._table_alarm(table)
        attribute = functions.get("attribute")
        if attribute is not None:
            self._schedule_alarm(attribute, attribute_schedule)
        for label, queue in dead_letter_queues.items():
            self._queue_alarm(label, queue)

        self.dashboard = self._dashboard(http_api, functions, table, dead_letter_queues)

        topic_output = CfnOutput(
            self, "AlarmTopicArn", value=self.topic.topic_arn, description="Alarms are sent here"
        )
        dashboard_output = CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{stack.region}.console.aws.amazon.com/cloudwatch/home?region={stack.region}"
            f"#dashboards/dashboard/{self.dashboard.dashboard_name}",
            description="The loop's health: events, leads, webhooks, attribution runs",
        )
        for output in (topic_output, dashboard_output):
            output.override_logical_id(output.node.id)  # stable keys, as docs/deploy.md names them

    # Alarms ---------------------------------------------------------------------------------------

    def _alarm(
        self,
        construct_id: str,
        *,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _api_alarm(self, http_api: apigwv2.HttpApi) -> None:
        rate = cloudwatch.MathExpression(
            expression=f"IF(requests >= {API_5XX_MIN_REQUESTS}, 100 * errors / requests, 0)",
            using_metrics={
                "requests": http_api.metric_count(period=FIVE_MINUTES, statistic="Sum"),
                "errors": http_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
            },
            label="5xx responses (% of requests)",
            period=FIVE_MINUTES,
        )
        self._alarm(
            "Api5xxRate",
            metric=rate,
            threshold=API_5XX_RATE_PERCENT,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=f"More than {API_5XX_RATE_PERCENT}% of API requests answered 5xx (a dependency "
            "failed: DynamoDB, Secrets Manager, a function timeout). Tracker beacons and CRM webhooks are "
            "retried by their senders; see the failing function's logs and the access logs.",
        )

    def _function_alarms(self, name: str, function: lambda_.IFunction, *, errors: bool = True) -> None:
        pascal = "".join(part.capitalize() for part in name.split("_"))
        if errors:
            self._alarm(
                f"{pascal}Errors",
                metric=function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description=f"The {name} function raised or timed out (bad input is a 4xx, never an "
                "error). See its log group for the exception.",
            )
        self._alarm(
            f"{pascal}Throttles",
            metric=function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            description=f"Lambda throttled the {name} function: the account's concurrency is used up. "
            "Raise the account quota, or lower the API stage's throttling.",
        )

    def _table_alarm(self, table: dynamodb.TableV2) -> None:
        metrics: dict[str, cloudwatch.IMetric] = {}
        indexes: list[str | None] = [None, *(i["IndexName"] for i in schema.GLOBAL_SECONDARY_INDEXES)]
        for n, index in enumerate(indexes):
            dimensions = {"TableName": table.table_name}
            if index:
                dimensions["GlobalSecondaryIndexName"] = index
            for kind in ("Read", "Write"):
                metrics[f"{kind.lower()}{n}"] = cloudwatch.Metric(
                    namespace="AWS/DynamoDB",
                    metric_name=f"{kind}ThrottleEvents",
                    dimensions_map=dimensions,
                    statistic="Sum",
                    period=FIVE_MINUTES,
                )
        throttles = cloudwatch.MathExpression(
            expression=f"SUM([{', '.join(metrics)}])",
            using_metrics=metrics,
            label="DynamoDB read and write throttle events (table and indexes)",
            period=FIVE_MINUTES,
        )
        self.table_throttles = throttles
        self._alarm(
            "DynamoDbThrottles",
            metric=throttles,
            threshold=DYNAMODB_THROTTLE_EVENTS,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            description="DynamoDB throttled reads or writes for 10 minutes: a hot partition key or a "
            "sudden jump above the table's previous peak. Writes are retried; persistent throttling shows "
            "as API 5xx. See the table's CloudWatch Contributor Insights.",
        )

    def _schedule_alarm(self, attribute: lambda_.IFunction, schedule_expression: str) -> None:
        window = not_running_window(schedule_expression)
        self._alarm(
            "AttributeJobNotRunning",
            metric=attribute.metric_invocations(period=window, statistic="Sum"),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,  # no invocation at all is the failure
            description=f"The attribute job was not invoked for {window.to_human_string()} "
            f"(schedule {schedule_expression}): the EventBridge Scheduler schedule is disabled, deleted "
            "or cannot invoke the function. Athena's datasets are going stale.",
        )
        self._alarm(
            "AttributeJobFailing",
            metric=attribute.metric_errors(period=ONE_HOUR, statistic="Sum"),
            threshold=1,
            description="An attribute run failed (it is retried twice, then lands in the dead-letter "
            "queue). Its log names the error; re-run by invoking the function with the failed event.",
        )

    def _queue_alarm(self, label: str, queue: sqs.IQueue) -> None:
        pascal = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", label) if part)
        self._alarm(
            f"{pascal}DeadLetters",
            metric=queue.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            threshold=1,
            description=f"Messages are waiting in the {label} dead-letter queue: work that failed after "
            "its retries. Read them (they hold the failed event), fix the cause, then re-drive or delete.",
        )

    # Dashboard ------------------------------------------------------------------------------------

    def _dashboard(
        self,
        http_api: apigwv2.HttpApi,
        functions: Mapping[str, lambda_.IFunction],
        table: dynamodb.TableV2,
        dead_letter_queues: Mapping[str, sqs.IQueue],
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.days(7))
        accepted = _search("WebhooksAccepted", "crm,service", "crm_webhook", hourly=False)
        rejected = _search("WebhooksRejected", "crm,reason,service", "crm_webhook", hourly=False)
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# Closedloop\nThe loop, left to right: visits collected (tracker), leads "
                "identified (forms), deal events from the CRMs (webhooks), attribution runs (Parquet "
                "for Athena). Totals are over the dashboard's time range; graphs are hourly sums.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.SingleValueWidget(
                title="Totals over the time range",
                metrics=[
                    _ours("EventsAccepted", "collect", label="Events collected"),
                    _ours("LeadsCreated", "identify", label="Leads created"),
                    cloudwatch.MathExpression(
                        expression="SUM(accepted)",
                        using_metrics={"accepted": accepted},
                        label="Webhooks accepted",
                        period=ONE_HOUR,
                    ),
                    cloudwatch.MathExpression(
                        expression="SUM(rejected)",
                        using_metrics={"rejected": rejected},
                        label="Webhooks rejected",
                        period=ONE_HOUR,
                    ),
                    _ours("CreditRowsWritten", "attribute", label="Credit rows written"),
                ],
                set_period_to_time_range=True,
                width=24,
                height=3,
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="1-2. Events collected",
                left=[
                    _ours("EventsAccepted", "collect"),
                    _ours("EventsDuplicated", "collect"),
                    _ours("BotEventsDropped", "collect"),
                    _ours("OptOutEventsDropped", "collect"),  # Sec-GPC: 1 (HONOR_GPC)
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="3. Leads identified",
                left=[
                    _ours("LeadsCreated", "identify"),
                    _ours("LeadsUpdated", "identify"),
                    _ours("HoneypotSubmissions", "identify"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="4. Webhooks accepted, by CRM",
                left=[_search("WebhooksAccepted", "crm,service", "crm_webhook")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="4. Webhooks rejected, by CRM and reason",
                left=[_search("WebhooksRejected", "crm,reason,service", "crm_webhook")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="4. Deal events stored, by CRM",
                left=[_search("DealEventsStored", "crm,service", "crm_webhook")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Attribute job: run time (s)",
                left=[
                    _ours("AttributeRunSeconds", "attribute", statistic="Maximum", label="longest run"),
                    _ours("AttributeRunSeconds", "attribute", statistic="Average", label="average run"),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Attribute job: rows and partitions written",
                left=[_ours("CreditRowsWritten", "attribute")],
                right=[_ours("PartitionsWritten", "attribute")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[http_api.metric_count(period=FIVE_MINUTES, statistic="Sum", label="requests")],
                right=[
                    http_api.metric_client_error(period=FIVE_MINUTES, statistic="Sum", label="4xx"),
                    http_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum", label="5xx"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Function duration p99 (ms)",
                left=[
                    f.metric_duration(period=FIVE_MINUTES, statistic="p99", label=name)
                    for name, f in functions.items()
                    if name != "attribute"
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[
                    f.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=f"{name} errors")
                    for name, f in functions.items()
                ],
                right=[
                    f.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label=f"{name} throttles")
                    for name, f in functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="DynamoDB capacity used and throttles",
                left=[
                    table.metric_consumed_read_capacity_units(period=FIVE_MINUTES, statistic="Sum"),
                    table.metric_consumed_write_capacity_units(period=FIVE_MINUTES, statistic="Sum"),
                ],
                right=[self.table_throttles],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues: messages waiting",
                left=[
                    q.metric_approximate_number_of_messages_visible(
                        period=FIVE_MINUTES, statistic="Maximum", label=label
                    )
                    for label, q in dead_letter_queues.items()
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4)
        )
        return dashboard
