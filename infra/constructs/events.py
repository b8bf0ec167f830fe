"""Closing the loop outward: the event bus, the publish function on the table's stream, the CRM
write-back queue and worker, and two example automation rules (disabled until the user enables them).

::

    table stream ──▶ publish ──▶ write-back queue ──▶ crm_writeback ──▶ HubSpot / Salesforce / Pipedrive
       (filtered)       │              └── DLQ (after MAX_RECEIVES)
                        └──────▶ event bus ──▶ rules (API destinations: e-mail tool, Slack) ──▶ DLQ

Only the publish function may put events on the bus; it and the worker (which re-queues a lead a rate
limit stopped, closedloop.writeback.queue) send to the queue; only the worker reads the queue and the
CRM secret's write-back settings. See docs/events.md and docs/crm-writeback.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from aws_cdk import Acknowledgment, CfnOutput, Duration, SecretValue, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field

from closedloop.changes import STREAM_FILTERS
from closedloop.events import EVENT_SOURCE, DealWon, LeadIdentified
from closedloop.writeback.queue import MAX_RECEIVES
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.storage import StorageConstruct

# The worker's timeout; SQS's visibility timeout is six times it, as Lambda's documentation advises.
WORKER_TIMEOUT = Duration.seconds(60)
STREAM_RETRIES = 10  # then the batch's position goes to the stream DLQ (records stay 24 h in the stream)


class EventsSettings(BaseModel):
    """The recipes' settings, from cdk.json's context (``-c key=value``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    attribution_model: Annotated[str, Field(alias="eventsAttributionModel")] = "w_shaped"
    email_tool_endpoint: Annotated[str, Field(alias="emailToolWebhookUrl")] = (
        "https://hooks.example.com/closedloop/guide-leads"
    )
    guide_form_id: Annotated[str, Field(alias="guideFormId")] = "guide-download"
    guide_campaign: Annotated[str, Field(alias="guideCampaign")] = "spring-launch"
    sales_slack_channel: Annotated[str, Field(alias="salesSlackChannel")] = "#sales"

    @classmethod
    def from_context(cls, get: object) -> EventsSettings:
        values = {}
        for info in cls.model_fields.values():
            value = get(info.alias) if callable(get) and info.alias else None
            if value not in (None, ""):
                values[info.alias] = value
        return cls.model_validate(values)


def _queue(scope: Construct, construct_id: str, **kwargs: object) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        **kwargs,  # type: ignore[arg-type]
    )


