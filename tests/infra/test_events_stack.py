"""The outward side of the CDK app, synthesised once for the module: the bus, the publish function on
the table's stream, the write-back queue and worker, the two recipes, and their exact permissions; the
recipes' patterns run (on moto's EventBridge) against the events docs/events.md documents."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Match, Template
from moto import mock_aws

from closedloop.changes import STREAM_FILTERS
from closedloop.events import EVENT_TYPES, DealWon, LeadIdentified, event_entry
from closedloop.writeback.queue import MAX_RECEIVES

pytestmark = pytest.mark.infra


def _one(template: Template, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    [(name, resource)] = [(n, r) for n, r in template.find_resources(kind).items() if n.startswith(prefix)]
    return name, resource


def _function(template: Template, service: str) -> tuple[str, dict[str, Any]]:
    [(name, resource)] = [
        (n, f)
        for n, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == service
    ]
    return name, resource


def _statements(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for name, policy in template.find_resources("AWS::IAM::Policy").items()
        if name.startswith(role_prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _granted(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    return {a for s in statements for a in _actions(s) if a.startswith(prefix)}


def test_the_table_streams_new_and_old_images(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable", {"StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"}}
    )


def test_the_publish_function_reads_the_filtered_stream_in_order_and_reports_failures(
    template: Template,
) -> None:
    name, function = _function(template, "closedloop-publish")
    assert function["Properties"]["Runtime"] == "python3.12"
    assert function["Properties"]["Architectures"] == ["arm64"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert {"TABLE_NAME", "EVENT_BUS_NAME", "WRITEBACK_QUEUE_URL", "ATTRIBUTION_MODEL"} <= set(variables)
    assert len(function["Properties"]["Layers"]) == 3  # pandas (numpy), Powertools, common

    _, mapping = _one(template, "AWS::Lambda::EventSourceMapping", "EventsPublishFunction")
    properties = mapping["Properties"]
    assert properties["FunctionName"] == {"Ref": name}
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0].startswith(
        "EventsStreamDeadLetterQueue"
    )
    patterns = [json.loads(f["Pattern"]) for f in properties["FilterCriteria"]["Filters"]]
    assert patterns == [json.loads(json.dumps(p)) for p in STREAM_FILTERS]


def test_only_the_publish_function_puts_events_and_only_it_and_the_worker_send_write_back_messages(
    template: Template,
) -> None:
    bus, _ = _one(template, "AWS::Events::EventBus", "EventsBus")
    queue, _ = _one(template, "AWS::SQS::Queue", "EventsWritebackQueue")
    publish = _statements(template, "EventsPublishRole")
    [put] = [s for s in publish if "events:PutEvents" in _actions(s)]
    assert (_actions(put), put["Resource"]) == ({"events:PutEvents"}, {"Fn::GetAtt": [bus, "Arn"]})
    [send] = [s for s in publish if s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}]
    assert _actions(send) == {"sqs:SendMessage"}
    assert _granted(publish, "dynamodb:") == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }

    everyone = [
        s
        for name, policy in template.find_resources("AWS::IAM::Policy").items()
        if not name.startswith("EventsPublishRole")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert not any("events:PutEvents" in _actions(s) for s in everyone)
    senders = [
        name
        for name, policy in template.find_resources("AWS::IAM::Policy").items()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in _actions(s) and s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    ]
    assert sorted(name.split("Role")[0] for name in senders) == ["EventsCrmWriteback", "EventsPublish"]


def test_the_worker_consumes_the_queue_reads_the_secret_and_remembers_what_it_wrote(
    template: Template,
) -> None:
    name, function = _function(template, "closedloop-crm-writeback")
    secret, _ = _one(template, "AWS::SecretsManager::Secret", "WebhookSecret")
    queue, _ = _one(template, "AWS::SQS::Queue", "EventsWritebackQueue")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["WEBHOOK_SECRET_ARN"] == {"Ref": secret}
    assert function["Properties"]["Timeout"] == 60

    worker = _statements(template, "EventsCrmWritebackRole")
    assert _granted(worker, "dynamodb:") == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"}
    [read] = [s for s in worker if "secretsmanager:GetSecretValue" in _actions(s)]
    assert read["Resource"] == {"Ref": secret}
    assert _granted(worker, "sqs:") == {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # a rate-limited lead is re-queued as a new message
    }
    [send] = [s for s in worker if "sqs:SendMessage" in _actions(s)]
    assert (_actions(send), send["Resource"]) == ({"sqs:SendMessage"}, {"Fn::GetAtt": [queue, "Arn"]})
    assert not _granted(worker, "events:")

    _, mapping = _one(template, "AWS::Lambda::EventSourceMapping", "EventsCrmWritebackFunction")
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}


def test_the_write_back_queue_is_encrypted_and_dead_letters_after_the_documented_receives(
    template: Template,
) -> None:
    _, queue = _one(template, "AWS::SQS::Queue", "EventsWritebackQueue")
    dlq, dead = _one(template, "AWS::SQS::Queue", "EventsWritebackDeadLetterQueue")
    properties = queue["Properties"]
    assert properties["SqsManagedSseEnabled"] is True
    assert properties["VisibilityTimeout"] == 360  # six times the worker's timeout
    assert properties["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
        "maxReceiveCount": MAX_RECEIVES,
    }
    assert dead["Properties"]["SqsManagedSseEnabled"] is True
    assert dead["Properties"]["MessageRetentionPeriod"] == 14 * 86400


def test_the_recipes_exist_disabled_with_a_dead_letter_queue(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "State": "DISABLED",
            "EventPattern": {
                "source": ["closedloop"],
                "detail-type": ["closedloop.lead.identified.v1"],
                "detail": {"form_id": ["guide-download"], "latest_source": {"campaign": ["spring-launch"]}},
            },
            "Targets": [
                Match.object_like(
                    {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("EventsEmailToolDestination"), "Arn"]}}
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "State": "DISABLED",
            "EventPattern": {
                "source": ["closedloop"],
                "detail-type": ["closedloop.deal.won.v1"],
                "detail": {"credited_channels": [{"prefix": "Paid"}]},
            },
        },
    )
    for rule in template.find_resources("AWS::Events::Rule").values():
        if rule["Properties"].get("EventBusName"):
            assert rule["Properties"]["State"] == "DISABLED"
            for target in rule["Properties"]["Targets"]:
                assert "DeadLetterConfig" in target
    template.has_resource_properties("AWS::Events::ApiDestination", {"HttpMethod": "POST"})
    template.has_resource_properties("AWS::Events::Connection", {"AuthorizationType": "API_KEY"})


# -- the recipes, run on documented events -----------------------------------------------------------------

DOC = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
RECIPES = {
    "GuideLeadsToEmailTool": "closedloop.lead.identified.v1",
    "PaidWinsToSales": "closedloop.deal.won.v1",
}


def _documented_events() -> dict[str, dict[str, Any]]:
    """The example event of each detail-type in docs/events.md, as EventBridge delivers it."""
    section = DOC.split("## The events")[1].split("## Recipes")[0]
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)]
    return {example["detail-type"]: example for example in examples}


def _recipe_patterns(template: Template) -> dict[str, dict[str, Any]]:
    return {
        recipe: rule["Properties"]["EventPattern"]
        for name, rule in template.find_resources("AWS::Events::Rule").items()
        for recipe in RECIPES
        if name.startswith(f"Events{recipe}")
    }


def test_the_recipes_documented_are_the_recipes_deployed(template: Template) -> None:
    section = DOC.split("## Recipes")[1].split("## Your own rules")[0]
    documented = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)]
    assert documented == list(_recipe_patterns(template).values())


def test_each_recipe_matches_the_documented_event_it_is_for_and_no_other(
    template: Template, aws_env: None
) -> None:
    # Given the deployed rules' patterns on a moto bus, each forwarding to a queue of its own
    events_by_type = _documented_events()
    assert set(events_by_type) == {t.detail_type for t in EVENT_TYPES}
    lead = LeadIdentified.model_validate(events_by_type[LeadIdentified.detail_type]["detail"])
    won = DealWon.model_validate(events_by_type[DealWon.detail_type]["detail"])
    organic = won.attribution.channels[1].model_copy(update={"credit": 1.0, "revenue_credit": 12000.5})
    near_misses = [
        lead.model_copy(update={"form_id": "demo-request"}),
        lead.model_copy(
            update={"latest_source": lead.latest_source.model_copy(update={"campaign": "autumn"})}
        ),
        won.model_copy(
            update={
                "credited_channels": ("Organic Search",),
                "attribution": won.attribution.model_copy(update={"channels": (organic,)}),
            }
        ),
    ]
    with mock_aws():
        bus = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        bus.create_event_bus(Name="closedloop-recipes")
        queues = {}
        for recipe, pattern in _recipe_patterns(template).items():
            queues[recipe] = sqs.create_queue(QueueName=recipe)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queues[recipe], AttributeNames=["QueueArn"])["Attributes"]
            bus.put_rule(Name=recipe, EventBusName="closedloop-recipes", EventPattern=json.dumps(pattern))
            bus.put_targets(
                Rule=recipe, EventBusName="closedloop-recipes", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}]
            )

        # When every documented event, and a near miss of each recipe's, is put on the bus
        entries = [
            {
                "Source": example["source"],
                "DetailType": example["detail-type"],
                "Detail": json.dumps(example["detail"]),
                "EventBusName": "closedloop-recipes",
            }
            for example in events_by_type.values()
        ] + [event_entry(event, "closedloop-recipes") for event in near_misses]
        assert bus.put_events(Entries=entries)["FailedEntryCount"] == 0

        # Then each recipe received exactly the documented event it is for
        for recipe, detail_type in RECIPES.items():
            messages = sqs.receive_message(QueueUrl=queues[recipe], MaxNumberOfMessages=10).get(
                "Messages", []
            )
            received = [json.loads(m["Body"]) for m in messages]
            assert [(e["detail-type"], e["detail"]) for e in received] == [
                (detail_type, events_by_type[detail_type]["detail"])
            ], recipe


def test_eventbridge_may_dead_letter_into_the_rules_queue_from_the_two_recipes_only(
    template: Template,
) -> None:
    # The queue's policy is written by enforce_ssl (a Deny): its Allows are all EventBridge gets.
    queue_id, _ = _one(template, "AWS::SQS::Queue", "EventsRulesDeadLetterQueue")
    policies = template.find_resources("AWS::SQS::QueuePolicy")
    [(policy_id, policy)] = [
        (n, p) for n, p in policies.items() if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    ]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    rules = {
        name
        for name in template.find_resources("AWS::Events::Rule")
        if name.startswith(("EventsGuideLeadsToEmailTool", "EventsPaidWinsToSales"))
    }
    assert len(rules) == 2
    assert {s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in allows} == rules
    for allow in allows:
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert allow["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # The other queues are written by roles (Lambda's event source and destinations): no service Allow
    for name, other in policies.items():
        if name != policy_id:
            statements = other["Properties"]["PolicyDocument"]["Statement"]
            assert all(s["Effect"] == "Deny" for s in statements), name
