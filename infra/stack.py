"""The Closedloop stack: composes the constructs, holds no resources of its own."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeploySettings
from infra.constructs.analytics import AnalyticsConstruct
from infra.constructs.attribute_job import AttributeJobConstruct
from infra.constructs.erasure import ErasureConstruct
from infra.constructs.events import EventsConstruct, EventsSettings
from infra.constructs.functions import ClosedloopFunction, _retention
from infra.constructs.ingest_api import IngestApiConstruct
from infra.constructs.layers import LayersConstruct
from infra.constructs.operations import OperationsConstruct
from infra.constructs.storage import StorageConstruct


class ClosedloopStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        storage = StorageConstruct(self, "Storage", production=settings.production)
        layers = LayersConstruct(self, "Layers")

        api_environment = {
            "TABLE_NAME": storage.table.table_name,
            "ALLOWED_ORIGINS": ",".join(settings.allowed_origins),
            "OWN_DOMAINS": ",".join(settings.own_domains),
        }
        # The two functions a browser's requests reach (page views, forms) honour GPC alike.
        privacy_environment = {"HONOR_GPC": "true" if settings.honor_gpc else "false"}
        collect = ClosedloopFunction(
            self,
            "collect",
            layers=layers.all,
            environment={
                **api_environment,
                **privacy_environment,
                "RETENTION_DAYS": str(settings.retention_days),
            },
            log_retention_days=settings.log_retention_days,
            description="Closedloop tracker, page views and touches",
        )
        # Exactly what recording an event calls: GetItem (the visitor's state) and one TransactWriteItems
        # of Puts only (event, state, touch, late-day marker); a transaction's Put needs PutItem.
        storage.grant(collect, "GetItem", "PutItem")
        identify = ClosedloopFunction(
            self,
            "identify",
            layers=layers.all,
            environment={**api_environment, **privacy_environment},
            log_retention_days=settings.log_retention_days,
            description="Closedloop form posts: leads and their visitors",
        )
        storage.grant(identify, "GetItem", "PutItem", "UpdateItem", "ConditionCheckItem", "Query")

        # The CRM credentials, one JSON key per CRM, written by the RevOps admin (docs/crm-setup.md).
        # The initial value is the empty object ("no CRM configured yet": every CRM answers 404); it is
        # not a secret. Keep it unchanged: CloudFormation writes SecretString again only when it changes,
        # so redeploying never overwrites the admin's value. Encrypted with Secrets Manager's KMS key.
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description="Closedloop CRM webhook credentials: one JSON key per CRM (docs/crm-setup.md)",
            secret_string_value=SecretValue.unsafe_plain_text("{}"),
            removal_policy=RemovalPolicy.RETAIN if settings.production else RemovalPolicy.DESTROY,
        )
        CfnOutput(
            self,
            "WebhookSecretArn",
            value=self.webhook_secret.secret_arn,
            description="The CRM webhook secret to fill in (docs/crm-setup.md)",
        )
        crm_webhook = ClosedloopFunction(
            self,
            "crm_webhook",
            layers=layers.all,
            environment={**api_environment, "WEBHOOK_SECRET_ARN": self.webhook_secret.secret_arn},
            log_retention_days=settings.log_retention_days,
            # Pipedrive waits 10 s for the answer: a slower one is a timeout to it anyway.
            timeout=Duration.seconds(9),
            description="Closedloop CRM webhooks: deal events, their history and their leads",
        )
        storage.grant(crm_webhook, "GetItem", "PutItem")
        # Only this function reads the secret: exactly GetSecretValue, on exactly this secret.
        iam.Grant.add_to_principal(
            grantee=crm_webhook,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[self.webhook_secret.secret_arn],
        )
        Validations.of(self.webhook_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The secret holds credentials issued by third-party CRMs (HubSpot, Salesforce, "
                "Pipedrive) and typed into their webhook forms; no Lambda can rotate them on the CRM "
                "side, so the admin rotates them there and in this secret (docs/crm-setup.md).",
            )
        )

        self.analytics = AnalyticsConstruct(
            self, "Analytics", production=settings.production, retention_days=settings.retention_days
        )
        self.attribute_job = AttributeJobConstruct(
            self,
            "AttributeJob",
            layers=layers.all,
            table=storage,
            bucket=self.analytics.bucket,
            environment={
                "RETENTION_DAYS": str(settings.retention_days),
                "LOOKBACK_DAYS": str(settings.lookback_days),
                "BASE_CURRENCY": settings.base_currency,
            },
            log_retention_days=settings.log_retention_days,
            schedule_expression=settings.schedule,
        )
        # Erasure of a person, invoked by an admin (docs/security.md); pyarrow from the same layer.
        self.erasure = ErasureConstruct(
            self,
            "Erasure",
            layers=[self.attribute_job.sdk_for_pandas, *layers.all],
            table=storage,
            bucket=self.analytics.bucket,
            log_retention_days=settings.log_retention_days,
        )

        self.api = IngestApiConstruct(
            self,
            "IngestApi",
            functions={"collect": collect, "identify": identify, "crm_webhook": crm_webhook},
            throttle_rate=settings.throttle_rate,
            throttle_burst=settings.throttle_burst,
            log_retention=_retention(settings.log_retention_days),
            custom_domain=settings.custom_domain,
            certificate_arn=settings.certificate_arn,
        )
        # Closing the loop outward: events on a bus, lead sources written back to the CRMs.
        self.events = EventsConstruct(
            self,
            "Events",
            layers=layers.all,
            numpy_layer=self.attribute_job.sdk_for_pandas,
            storage=storage,
            crm_secret=self.webhook_secret,
            log_retention_days=settings.log_retention_days,
            lookback_days=settings.lookback_days,
            settings=EventsSettings.from_context(self.node.try_get_context),
        )
        self.operations = OperationsConstruct(
            self,
            "Operations",
            http_api=self.api.api,
            functions={
                "collect": collect,
                "identify": identify,
                "crm_webhook": crm_webhook,
                "attribute": self.attribute_job.function,
                "erase": self.erasure.function,
                "publish": self.events.publish,
                "crm_writeback": self.events.worker,
            },
            table=storage.table,
            dead_letter_queues={
                "attribute job": self.attribute_job.dead_letter_queue,
                "CRM write-back": self.events.writeback_dead_letter_queue,
                "table stream": self.events.stream_dead_letter_queue,
                "event rules": self.events.rules_dead_letter_queue,
            },
            attribute_schedule=settings.schedule,
            alarm_email=settings.alarm_email,
        )

        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="The tracker and form routes are public by design (browsers of anonymous visitors); "
                "they accept only validated, size-bounded input and are throttled per stage. The CRM "
                "webhook route is called by the CRMs, which cannot use an API Gateway authorizer: the "
                "function verifies each CRM's signature or credentials before it stores anything.",
            )
        )
        Validations.of(self).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.12 is the interpreter the test suite runs on and the managed Powertools "
                "layer is resolved for; moving runtime is a deliberate, tested upgrade.",
            )
        )