class EventsConstruct(Construct):
    """The bus, the publish function, the write-back queue and worker, and the example rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers: Sequence[lambda_.ILayerVersion],
        numpy_layer: lambda_.ILayerVersion,
        storage: StorageConstruct,
        crm_secret: secretsmanager.ISecret,
        log_retention_days: int,
        lookback_days: int,
        settings: EventsSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="Closedloop domain events (docs/events.md)")

        # -- the write-back queue -------------------------------------------------------------------
        self.writeback_dead_letter_queue = _queue(
            self, "WritebackDeadLetterQueue", retention_period=Duration.days(14)
        )
        self.writeback_queue = _queue(
            self,
            "WritebackQueue",
            visibility_timeout=Duration.seconds(WORKER_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVES, queue=self.writeback_dead_letter_queue
            ),
        )

        # -- the publish function: the stream -> queue and bus --------------------------------------
        self.stream_dead_letter_queue = _queue(
            self, "StreamDeadLetterQueue", retention_period=Duration.days(14)
        )
        self.publish = ClosedloopFunction(
            self,
            "publish",
            # numpy (for deal.won's credit) from the AWS SDK for pandas layer, first: see attribute_job.
            layers=[numpy_layer, *layers],
            environment={
                "TABLE_NAME": storage.table.table_name,
                "EVENT_BUS_NAME": self.bus.event_bus_name,
                "WRITEBACK_QUEUE_URL": self.writeback_queue.queue_url,
                "ATTRIBUTION_MODEL": settings.attribution_model,
                "LOOKBACK_DAYS": str(lookback_days),
            },
            log_retention_days=log_retention_days,
            memory_size=512,
            timeout=Duration.seconds(60),
            description="Closedloop: table changes to domain events and CRM write-back messages",
        )
        storage.grant(self.publish, "GetItem", "Query")
        iam.Grant.add_to_principal(
            grantee=self.publish, actions=["events:PutEvents"], resource_arns=[self.bus.event_bus_arn]
        )
        iam.Grant.add_to_principal(
            grantee=self.publish, actions=["sqs:SendMessage"], resource_arns=[self.writeback_queue.queue_arn]
        )
        self.publish.add_event_source(
            sources.DynamoEventSource(
                storage.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                retry_attempts=STREAM_RETRIES,
                max_record_age=Duration.hours(24),
                on_failure=sources.SqsDlq(self.stream_dead_letter_queue),
                filters=[lambda_.FilterCriteria.filter(pattern) for pattern in STREAM_FILTERS],
            )
        )

        # -- the write-back worker ------------------------------------------------------------------
        self.worker = ClosedloopFunction(
            self,
            "crm_writeback",
            layers=list(layers),
            environment={
                "TABLE_NAME": storage.table.table_name,
                "WEBHOOK_SECRET_ARN": crm_secret.secret_arn,
                "WRITEBACK_QUEUE_URL": self.writeback_queue.queue_url,
            },
            log_retention_days=log_retention_days,
            timeout=WORKER_TIMEOUT,
            description="Closedloop: lead source fields written back to the CRMs",
        )
        storage.grant(self.worker, "GetItem", "Query", "PutItem")
        iam.Grant.add_to_principal(
            grantee=self.worker,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[crm_secret.secret_arn],
        )
        # The event source grants receive/delete/visibility; nothing else reads the queue. SendMessage:
        # a lead stopped by a rate limit is re-queued as a new message, so waiting never counts toward
        # the dead-letter queue's maxReceiveCount (docs/crm-writeback.md).
        iam.Grant.add_to_principal(
            grantee=self.worker, actions=["sqs:SendMessage"], resource_arns=[self.writeback_queue.queue_arn]
        )
        self.worker.add_event_source(
            sources.SqsEventSource(
                self.writeback_queue,
                batch_size=10,
                max_batching_window=Duration.seconds(5),
                report_batch_item_failures=True,
                # Few concurrent workers: the CRMs' rate limits are per account, not per function.
                max_concurrency=2,
            )
        )

        self._recipes(settings)
        for key, value, description in (
            ("EventBusName", self.bus.event_bus_name, "Closedloop's event bus (docs/events.md)"),
            (
                "WritebackDeadLetterQueueUrl",
                self.writeback_dead_letter_queue.queue_url,
                "CRM writes that kept failing",
            ),
        ):
            CfnOutput(self, key, value=value, description=description).override_logical_id(key)

        for queue in (
            self.writeback_dead_letter_queue,
            self.stream_dead_letter_queue,
            self.rules_dead_letter_queue,
        ):
            Validations.of(queue).acknowledge(
                Acknowledgment(id="AwsSolutions-SQS3", reason="This queue is itself a dead-letter queue.")
            )

    def _recipes(self, settings: EventsSettings) -> None:
        """The two automation examples of docs/events.md, created disabled."""
        self.rules_dead_letter_queue = _queue(
            self, "RulesDeadLetterQueue", retention_period=Duration.days(14)
        )

        # 1. Leads who downloaded the guide from a campaign -> the e-mail tool's webhook.
        # The key is typed into the connection after deploying (EventBridge › Connections › Edit);
        # EventBridge keeps it in a secret of its own. The placeholder below is not a secret, and as it
        # never changes, redeploying never overwrites the key typed in.
        connection = events.Connection(
            self,
            "EmailToolConnection",
            description="Closedloop recipe: the e-mail tool's API (set its API key after deploying)",
            authorization=events.Authorization.api_key(
                "Authorization", SecretValue.unsafe_plain_text("replace-with-the-e-mail-tool-api-key")
            ),
        )
        destination = events.ApiDestination(
            self,
            "EmailToolDestination",
            connection=connection,
            endpoint=settings.email_tool_endpoint,
            http_method=events.HttpMethod.POST,
            rate_limit_per_second=5,
            description="Closedloop recipe: add guide leads to a nurture list",
        )
        self.guide_leads_rule = events.Rule(
            self,
            "GuideLeadsToEmailTool",
            event_bus=self.bus,
            enabled=False,
            description="Recipe (docs/events.md): guide downloads from one campaign -> e-mail tool",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[LeadIdentified.detail_type],
                detail={
                    "form_id": [settings.guide_form_id],
                    "latest_source": {"campaign": [settings.guide_campaign]},
                },
            ),
            targets=[
                targets.ApiDestination(
                    destination,
                    event=events.RuleTargetInput.from_object(
                        {
                            "email": events.EventField.from_path("$.detail.email"),
                            "lead_id": events.EventField.from_path("$.detail.lead_id"),
                            "campaign": events.EventField.from_path("$.detail.latest_source.campaign"),
                            "list": "guide-nurture",
                        }
                    ),
                    dead_letter_queue=self.rules_dead_letter_queue,
                    retry_attempts=10,
                    max_event_age=Duration.hours(24),
                )
            ],
        )

        # 2. A deal won with credit on a paid channel -> the sales team's Slack channel (Slack's Web API
        # chat.postMessage, with a bot token typed into the connection after deploying).
        slack = events.Connection(
            self,
            "SlackConnection",
            description="Closedloop recipe: Slack's Web API (set the bot token after deploying)",
            authorization=events.Authorization.api_key(
                "Authorization", SecretValue.unsafe_plain_text("Bearer replace-with-the-xoxb-bot-token")
            ),
        )
        post_message = events.ApiDestination(
            self,
            "SlackPostMessage",
            connection=slack,
            endpoint="https://slack.com/api/chat.postMessage",
            http_method=events.HttpMethod.POST,
            rate_limit_per_second=1,  # Slack allows about one message a second per channel
            description="Closedloop recipe: post won deals to the sales channel",
        )
        self.paid_wins_rule = events.Rule(
            self,
            "PaidWinsToSales",
            event_bus=self.bus,
            enabled=False,
            description="Recipe (docs/events.md): deals won with credit on a paid channel -> Slack",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[DealWon.detail_type],
                detail={"credited_channels": [{"prefix": "Paid"}]},
            ),
            targets=[
                targets.ApiDestination(
                    post_message,
                    event=events.RuleTargetInput.from_object(
                        {
                            "channel": settings.sales_slack_channel,
                            "text": f"Deal {events.EventField.from_path('$.detail.deal_id')} "
                            f"({events.EventField.from_path('$.detail.crm')}) won: "
                            f"{events.EventField.from_path('$.detail.amount')} "
                            f"{events.EventField.from_path('$.detail.currency')}. First touch: "
                            f"{events.EventField.from_path('$.detail.original_source.channel')} / "
                            f"{events.EventField.from_path('$.detail.original_source.campaign')}",
                        }
                    ),
                    dead_letter_queue=self.rules_dead_letter_queue,
                    retry_attempts=10,
                    max_event_age=Duration.hours(24),
                )
            ],
        )
