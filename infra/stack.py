"""The Closedloop stack: composes the constructs, holds no resources of its own."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import Construct

from infra.config import DeploySettings
from infra.constructs.functions import ClosedloopFunction, _retention
from infra.constructs.ingest_api import IngestApiConstruct
from infra.constructs.layers import LayersConstruct
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
        collect = ClosedloopFunction(
            self,
            "collect",
            layers=layers.all,
            environment={**api_environment, "RETENTION_DAYS": str(settings.retention_days)},
            log_retention_days=settings.log_retention_days,
            description="Closedloop tracker, page views and touches",
        )
        storage.grant(collect, "GetItem", "PutItem", "ConditionCheckItem", "Query")
        identify = ClosedloopFunction(
            self,
            "identify",
            layers=layers.all,
            environment=api_environment,
            log_retention_days=settings.log_retention_days,
            description="Closedloop form posts: leads and their visitors",
        )
        storage.grant(identify, "GetItem", "PutItem", "UpdateItem", "ConditionCheckItem", "Query")

        self.api = IngestApiConstruct(
            self,
            "IngestApi",
            functions={"collect": collect, "identify": identify},
            throttle_rate=settings.throttle_rate,
            throttle_burst=settings.throttle_burst,
            log_retention=_retention(settings.log_retention_days),
        )

        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="The tracker and form routes are public by design (browsers of anonymous visitors); "
                "they accept only validated, size-bounded input and are throttled per stage.",
            )
        )
        Validations.of(self).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.12 is the interpreter the test suite runs on and the managed Powertools "
                "layer is resolved for; moving runtime is a deliberate, tested upgrade.",
            )
        )
