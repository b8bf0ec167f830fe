"""The DynamoDB table, shaped by ``closedloop.store.schema`` (the same definition moto uses in tests)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from closedloop.store import schema


def _attribute(name: str) -> dynamodb.Attribute:
    kinds = {d["AttributeName"]: d["AttributeType"] for d in schema.ATTRIBUTE_DEFINITIONS}
    kind = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}[kinds[name]]
    return dynamodb.Attribute(name=name, type=kind)


class StorageConstruct(Construct):
    """The single table: on-demand, point-in-time recovery, TTL, encrypted at rest."""

    def __init__(self, scope: Construct, construct_id: str, *, production: bool) -> None:
        super().__init__(scope, construct_id)
        hash_key, range_key = (k["AttributeName"] for k in schema.KEY_SCHEMA)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=_attribute(hash_key),
            sort_key=_attribute(range_key),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            # Feeds the publish function: domain events and CRM write-back (infra/constructs/events.py).
            dynamo_stream=dynamodb.StreamViewType(schema.STREAM_VIEW_TYPE),
            deletion_protection=production,
            removal_policy=RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=index["IndexName"],
                    partition_key=_attribute(index["KeySchema"][0]["AttributeName"]),
                    sort_key=_attribute(index["KeySchema"][1]["AttributeName"]),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
                for index in schema.GLOBAL_SECONDARY_INDEXES
            ],
        )

    def grant(self, grantee: iam.IGrantable, *actions: str) -> None:
        """Exactly these actions on the table and its named indexes: no ``index/*`` wildcard."""
        resources = [self.table.table_arn] + [
            f"{self.table.table_arn}/index/{index['IndexName']}" for index in schema.GLOBAL_SECONDARY_INDEXES
        ]
        iam.Grant.add_to_principal(
            grantee=grantee, actions=[f"dynamodb:{a}" for a in actions], resource_arns=resources
        )
