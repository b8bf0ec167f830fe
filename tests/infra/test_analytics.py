"""The analytics constructs in a small stack, synthesised once with cdk-nag: bucket, Glue, Athena, the job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Environment, Stack, Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from closedloop.analytics.datasets import DATASETS, PARTITION_KEY
from closedloop.analytics.queries import named_queries
from closedloop.local.lakeview import duckdb_over_lake
from infra.config import DeploySettings
from infra.constructs.analytics import TOUCHES_PREFIX, AnalyticsConstruct, analytics_name
from infra.constructs.attribute_job import SDK_FOR_PANDAS_PARAMETER, AttributeJobConstruct
from infra.constructs.layers import LayersConstruct
from infra.constructs.storage import StorageConstruct
from infra.stack import ClosedloopStack

pytestmark = pytest.mark.infra

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# The module's stack is "AnalyticsTest": its Glue database and Athena workgroup are named after it.
NAME = "analytics_test"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    # Bundling is skipped (pip downloads): test_layer_bundling.py builds the common layer for real.
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stack = Stack(app, "AnalyticsTest")
    storage = StorageConstruct(stack, "Storage", production=False)
    layers = LayersConstruct(stack, "Layers")
    analytics = AnalyticsConstruct(stack, "Analytics", production=False)
    AttributeJobConstruct(
        stack,
        "AttributeJob",
        layers=layers.all,
        table=storage,
        bucket=analytics.bucket,
        environment={"LOOKBACK_DAYS": "60"},
        log_retention_days=30,
    )
    Validations.of(stack).acknowledge(
        Acknowledgment(id="AwsSolutions-L1", reason="Python 3.12 is pinned on purpose (as in the stack).")
    )
    # cdk-nag's AwsSolutions pack: an unacknowledged finding makes synth raise.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def bucket_id(template: Template) -> str:
    buckets = template.find_resources(
        "AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}
    )
    [logical_id] = buckets
    return logical_id


def test_the_analytics_bucket_is_encrypted_private_versioned_logged_and_expiring(
    template: Template, bucket_id: str
) -> None:
    bucket = template.to_json()["Resources"][bucket_id]["Properties"]
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "DestinationBucketName" in bucket["LoggingConfiguration"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert rules["ExpireAthenaResults"]["Prefix"] == "athena-results/"
    assert rules["ExpireAthenaResults"]["ExpirationInDays"] == 30


def test_touch_partitions_and_their_old_versions_expire_with_the_default_retention(
    template: Template, bucket_id: str
) -> None:
    # Given no retentionDays in the context: the stack's default, 395 days, as the table's TTL
    rules = {
        r["Id"]: r
        for r in template.to_json()["Resources"][bucket_id]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert TOUCHES_PREFIX == "touches/"
    assert "touches" in {d.name for d in DATASETS}
    assert rules["ExpireTouches"] == {
        "Id": "ExpireTouches",
        "Prefix": "touches/",
        "Status": "Enabled",
        "ExpirationInDays": 395,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    }
    assert rules["RemoveExpiredTouchMarkers"] == {
        "Id": "RemoveExpiredTouchMarkers",
        "Prefix": "touches/",
        "Status": "Enabled",
        "ExpiredObjectDeleteMarker": True,
    }
    # Only touches: leads and deals are kept, like their items in the table.
    assert not any(str(r.get("Prefix", "")).startswith(("leads/", "deals/")) for r in rules.values())


@pytest.mark.parametrize(
    ("context", "retention_days", "expected"),
    [
        ({"retentionDays": 30}, None, 30),  # cdk.json / -c retentionDays=30
        ({"retentionDays": "180"}, None, 180),  # -c passes strings
        ({"retentionDays": 30}, 90, 90),  # the stack's settings, handed in, win
        ({"retentionDays": 0}, None, None),  # 0 keeps page views and touches: no expiry
    ],
)
def test_touches_expire_after_the_configured_retention_and_never_with_zero(
    tmp_path: Path, context: dict[str, object], retention_days: int | None, expected: int | None
) -> None:
    app = App(context={"aws:cdk:bundling-stacks": [], **context}, outdir=str(tmp_path))
    stack = Stack(app, "RetentionTest")
    AnalyticsConstruct(stack, "Analytics", production=False, retention_days=retention_days)
    [bucket] = (
        Template.from_stack(stack)
        .find_resources("AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}})
        .values()
    )
    touches = {
        r["Id"]: r
        for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if r.get("Prefix") == TOUCHES_PREFIX
    }
    if expected is None:
        assert touches == {}
    else:
        assert touches["ExpireTouches"]["ExpirationInDays"] == expected
        assert touches["ExpireTouches"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_a_negative_retention_in_the_context_is_refused(tmp_path: Path) -> None:
    app = App(context={"aws:cdk:bundling-stacks": [], "retentionDays": -1}, outdir=str(tmp_path))
    with pytest.raises(ValueError, match="retentionDays"):
        AnalyticsConstruct(Stack(app, "RetentionTest"), "Analytics", production=False)


def test_every_bucket_denies_requests_without_tls(template: Template) -> None:
    buckets = template.find_resources("AWS::S3::Bucket")
    policies = template.find_resources("AWS::S3::BucketPolicy").values()
    ssl_only = {
        p["Properties"]["Bucket"]["Ref"]
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert len(buckets) == 2  # the analytics bucket and its access-log bucket
    assert ssl_only == set(buckets)


def test_the_glue_database_is_named_after_the_stack(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": NAME})}
    )


def test_every_dataset_is_a_parquet_table_with_its_columns_and_their_comments(
    template: Template, bucket_id: str
) -> None:
    tables = _tables(template)
    assert set(tables) == {d.name for d in DATASETS}
    for dataset in DATASETS:
        table = tables[dataset.name]
        assert table["DatabaseName"] == NAME
        table_input = table["TableInput"]
        descriptor = table_input["StorageDescriptor"]
        assert [(c["Name"], c["Type"], c["Comment"]) for c in descriptor["Columns"]] == [
            (c.name, c.glue_type, c.description) for c in dataset.columns
        ]
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
        assert descriptor["InputFormat"].endswith("MapredParquetInputFormat")
        assert descriptor["OutputFormat"].endswith("MapredParquetOutputFormat")
        assert _join(descriptor["Location"], bucket_id) == f"s3://<bucket>/{dataset.name}/"
        [partition] = table_input["PartitionKeys"]
        assert partition["Name"] == PARTITION_KEY == "dt"
        assert partition["Type"] == "string"
        assert dataset.partitioned_by in partition["Comment"]
        assert table_input["Description"] == dataset.description


def test_every_table_projects_its_daily_partitions(template: Template, bucket_id: str) -> None:
    for name, table in _tables(template).items():
        parameters = table["TableInput"]["Parameters"]
        assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == {
            "projection.enabled": "true",
            "projection.dt.type": "date",
            "projection.dt.format": "yyyy-MM-dd",
            "projection.dt.range": "2020-01-01,NOW",
            "projection.dt.interval": "1",
            "projection.dt.interval.unit": "DAYS",
        }
        template_location = _join(parameters["storage.location.template"], bucket_id)
        assert template_location == f"s3://<bucket>/{name}/dt=${{dt}}/"
        assert parameters["classification"] == "parquet"


def test_the_workgroup_enforces_encrypted_results_in_the_bucket_and_caps_scans(
    template: Template, bucket_id: str
) -> None:
    [workgroup] = template.find_resources("AWS::Athena::WorkGroup").values()
    properties = workgroup["Properties"]
    assert properties["Name"] == NAME
    configuration = properties["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["PublishCloudWatchMetricsEnabled"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 10 * 1024**3
    results = configuration["ResultConfiguration"]
    assert _join(results["OutputLocation"], bucket_id) == "s3://<bucket>/athena-results/"
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}


def test_one_named_query_per_sql_file_in_the_workgroup_and_database(template: Template) -> None:
    queries = {
        q["Properties"]["Name"]: q["Properties"]
        for q in template.find_resources("AWS::Athena::NamedQuery").values()
    }
    expected = named_queries()
    assert set(queries) == {q.name for q in expected}
    [workgroup_id] = template.find_resources("AWS::Athena::WorkGroup")
    for query in expected:
        properties = queries[query.name]
        assert properties["QueryString"] == query.in_database(NAME).sql
        assert f"{NAME}." in properties["QueryString"] and "closedloop." not in properties["QueryString"]
        assert properties["Database"] == NAME
        assert properties["WorkGroup"] == {"Ref": workgroup_id}
        assert properties["Description"] == query.description


def test_the_outputs_name_the_bucket_database_and_workgroup(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    names = " ".join(outputs)
    assert "AnalyticsBucketName" in names
    assert "GlueDatabase" in names
    assert "AthenaWorkgroup" in names


@pytest.mark.parametrize(
    ("stack_name", "expected"),
    [
        ("Closedloop", "closedloop"),  # the default stack keeps the documented names
        ("ClosedloopStaging", "closedloop_staging"),
        ("closedloop-eu-2", "closedloop_eu_2"),
        ("AnalyticsTest", NAME),
    ],
)
def test_the_analytics_names_derive_from_the_stack_name(stack_name: str, expected: str) -> None:
    assert analytics_name(stack_name) == expected


def test_two_stacks_in_one_account_and_region_name_their_database_and_workgroup_apart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given two Closedloop stacks in one app, one account, one region (Glue and Athena names are
    # unique per account and region: the second stack's create would fail on the first's name)
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    env = Environment(account="123456789012", region="eu-west-1")
    settings = DeploySettings.model_validate({"allowedOrigins": ["https://www.acme.test"]})
    stacks = [
        ClosedloopStack(app, name, settings=settings, env=env) for name in ("Closedloop", "ClosedloopStaging")
    ]
    app.synth()

    # Then each names its own, and everything that refers to them follows
    names = {}
    for stack in stacks:
        template = Template.from_stack(stack).to_json()
        resources = template["Resources"].values()
        [database] = [
            r["Properties"]["DatabaseInput"]["Name"] for r in resources if r["Type"] == "AWS::Glue::Database"
        ]
        [workgroup] = [r["Properties"]["Name"] for r in resources if r["Type"] == "AWS::Athena::WorkGroup"]
        assert {r["Properties"]["DatabaseName"] for r in resources if r["Type"] == "AWS::Glue::Table"} == {
            database
        }
        queries = [r["Properties"] for r in resources if r["Type"] == "AWS::Athena::NamedQuery"]
        assert {q["Database"] for q in queries} == {database}
        assert all(f"FROM {database}." in q["QueryString"] for q in queries)
        assert template["Outputs"]["GlueDatabase"]["Value"] == database
        names[stack.stack_name] = (database, workgroup)
    assert names == {
        "Closedloop": ("closedloop", "closedloop"),
        "ClosedloopStaging": ("closedloop_staging", "closedloop_staging"),
    }


def test_the_named_queries_run_in_a_database_of_another_name(tmp_path: Path) -> None:
    # The local lake view under the second stack's name (one empty, typed partition per dataset):
    # every query's tables resolve there, none in "closedloop"
    import pyarrow.parquet as pq

    for dataset in DATASETS:
        folder = tmp_path / dataset.name / "dt=2026-12-07"
        folder.mkdir(parents=True)
        pq.write_table(dataset.schema.empty_table(), folder / "part.parquet")
    sql = duckdb_over_lake(tmp_path, database="closedloop_staging")
    for query in named_queries():
        sql.execute(query.in_database("closedloop_staging").sql).fetchall()


def test_the_attribute_function_runs_on_arm64_with_the_sdk_for_pandas_layer(template: Template) -> None:
    function = _attribute_function(template)
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.12"
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == "handler.handler"
    assert properties["MemorySize"] == 2048
    assert properties["Timeout"] == 900
    layers = properties["Layers"]
    assert len(layers) == 3
    parameters = template.to_json()["Parameters"]
    sdk_parameter = next(
        name for name, p in parameters.items() if p.get("Default") == SDK_FOR_PANDAS_PARAMETER
    )
    # First, so the Powertools and common layers' files win where the layers overlap.
    assert layers[0] == {"Ref": sdk_parameter}
    assert SDK_FOR_PANDAS_PARAMETER.startswith("/aws/service/aws-sdk-pandas/3.")
    assert SDK_FOR_PANDAS_PARAMETER.endswith("/py3.12/arm64/layer-arn")
    variables = properties["Environment"]["Variables"]
    assert set(variables) >= {"TABLE_NAME", "BUCKET_NAME", "LOOKBACK_DAYS", "BASE_CURRENCY"}
    assert variables["LOOKBACK_DAYS"] == "60"  # the caller's environment wins over the default
    assert variables["BASE_CURRENCY"] == "USD"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "closedloop-attribute"


def test_the_schedule_runs_the_job_incrementally_every_hour_with_retries_and_a_dlq(
    template: Template,
) -> None:
    [schedule] = template.find_resources("AWS::Scheduler::Schedule").values()
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == "rate(1 hour)"
    assert properties["State"] == "ENABLED"
    target = properties["Target"]
    [function_id] = _ids(template, "AWS::Lambda::Function", "closedloop-attribute")
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert json.loads(target["Input"]) == {"mode": "incremental"}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    [queue_id] = template.find_resources("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}


def test_failed_runs_of_the_function_also_land_in_the_encrypted_ssl_only_dlq(template: Template) -> None:
    [queue_id] = template.find_resources("AWS::SQS::Queue")
    queue = template.to_json()["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    [invoke_config] = template.find_resources("AWS::Lambda::EventInvokeConfig").values()
    config = invoke_config["Properties"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 3600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    [queue_policy] = template.find_resources("AWS::SQS::QueuePolicy").values()
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in queue_policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_the_job_gets_exact_table_actions_and_no_service_wildcards(template: Template) -> None:
    statements = _attribute_statements(template)
    actions = {a for s in statements for a in _list(s["Action"])}
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    }
    every_action = [
        a
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        for a in _list(s["Action"])
    ]
    assert "dynamodb:*" not in every_action
    assert "s3:*" not in every_action
    assert not any(str(a).endswith(":*") for a in every_action)


def test_the_job_reads_and_writes_only_dataset_prefixes_and_its_state_and_reads_spend(
    template: Template, bucket_id: str
) -> None:
    s3_statements = [
        s
        for s in _attribute_statements(template)
        if any(str(a).startswith("s3:") for a in _list(s["Action"]))
    ]
    datasets = {f"s3://<bucket>/{d.name}/*" for d in DATASETS} | {"s3://<bucket>/state/*"}
    by_actions: dict[frozenset[str], set[str]] = {}
    for statement in s3_statements:
        resources = {_join(r, bucket_id, arn=True) for r in _list(statement["Resource"])}
        assert all(r.startswith("s3://<bucket>") for r in resources), resources
        by_actions.setdefault(frozenset(_list(statement["Action"])), set()).update(resources)
    assert by_actions[frozenset({"s3:ListBucket"})] == {"s3://<bucket>"}
    write = frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"})
    assert by_actions[write] == datasets
    assert by_actions[frozenset({"s3:GetObject"})] == {"s3://<bucket>/spend/*"}
    [listing] = [s for s in s3_statements if s["Action"] == "s3:ListBucket"]
    assert set(listing["Condition"]["StringLike"]["s3:prefix"]) == {f"{d.name}/*" for d in DATASETS} | {
        "spend/*",
        "state/*",
    }


def test_the_athena_docs_describe_every_table_column_and_named_query() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "athena.md").read_text()
    for dataset in DATASETS:
        assert f"### `{dataset.name}`" in docs
        for column in dataset.columns:
            assert f"| `{column.name}` | {column.glue_type} |" in docs, (dataset.name, column.name)
    for query in named_queries():
        assert f"| `{query.name}` |" in docs
    assert "MSCK REPAIR" in docs
    assert SDK_FOR_PANDAS_PARAMETER in docs


def _tables(template: Template) -> dict[str, dict[str, Any]]:
    return {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]
        for t in template.find_resources("AWS::Glue::Table").values()
    }


def _join(value: object, bucket_id: str, *, arn: bool = False) -> str:
    """Render an Fn::Join / Ref / GetAtt string with the analytics bucket as ``<bucket>``."""
    if isinstance(value, str):
        return value
    assert isinstance(value, dict)
    if "Ref" in value:
        assert value["Ref"] == bucket_id, value
        return "<bucket>"
    if "Fn::GetAtt" in value:
        assert value["Fn::GetAtt"] == [bucket_id, "Arn"], value
        return "s3://<bucket>" if arn else "<bucket-arn>"
    separator, parts = value["Fn::Join"]
    return separator.join(_join(p, bucket_id, arn=arn) for p in parts)


def _ids(template: Template, kind: str, service: str) -> list[str]:
    return [
        logical_id
        for logical_id, resource in template.find_resources(kind).items()
        if resource["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == service
    ]


def _attribute_function(template: Template) -> dict[str, Any]:
    [function_id] = _ids(template, "AWS::Lambda::Function", "closedloop-attribute")
    function: dict[str, Any] = template.to_json()["Resources"][function_id]
    return function


def _attribute_statements(template: Template) -> list[dict[str, Any]]:
    role_id = _attribute_function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]
