"""The deployable app as a whole: operations (alarms, topic, dashboard), outputs, security, production.

One app holds two stacks, synthesised once for the module with cdk-nag: the default stack with an alarm
e-mail and a custom domain, and a production stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template
from pydantic import ValidationError

from closedloop.crm.models import CrmName
from closedloop.store import schema
from infra.app import build_app
from infra.config import DeploySettings
from infra.constructs.functions import _retention
from infra.constructs.operations import (
    API_5XX_MIN_REQUESTS,
    API_5XX_RATE_PERCENT,
    METRICS_NAMESPACE,
    not_running_window,
)
from infra.stack import ClosedloopStack

pytestmark = pytest.mark.infra

ORIGIN = "https://www.acme.test"
ALARM_EMAIL = "ops@acme.test"
DOMAIN = "track.acme.test"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0c6f1b1e-1111-2222-3333-444455556666"
# Services that hold the loop's data: no Allow statement may give "*" actions or "*" resources on them.
DATA_SERVICES = ("dynamodb:", "s3:", "secretsmanager:", "sqs:", "sns:", "kms:", "glue:", "athena:")


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    app = App(
        context={
            "aws:cdk:bundling-stacks": [],  # no pip downloads: test_layer_bundling.py builds the layer
            "allowedOrigins": ORIGIN,
            "alarmEmail": ALARM_EMAIL,
            "customDomain": DOMAIN,
            "certificateArn": CERTIFICATE,
        },
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
    )
    app, stack = build_app(app)  # adds cdk-nag's AwsSolutions pack to the app: findings fail synth
    production = ClosedloopStack(
        app,
        "ClosedloopProduction",
        settings=DeploySettings.model_validate({"allowedOrigins": [ORIGIN], "production": True}),
    )
    app.synth()
    return {"default": Template.from_stack(stack), "production": Template.from_stack(production)}


@pytest.fixture(scope="module")
def template(templates: dict[str, Template]) -> Template:
    return templates["default"]


# The topic ---------------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(template: Template) -> None:
    [(topic_id, topic)] = template.find_resources("AWS::SNS::Topic").items()
    [(key_id, key)] = template.find_resources("AWS::KMS::Key").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    [cloudwatch] = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in json.dumps(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"])
    assert topic_id


def test_the_topic_refuses_requests_without_tls_and_mails_the_alarm_address(template: Template) -> None:
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    [policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": ALARM_EMAIL, "TopicArn": {"Ref": topic_id}},
    )


def test_cloudwatch_may_publish_to_the_alarm_topic_for_this_accounts_alarms_only(template: Template) -> None:
    # A topic policy replaces SNS's default one: without this Allow, the TLS-only Deny is all there is
    # and CloudWatch cannot publish a single alarm (aws-solutions/automated-security-response-on-aws#43).
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    [policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    [allow] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])


def _allows(policy: dict[str, Any], service: str, action: str) -> list[dict[str, Any]]:
    return [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
        and s.get("Principal") == {"Service": service}
        and action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]


def _policies(template: Template, kind: str, targets: str, logical_id: str) -> list[dict[str, Any]]:
    """The resource policies of ``kind`` that apply to the resource ``logical_id``."""
    return [
        p
        for p in template.find_resources(kind).values()
        if logical_id in json.dumps(p["Properties"][targets])
    ]


@pytest.mark.parametrize("variant", ["default", "production"])
def test_every_aws_service_wired_to_a_topic_queue_or_bucket_is_allowed_by_its_policy(
    templates: dict[str, Template], variant: str
) -> None:
    # Each resource policy here starts from an SSL-only Deny: every service the stack wires to the
    # resource needs its own Allow, scoped to this stack's sources (the confused deputy).
    template = templates[variant]
    resources = template.to_json()["Resources"]
    wired: list[tuple[str, str, str, str, str]] = []  # (kind, targets, resource, service, action)
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        for action in alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", []):
            wired.append(
                ("AWS::SNS::TopicPolicy", "Topics", action["Ref"], "cloudwatch.amazonaws.com", "sns:Publish")
            )
    for rule in template.find_resources("AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", []):
            if "DeadLetterConfig" in target:
                queue = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
                wired.append(
                    ("AWS::SQS::QueuePolicy", "Queues", queue, "events.amazonaws.com", "sqs:SendMessage")
                )
    for bucket in template.find_resources("AWS::S3::Bucket").values():
        logging = bucket["Properties"].get("LoggingConfiguration")
        if logging:
            target = logging["DestinationBucketName"]["Ref"]
            wired.append(
                ("AWS::S3::BucketPolicy", "Bucket", target, "logging.s3.amazonaws.com", "s3:PutObject")
            )
    assert {w[3] for w in wired} == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "logging.s3.amazonaws.com",
    }
    for kind, targets, resource, service, action in wired:
        assert resource in resources
        allows = [
            a for p in _policies(template, kind, targets, resource) for a in _allows(p, service, action)
        ]
        assert allows, f"{service} may not {action} on {resource}"
        for allow in allows:
            conditions = json.dumps(allow.get("Condition", {}))
            assert "aws:SourceArn" in conditions, (resource, service)

    # ... and no policy of a topic, queue or bucket lets a service in without naming its source
    for kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"):
        for name, policy in template.find_resources(kind).items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow" and "Service" in statement.get("Principal", {}):
                    assert "aws:SourceArn" in json.dumps(statement.get("Condition", {})), name


def test_without_an_alarm_email_there_is_no_subscription(templates: dict[str, Template]) -> None:
    assert templates["production"].find_resources("AWS::SNS::Subscription") == {}
    assert len(templates["production"].find_resources("AWS::SNS::Topic")) == 1


# Alarms ------------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_topic_and_says_what_to_do(template: Template) -> None:
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    alarms = _alarms(template)
    assert len(alarms) >= 12  # the API, errors and throttles of 4 functions, DynamoDB, the job, the DLQ
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert len(alarm["AlarmDescription"]) > 40, name


def test_the_api_alarm_is_on_the_5xx_rate_of_the_http_api(template: Template) -> None:
    [api_id] = template.find_resources("AWS::ApiGatewayV2::Api")
    [alarm] = [a for a in _alarms(template).values() if "Metrics" in a and "errors" in json.dumps(a)]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    expression = next(m for m in alarm["Metrics"] if "Expression" in m)
    assert expression["Expression"] == (f"IF(requests >= {API_5XX_MIN_REQUESTS}, 100 * errors / requests, 0)")
    for metric_id, name in (("errors", "5xx"), ("requests", "Count")):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/ApiGateway"
        assert stat["Metric"]["MetricName"] == name
        assert stat["Metric"]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": api_id}}]
        assert stat["Stat"] == "Sum"
    assert alarm["Threshold"] == API_5XX_RATE_PERCENT
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_each_function_has_an_errors_and_a_throttles_alarm(template: Template) -> None:
    functions = _functions(template)
    by_metric: dict[str, set[str]] = {}
    for alarm in _alarms(template).values():
        if alarm.get("Namespace") == "AWS/Lambda":
            [dimension] = alarm["Dimensions"]
            assert dimension["Name"] == "FunctionName"
            by_metric.setdefault(alarm["MetricName"], set()).add(dimension["Value"]["Ref"])
            assert alarm["Statistic"] == "Sum"
    assert {"collect", "identify", "crm-webhook", "attribute"} <= set(functions)
    assert by_metric["Throttles"] == set(functions.values())
    assert by_metric["Errors"] == set(functions.values())  # the attribute job's is hourly, below


def test_the_dynamodb_alarm_sums_read_and_write_throttles_of_the_table_and_its_index(
    template: Template,
) -> None:
    [table_id] = template.find_resources("AWS::DynamoDB::GlobalTable")
    [alarm] = [a for a in _alarms(template).values() if "ThrottleEvents" in json.dumps(a)]
    stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    seen = set()
    for metric in stats:
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dimensions["TableName"] == {"Ref": table_id}
        seen.add((metric["MetricName"], dimensions.get("GlobalSecondaryIndexName")))
    indexes = [None, *(i["IndexName"] for i in schema.GLOBAL_SECONDARY_INDEXES)]
    assert seen == {(f"{kind}ThrottleEvents", i) for kind in ("Read", "Write") for i in indexes}
    assert next(m for m in alarm["Metrics"] if "Expression" in m)["Expression"].startswith("SUM([")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Threshold"]) == (2, 2, 1)


def test_the_attribute_job_alarms_when_it_fails_and_when_it_does_not_run(template: Template) -> None:
    attribute = _functions(template)["attribute"]
    on_job = [
        a
        for a in _alarms(template).values()
        if a.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": attribute}}]
    ]
    [not_running] = [a for a in on_job if a["MetricName"] == "Invocations"]
    assert not_running["ComparisonOperator"] == "LessThanThreshold"
    assert not_running["Threshold"] == 1
    assert not_running["Period"] == 2 * 3600  # twice the default hourly schedule
    assert not_running["TreatMissingData"] == "breaching"  # no data at all is the failure
    [failing] = [a for a in on_job if a["MetricName"] == "Errors"]
    assert failing["Threshold"] == 1
    assert failing["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_dead_letter_queue_alarms_on_its_first_message(template: Template) -> None:
    queue_ids = [q for q in template.find_resources("AWS::SQS::Queue") if "DeadLetter" in q]
    assert queue_ids
    for queue_id in queue_ids:
        [alarm] = [
            a
            for a in _alarms(template).values()
            if a.get("MetricName") == "ApproximateNumberOfMessagesVisible" and queue_id in json.dumps(a)
        ]
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        ]
        assert (alarm["Threshold"], alarm["Statistic"]) == (1, "Maximum")
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("rate(1 hour)", 7200),
        ("rate(30 minutes)", 3600),
        ("rate(1 day)", 2 * 86400),
        ("rate(1 minute)", 300),  # at least five minutes
        ("rate(30 days)", 7 * 86400),  # CloudWatch evaluates at most 7 days
        ("cron(0 3 * * ? *)", 26 * 3600),  # read as daily, two hours late
    ],
)
def test_not_running_means_no_invocation_in_twice_the_schedules_interval(schedule: str, seconds: int) -> None:
    assert not_running_window(schedule).to_seconds() == seconds


# The dashboard -----------------------------------------------------------------------------------


def test_the_dashboard_shows_the_loops_own_metrics_per_function(template: Template) -> None:
    body = _dashboard(template)
    assert body.count(f'"{METRICS_NAMESPACE}"') >= 10
    for service, names in {
        "closedloop-collect": (
            "EventsAccepted",
            "EventsDuplicated",
            "BotEventsDropped",
            "OptOutEventsDropped",
        ),
        "closedloop-identify": ("LeadsCreated", "LeadsUpdated", "HoneypotSubmissions"),
        "closedloop-attribute": ("AttributeRunSeconds", "CreditRowsWritten", "PartitionsWritten"),
    }.items():
        for name in names:
            assert f'"{METRICS_NAMESPACE}","{name}","service","{service}"' in body, name
    # Webhooks by CRM and by rejection reason: dimensions whose values are not known in advance.
    assert '{Closedloop,crm,service} MetricName=\\"WebhooksAccepted\\"' in body
    assert '{Closedloop,crm,reason,service} MetricName=\\"WebhooksRejected\\"' in body
    assert 'MetricName=\\"DealEventsStored\\"' in body
    assert '"type":"alarm"' in body


# Outputs -----------------------------------------------------------------------------------------


def test_the_outputs_give_what_the_user_needs_next(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert {
        "ApiUrl",
        "TrackerSnippet",
        "WebhookSecretArn",
        "AthenaWorkgroup",
        "GlueDatabase",
        "AnalyticsBucketName",
        "AlarmTopicArn",
        "DashboardUrl",
        "CustomDomainTarget",
        "AttributeFunctionName",
        "AttributeDeadLetterQueueUrl",
    } | {f"WebhookUrl{crm.value.capitalize()}" for crm in CrmName} <= set(outputs)
    snippet = outputs["TrackerSnippet"]["Value"]
    assert snippet.startswith("<script>window.closedloop=")
    assert f'<script async src="https://{DOMAIN}/t.js"' in snippet
    assert outputs["WebhookUrlHubspot"]["Value"] == f"https://{DOMAIN}/webhooks/hubspot"
    assert outputs["WebhookUrlPipedrive"]["Value"] == f"https://{DOMAIN}/webhooks/pipedrive"
    assert outputs["WebhookUrlGeneric"]["Value"] == f"https://{DOMAIN}/webhooks/generic"
    salesforce = outputs["WebhookUrlSalesforce"]
    assert salesforce["Value"] == f"https://{DOMAIN}/webhooks/salesforce?token=<url_token>"
    assert "url_token" in salesforce["Description"]
    assert outputs["GlueDatabase"]["Value"] == "closedloop"


def test_without_a_custom_domain_the_outputs_use_the_api_url(templates: dict[str, Template]) -> None:
    outputs = templates["production"].to_json()["Outputs"]
    assert "CustomDomainTarget" not in outputs
    api_url = outputs["ApiUrl"]["Value"]
    hubspot = outputs["WebhookUrlHubspot"]["Value"]["Fn::Join"][1]
    assert hubspot[: len(api_url["Fn::Join"][1])] == api_url["Fn::Join"][1]
    assert hubspot[-1].endswith("/webhooks/hubspot")
    assert "/t.js" in json.dumps(outputs["TrackerSnippet"]["Value"])


def test_the_custom_domain_maps_the_stage_with_its_certificate(template: Template) -> None:
    [domain_id] = template.find_resources("AWS::ApiGatewayV2::DomainName")
    template.has_resource_properties(
        "AWS::ApiGatewayV2::DomainName",
        {
            "DomainName": DOMAIN,
            "DomainNameConfigurations": [
                {"CertificateArn": CERTIFICATE, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
            ],
        },
    )
    [stage_id] = template.find_resources("AWS::ApiGatewayV2::Stage")
    [mapping] = template.find_resources("AWS::ApiGatewayV2::ApiMapping").values()
    assert mapping["Properties"]["DomainName"] == {"Ref": domain_id}
    assert mapping["Properties"]["Stage"] == "$default"
    assert stage_id in mapping["DependsOn"]  # the stage exists before it is mapped


# Security, across each whole stack ---------------------------------------------------------------


@pytest.mark.parametrize("variant", ["default", "production"])
def test_every_bucket_is_encrypted_private_and_ssl_only(templates: dict[str, Template], variant: str) -> None:
    template = templates[variant]
    buckets = template.find_resources("AWS::S3::Bucket")
    assert buckets
    ssl_only = {
        p["Properties"]["Bucket"]["Ref"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert ssl_only == set(buckets)
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}, name
        assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        ), name


@pytest.mark.parametrize("variant", ["default", "production"])
def test_the_table_the_queue_the_topic_and_the_secret_are_encrypted(
    templates: dict[str, Template], variant: str
) -> None:
    template = templates[variant]
    [table] = template.find_resources("AWS::DynamoDB::GlobalTable").values()
    assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True
    for queue in template.find_resources("AWS::SQS::Queue").values():
        assert queue["Properties"].get("SqsManagedSseEnabled") or queue["Properties"].get("KmsMasterKeyId")
    for topic in template.find_resources("AWS::SNS::Topic").values():
        assert "KmsMasterKeyId" in topic["Properties"]
    # Secrets Manager always encrypts; the default key is AWS's, which only this account's roles use.
    assert template.find_resources("AWS::SecretsManager::Secret")


@pytest.mark.parametrize("variant", ["default", "production"])
def test_no_allow_statement_grants_every_action_or_every_data_resource(
    templates: dict[str, Template], variant: str
) -> None:
    statements = list(_allow_statements(templates[variant]))
    assert len(statements) > 10
    for where, statement in statements:
        actions = [str(a) for a in _list(statement.get("Action", []))]
        assert "*" not in actions, where
        if where.startswith("AWS::KMS::Key"):
            # A key policy's resource "*" is the key itself, and its first statement is CDK's default:
            # "kms:*" for the account, so that IAM policies can grant the key at all.
            continue
        assert not any(a.endswith(":*") for a in actions), (where, actions)
        if any(a.startswith(DATA_SERVICES) for a in actions):
            assert "*" not in _list(statement.get("Resource", [])), (where, actions)


@pytest.mark.parametrize("variant", ["default", "production"])
def test_every_log_group_expires(templates: dict[str, Template], variant: str) -> None:
    groups = templates[variant].find_resources("AWS::Logs::LogGroup")
    assert len(groups) >= 5  # one per function and the API's access logs
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == 30, name


# Production --------------------------------------------------------------------------------------


def test_production_retains_the_data_and_protects_the_table(templates: dict[str, Template]) -> None:
    template = templates["production"]
    [table] = template.find_resources("AWS::DynamoDB::GlobalTable").values()
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    [replica] = table["Properties"]["Replicas"]
    assert replica["DeletionProtectionEnabled"] is True
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for kind in ("AWS::S3::Bucket", "AWS::SecretsManager::Secret"):
        for name, resource in template.find_resources(kind).items():
            assert resource["DeletionPolicy"] == "Retain", name
    assert template.find_resources("Custom::S3AutoDeleteObjects") == {}


def test_outside_production_everything_is_torn_down_with_the_stack(template: Template) -> None:
    [table] = template.find_resources("AWS::DynamoDB::GlobalTable").values()
    assert table["DeletionPolicy"] == "Delete"
    assert table["Properties"]["Replicas"][0]["DeletionProtectionEnabled"] is False
    assert len(template.find_resources("Custom::S3AutoDeleteObjects")) == 2  # buckets emptied first


# Settings ----------------------------------------------------------------------------------------


def test_context_strings_become_settings_and_blank_means_unset() -> None:
    context = {
        "allowedOrigins": "https://a.test, https://b.test",
        "production": "true",
        "logRetentionDays": "90",
        "alarmEmail": "",
        "customDomain": "",
        "certificateArn": "",
    }
    settings = DeploySettings.from_context(context.get)
    assert settings.allowed_origins == ["https://a.test", "https://b.test"]
    assert settings.production is True
    assert settings.log_retention_days == 90
    assert (settings.alarm_email, settings.custom_domain, settings.certificate_arn) == (None, None, None)


@pytest.mark.parametrize(
    "extra",
    [
        {"customDomain": DOMAIN},  # a domain needs its certificate
        {"certificateArn": CERTIFICATE},
        {"alarmEmail": "not an address"},
        {"customDomain": "https://track.acme.test", "certificateArn": CERTIFICATE},
    ],
)
def test_incomplete_or_malformed_settings_stop_the_synthesis(extra: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        DeploySettings.from_context({"allowedOrigins": ORIGIN, **extra}.get)


def test_log_retention_rounds_up_to_a_cloudwatch_choice() -> None:
    assert _retention(30).name == "ONE_MONTH"
    assert _retention(31).name == "TWO_MONTHS"
    assert _retention(395).name == "THIRTEEN_MONTHS"
    assert _retention(5000).name == "INFINITE"


# Helpers -----------------------------------------------------------------------------------------


def _alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template.find_resources("AWS::CloudWatch::Alarm").items()}


def _functions(template: Template) -> dict[str, str]:
    """Logical ids of our functions by service, ``closedloop-`` dropped."""
    return {
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"].removeprefix(
            "closedloop-"
        ): logical_id
        for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
        if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    }


def _dashboard(template: Template) -> str:
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def _allow_statements(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """Every Allow statement of every identity and resource policy, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in template.to_json()["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        documents = [properties.get(key) for key in ("PolicyDocument", "KeyPolicy")]
        documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
        for document in documents:
            if isinstance(document, dict):
                found += [
                    (f"{kind} {logical_id}", s) for s in document["Statement"] if s["Effect"] == "Allow"
                ]
    return found


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]
