"""The lake export's construct, synthesised once in a small stack (the table, the analytics bucket and
database, cdk-nag on): the function on the filtered stream with its batching, bisecting and DLQ, exactly
``s3:PutObject`` on ``raw/*`` and no table read, and the Glue tables of the raw datasets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from closedloop.analytics.raw import RAW_DATASETS
from infra.constructs.analytics import AnalyticsConstruct
from infra.constructs.lake_export import LakeExportConstruct
from infra.constructs.storage import StorageConstruct

pytestmark = pytest.mark.infra

LAYER = "arn:aws:lambda:eu-west-1:123456789012:layer:{}:1"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stack = Stack(app, "LakeExportTest")
    storage = StorageConstruct(stack, "Storage", production=False)
    analytics = AnalyticsConstruct(stack, "Analytics", production=False, retention_days=395)
    layers = [
        lambda_.LayerVersion.from_layer_version_arn(stack, name, LAYER.format(name))
        for name in ("SdkForPandas", "Powertools", "Common")
    ]
    LakeExportConstruct(
        stack,
        "LakeExport",
        layers=layers,
        storage=storage,
        bucket=analytics.bucket,
        database_name=analytics.database_name,
        log_retention_days=30,
        depends_on=[analytics.node.find_child("Database")],
    )
    # The stack's own acknowledgment (infra/stack.py): Python 3.12 is the project's runtime.
    Validations.of(stack).acknowledge(Acknowledgment(id="AwsSolutions-L1", reason="As ClosedloopStack."))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # cdk-nag: any unacknowledged finding fails here
    return Template.from_stack(stack)


def _function(template: Template) -> tuple[str, dict[str, Any]]:
    [(name, function)] = [
        (n, f)
        for n, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == "closedloop-lake-export"
    ]
    return name, function


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_the_function_is_the_projects_python_on_arm_with_pyarrow_first(template: Template) -> None:
    _, function = _function(template)
    properties = function["Properties"]
    assert (properties["Runtime"], properties["Architectures"], properties["Handler"]) == (
        "python3.12",
        ["arm64"],
        "handler.handler",
    )
    assert {"TABLE_NAME", "BUCKET_NAME"} <= set(properties["Environment"]["Variables"])
    assert [layer.split(":")[6] for layer in properties["Layers"]] == ["SdkForPandas", "Powertools", "Common"]
    assert properties["TracingConfig"] == {"Mode": "Active"}


def test_the_stream_mapping_filters_batches_bisects_and_keeps_failures(template: Template) -> None:
    name, _ = _function(template)
    [mapping] = [
        m["Properties"]
        for m in template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": name}
    ]
    assert mapping["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == 10_000
    assert mapping["MaximumBatchingWindowInSeconds"] == 60
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    assert mapping["MaximumRecordAgeInSeconds"] == 86_400
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0].startswith(
        "LakeExportDeadLetterQueue"
    )
    # No batch item failures: a batch is written whole or retried whole.
    assert "FunctionResponseTypes" not in mapping
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [
        {
            "dynamodb": {
                "Keys": {
                    "pk": {"S": [{"prefix": "V#"}]},
                    "sk": {"S": [{"prefix": "T#"}, {"prefix": "LINK#"}]},
                }
            }
        },
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "L#"}]}, "sk": {"S": ["PROFILE"]}}}},
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "D#"}]}, "sk": {"S": ["STATE", {"prefix": "EV#"}]}}}},
    ]


def test_the_role_may_put_raw_objects_and_read_the_stream_only(template: Template) -> None:
    _, function = _function(template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in _actions(s)}
    [s3] = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert _actions(s3) == ["s3:PutObject"]
    assert s3["Resource"]["Fn::Join"][1][-1] == "/raw/*"
    # The stream, never the table: no GetItem, Query or Scan.
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:ListStreams",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    }
    assert {a.split(":")[0] for a in actions} == {"s3", "dynamodb", "sqs", "logs", "xray"}
    assert {a for a in actions if a.startswith("sqs:")} <= {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }


def test_the_raw_datasets_are_glue_tables_with_partition_projection(template: Template) -> None:
    tables = {
        t["Properties"]["TableInput"]["Name"]: t
        for t in template.find_resources("AWS::Glue::Table").values()
        if t["Properties"]["TableInput"]["Name"].startswith("raw_")
    }
    assert sorted(tables) == sorted(d.name for d in RAW_DATASETS)
    for dataset in RAW_DATASETS:
        table = tables[dataset.name]
        table_input = table["Properties"]["TableInput"]
        # The database AnalyticsConstruct names after the stack.
        assert table["Properties"]["DatabaseName"] == "lake_export_test"
        assert any(d.startswith("AnalyticsDatabase") for d in table["DependsOn"])
        columns = table_input["StorageDescriptor"]["Columns"]
        assert [(c["Name"], c["Type"]) for c in columns] == [(c.name, c.glue_type) for c in dataset.columns]
        assert all(c["Comment"] for c in columns)
        assert table_input["PartitionKeys"][0]["Name"] == "dt"
        parameters = table_input["Parameters"]
        assert parameters["classification"] == "parquet"
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.dt.type"] == "date"
        assert parameters["projection.dt.format"] == "yyyy-MM-dd"
        assert parameters["projection.dt.range"] == "2020-01-01,NOW"
        template_parts = parameters["storage.location.template"]["Fn::Join"][1]
        assert template_parts[0] == "s3://"
        assert template_parts[-1] == f"/raw/{dataset.name}/dt=${{dt}}/"
        assert table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith(
            "ParquetHiveSerDe"
        )
    deal_columns = tables["raw_deals"]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
    assert {c["Name"]: c["Type"] for c in deal_columns}["lead_ids"] == "array<string>"
