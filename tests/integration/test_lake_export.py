"""The lake export under moto: the ingest functions write through ``DynamoStore``, the local pump reads
the table's stream and hands it to the export, and the raw change logs on S3 say what happened: every
change once, no personal data, the same objects however often a batch is replayed; the one-time
snapshot agrees with the current state the change logs give."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from closedloop.analytics.raw import RAW_DATASETS, RAW_KEYS
from closedloop.analytics.raw_export import export_stream_batch, export_table_snapshot
from closedloop.analytics.raw_lake import RawLake
from closedloop.cli import main as closedloop_cli
from closedloop.erasure import erase_person
from closedloop.identity import lead_id_for
from closedloop.lake import LakeUnavailableError
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.local.streams import StreamPump
from closedloop.store import DynamoStore
from closedloop.store.schema import create_table
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.event_support import streams_client
from tests.support import api_event, invoke

REGION = "us-east-1"
BUCKET = "closedloop-analytics-test"
SIGNING_SECRET = "generic-signing-secret-5e8d2c"
VISITOR = "LaptopVisitorAAAAAAAAAA"
ADA = "ada@example.com"
AD = f"{SITE_ORIGIN}/guide?utm_source=linkedin&utm_medium=cpc&utm_campaign=spring-launch&li_fat_id=abc123"


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """moto with the table and its stream, the analytics bucket, the CRM secret; the functions."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, TABLE_NAME, stream=True)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="closedloop-webhooks",
            SecretString=json.dumps({"generic": {"signing_secret": SIGNING_SECRET}}),
        )["ARN"]
        monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
        monkeypatch.setenv("BUCKET_NAME", BUCKET)
        lake = RawLake(BUCKET, client=s3)
        delivered: list[tuple[list[dict[str, Any]], str]] = []

        def export(records: list[dict[str, Any]], *, shard_id: str) -> None:
            delivered.append((records, shard_id))
            export_stream_batch(records, lake=lake, shard_id=shard_id)

        yield SimpleNamespace(
            dynamodb=dynamodb,
            s3=s3,
            lake=lake,
            store=DynamoStore(TABLE_NAME, client=dynamodb),
            delivered=delivered,
            pump=StreamPump(TABLE_NAME, consume=export, dynamodb=dynamodb, streams=streams_client()),
            collect=load_function("collect"),
            identify=load_function("identify"),
            crm_webhook=load_function("crm_webhook"),
        )


def page_view(collect: ModuleType, event_id: str, url: str, *, minutes_ago: int, referrer: str = "") -> Any:
    body = {
        "event_id": event_id,
        "visitor_id": VISITOR,
        "url": url,
        "referrer": referrer,
        "ts": int(time.time() * 1000) - minutes_ago * 60_000,
    }
    status, _, reply = invoke(collect, api_event("POST", "/collect", body=body))
    assert status in (200, 204), reply
    return reply


def submit(identify: ModuleType) -> None:
    body = {
        "email": "Ada@Example.com",
        "visitor_id": VISITOR,
        "form_id": "guide-download",
        "submission_id": "sub-guide-0001",
        "page_url": f"{SITE_ORIGIN}/guide",
        "name": "Ada Lovelace",
        "phone": "+44 20 7946 0000",
        "company": "Analytical Engines Ltd",
        "plan": "secret-plan",
    }
    status, _, reply = invoke(identify, api_event("POST", "/identify", body=body))
    assert status == 200, reply


def deal(crm_webhook: ModuleType, event_id: str, status: str, *, stage: str, version: int) -> None:
    payload = {
        "event_id": event_id,
        "deal_id": "D-1042",
        "status": status,
        "stage": stage,
        "occurred_at": datetime.now(UTC).isoformat(),
        "version": version,
        "contact_email": ADA,
        "amount": "12000.50",
        "currency": "EUR",
    }
    body = json.dumps(payload).encode()
    t = int(time.time())
    v1 = hmac.new(SIGNING_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    event = api_event(
        "POST",
        "/webhooks/generic",
        body=body,
        content_type="application/json",
        headers={"X-Closedloop-Signature": f"t={t},v1={v1}"},
    )
    code, _, reply = invoke(crm_webhook, event)
    assert code == 200, reply


def the_loop(aws: SimpleNamespace) -> None:
    """A direct visit, its late landing page from an ad (which supersedes it), a form, a deal won."""
    page_view(aws.collect, "evtDirect0001", f"{SITE_ORIGIN}/pricing", minutes_ago=5)
    page_view(aws.collect, "evtLanding001", AD, minutes_ago=10, referrer="https://www.linkedin.com/")
    submit(aws.identify)
    deal(aws.crm_webhook, "evt_open", "open", stage="proposal", version=1)
    deal(aws.crm_webhook, "evt_won", "won", stage="closed won", version=2)


def objects(aws: SimpleNamespace, prefix: str = "raw/", bucket: str = BUCKET) -> dict[str, bytes]:
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key: aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}


def rows(aws: SimpleNamespace, dataset: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for body in objects(aws, f"raw/{dataset}/").values():
        found += pq.read_table(io.BytesIO(body)).to_pylist()
    return sorted(found, key=lambda r: r["sequence"])


def current_state(
    aws: SimpleNamespace, dataset: str, folder: Path, bucket: str = BUCKET
) -> list[dict[str, Any]]:
    """What the lead's SQL does: one row per key, the greatest sequence (then changed_at), removes dropped.
    Run in DuckDB over the downloaded objects (hive partitions), as the local engine would."""
    root = folder / dataset
    for key, body in objects(aws, f"raw/{dataset}/", bucket).items():
        path = folder / key.removeprefix("raw/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    if not root.exists():
        return []
    keys = ", ".join(RAW_KEYS[dataset])
    sql = f"""
        SELECT * EXCLUDE (n, change, sequence, changed_at, expired, dt) FROM (
            SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY sequence DESC, changed_at DESC) AS n
            FROM read_parquet('{root}/*/*.parquet', hive_partitioning = true)
        ) WHERE n = 1 AND change <> 'remove' ORDER BY {keys}
    """
    return list(duckdb.sql(sql).to_arrow_table().to_pylist())


def test_the_loop_reaches_the_lake_as_raw_change_rows(aws: SimpleNamespace) -> None:
    # Given a visitor's journey, a form and a deal written by the ingest functions
    the_loop(aws)

    # When the stream is pumped to the export
    assert aws.pump.pump() > 0

    # Then each dataset has the changes, in stream order
    touches = rows(aws, "raw_touches")
    assert [(r["change"], r["touch_id"], r["superseded_by"]) for r in touches] == [
        ("insert", "evtDirect0001", None),
        ("insert", "evtLanding001", None),
        ("modify", "evtDirect0001", "evtLanding001"),  # the late landing page supersedes the direct start
    ]
    landing = touches[1]
    assert (landing["channel"], landing["source"], landing["campaign"], landing["click_id_type"]) == (
        "Paid Social",
        "linkedin",
        "spring-launch",
        "li_fat_id",
    )
    lead_id = lead_id_for(ADA)
    [link] = rows(aws, "raw_visitor_links")
    assert (link["change"], link["visitor_id"], link["lead_id"], link["linked_until"]) == (
        "insert",
        VISITOR,
        lead_id,
        None,
    )
    leads = rows(aws, "raw_leads")
    assert [r["lead_id"] for r in leads] == [lead_id] * len(leads)
    assert leads[-1]["company"] == "Analytical Engines Ltd"
    assert leads[-1]["original_campaign"] == "spring-launch"
    deals = rows(aws, "raw_deals")
    assert [(r["change"], r["lifecycle"], r["revision"]) for r in deals] == [
        ("insert", "open", 1),
        ("modify", "won", 2),
    ]
    assert deals[-1]["lead_ids"] == [lead_id] and deals[-1]["amount"] == 12000.5
    assert [r["event_id"] for r in rows(aws, "raw_deal_events")] == ["evt_open", "evt_won"]
    # ...and nothing personal anywhere in the lake: no e-mail, name, phone, custom field or click id value
    everything = b"".join(objects(aws).values())
    for secret in (b"ada@example.com", b"Ada Lovelace", b"7946", b"secret-plan", b"abc123"):
        assert secret not in everything
    # ...and every sequence is 40 characters, ordered as the stream
    for dataset in RAW_DATASETS:
        sequences = [r["sequence"] for r in rows(aws, dataset.name)]
        assert all(len(s) == 40 for s in sequences)


def test_pumping_twice_or_replaying_a_batch_writes_the_same_objects(aws: SimpleNamespace) -> None:
    the_loop(aws)
    aws.pump.pump()
    first = objects(aws)

    # Pumping again delivers nothing new and changes nothing
    assert aws.pump.pump() == 0
    assert objects(aws) == first

    # Lambda retrying every batch: the same keys, the same bytes
    for records, shard_id in list(aws.delivered):
        export_stream_batch(records, lake=aws.lake, shard_id=shard_id)
    assert objects(aws) == first

    # A later change arrives in a new object; the earlier ones stay as they were
    deal(aws.crm_webhook, "evt_lost", "lost", stage="closed lost", version=3)
    assert aws.pump.pump() > 0
    after = objects(aws)
    assert {k: v for k, v in after.items() if k in first} == first
    assert [k for k in after if k not in first] and all("raw_deal" in k for k in after if k not in first)


def test_an_s3_failure_leaves_the_batch_to_be_delivered_again(aws: SimpleNamespace) -> None:
    the_loop(aws)
    broken = StreamPump(
        TABLE_NAME,
        consume=partial(export_stream_batch, lake=RawLake("no-such-bucket", client=aws.s3)),
        dynamodb=aws.dynamodb,
        streams=streams_client(),
    )
    with pytest.raises(LakeUnavailableError):
        broken.pump()
    # Its position did not move: once S3 works, the same records come again
    broken.consume = partial(export_stream_batch, lake=aws.lake)
    assert broken.pump() > 0
    assert rows(aws, "raw_deal_events")


def test_the_function_exports_a_lambda_batch(aws: SimpleNamespace) -> None:
    the_loop(aws)
    function = load_function("lake_export")
    events: list[dict[str, Any]] = []
    StreamPump(
        TABLE_NAME,
        consume=lambda records, shard_id: events.append({"Records": records}),
        dynamodb=aws.dynamodb,
        streams=streams_client(),
    ).pump()

    reply = function.handler(events[0], LambdaContextStub(function_name="lake_export"))

    assert reply["skipped"] == 0 and reply["rows"] > 0
    # Lambda names no shard: the batch's digest names the objects
    assert all(key.rsplit("/", 1)[1].startswith("h") for key in objects(aws))


def test_erasure_reaches_the_lake_as_removes(aws: SimpleNamespace, tmp_path: Path) -> None:
    the_loop(aws)
    aws.pump.pump()
    assert current_state(aws, "raw_leads", tmp_path / "before")

    erase_person(ADA, store=aws.store, lake=None, now_ms=int(time.time() * 1000))
    aws.pump.pump()

    for dataset in ("raw_leads", "raw_visitor_links", "raw_touches"):
        assert current_state(aws, dataset, tmp_path / "after") == [], dataset


def test_the_snapshot_agrees_with_the_current_state_of_the_change_logs(
    aws: SimpleNamespace, tmp_path: Path
) -> None:
    # Given the loop exported through the stream
    the_loop(aws)
    aws.pump.pump()

    # When the table is seeded into a second bucket
    aws.s3.create_bucket(Bucket="seeded")
    snapshot_at = int(time.time() * 1000)
    result = export_table_snapshot(
        aws.store, lake=RawLake("seeded", client=aws.s3), snapshot_at=snapshot_at, rows_per_object=2
    )

    # Then it wrote insert rows of the zero sequence, in bounded objects, and skipped nothing
    assert result.skipped == 0
    assert result.rows["raw_touches"] == 2  # the landing touch and the marker of the superseded one
    assert len([k for k in result.objects if "raw_touches" in k]) == 1
    assert len([k for k in result.objects if "raw_deal_events" in k]) == 1
    # ...and every dataset's current state is the same from the stream and from the snapshot
    for dataset in RAW_DATASETS:
        streamed = current_state(aws, dataset.name, tmp_path / "stream")
        from_snapshot = current_state(aws, dataset.name, tmp_path / "snapshot", "seeded")
        assert streamed == from_snapshot, dataset.name
        assert streamed, dataset.name


def test_the_cli_seeds_the_lake_once_and_a_rerun_at_the_same_time_rewrites_the_same_objects(
    aws: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    the_loop(aws)
    capsys.readouterr()  # the functions' metrics lines
    environ = {"TABLE_NAME": TABLE_NAME, "BUCKET_NAME": BUCKET}

    assert closedloop_cli(["export-snapshot", "--at", "1796100000000"], environ=environ) == 0
    report = json.loads(capsys.readouterr().out)
    first = objects(aws)
    assert closedloop_cli(["export-snapshot", "--at", "1796100000000"], environ=environ) == 0
    capsys.readouterr()

    assert report["snapshot_at"] == 1_796_100_000_000 and report["skipped"] == 0
    assert report["rows"] == {
        "raw_touches": 2,
        "raw_visitor_links": 1,
        "raw_leads": 1,
        "raw_deals": 1,
        "raw_deal_events": 2,
    }
    assert sorted(first) == sorted(
        f"raw/{d.name}/dt=2026-12-01/snapshot-1796100000000-00000.parquet" for d in RAW_DATASETS
    )
    assert objects(aws) == first
    assert closedloop_cli(["export-snapshot"], environ={"TABLE_NAME": TABLE_NAME}) == 2
    assert "--bucket" in capsys.readouterr().err
