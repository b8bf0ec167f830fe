"""The lake export's rows: stream records of the documented shape (Lambda's DynamoDB event) become rows of
the raw datasets; malformed ones are skipped and counted; a batch's objects are named and written
deterministically; the event source mapping's filters let through exactly the exported items."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from boto3.dynamodb.types import TypeSerializer

from closedloop.analytics.raw import RAW_DATASETS, RAW_KEYS, SNAPSHOT_SEQUENCE, raw_dataset
from closedloop.analytics.raw_export import (
    LAKE_EXPORT_FILTERS,
    MalformedRecordError,
    export_stream_batch,
    raw_change,
    snapshot_row,
)
from closedloop.analytics.raw_lake import parquet_bytes
from closedloop.lake import LakeUnavailableError
from closedloop.store.keys import ItemKind, item_kind
from tests.event_support import matches

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/closedloop/stream/2026-12-01T00:00:00.000"
CREATED_S = 1_796_000_000  # 2026-11-30T02:13:20Z, what Lambda sends (epoch seconds)
VISITOR = "LaptopVisitorAAAAAAAAAA"
TOUCH_AT = 1_795_999_000_123
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
PERSONAL = ("ada@example.com", "Ada Lovelace", "+44 20 7946 0000", "5e2c8f1a-7b3d", "secret-plan")
_serialise = TypeSerializer().serialize


def wire(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialise(v) for k, v in item.items() if v is not None}


def record(
    name: str,
    *,
    keys: dict[str, str],
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    sequence: int = 1_100_000_000_017_454_423_009,
    created: float = CREATED_S,
    identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A stream record as Lambda delivers it (docs: "DynamoDB Streams and AWS Lambda triggers")."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": wire(keys),
        "SequenceNumber": str(sequence),
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = wire({**keys, **new})
    if old is not None:
        dynamodb["OldImage"] = wire({**keys, **old})
    result: dict[str, Any] = {
        "eventID": f"ev-{sequence}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN,
    }
    if identity is not None:
        result["userIdentity"] = identity
    return result


def touch_keys(touch_id: str = "evtLanding0001") -> dict[str, str]:
    return {"pk": f"V#{VISITOR}", "sk": f"T#2026-11-30T01:56:40.123Z#{touch_id}"}


TOUCH = {
    "gsi1pk": "TD#2026-11-30",
    "gsi1sk": f"2026-11-30T01:56:40.123Z#{VISITOR}",
    "visitor_id": VISITOR,
    "touch_id": "evtLanding0001",
    "occurred_at": Decimal(TOUCH_AT),
    "channel": "Paid Social",
    "source": "linkedin",
    "medium": "cpc",
    "campaign": "q4-webinar",
    "content": "carousel-a",
    "click_id_type": "li_fat_id",
    "click_id": "5e2c8f1a-7b3d",
    "landing_host": "www.acme.test",
    "landing_path": "/webinar",
    "expires_at": Decimal(1_830_000_000),
}
LEAD_ID = "a" * 64
SOURCE = {
    "channel": "Paid Social",
    "source": "linkedin",
    "medium": "cpc",
    "campaign": "q4-webinar",
    "touch_id": "evtLanding0001",
    "occurred_at": Decimal(TOUCH_AT),
    "landing_path": "/webinar",
}
LEAD = {
    "lead_id": LEAD_ID,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "phone": "+44 20 7946 0000",
    "company": "Analytical Engines Ltd",
    "job_title": "Analyst",
    "consent": True,
    "custom_fields": {"plan": "secret-plan"},
    "created_at": Decimal(1_796_000_000_000),
    "updated_at": Decimal(1_796_000_000_500),
    "submissions": Decimal(2),
    "first_seen_at": Decimal(TOUCH_AT),
    "original_source": SOURCE,
    "lead_creation_source": SOURCE,
    "latest_source": {
        **SOURCE,
        "channel": "Direct",
        "source": "(direct)",
        "medium": "(none)",
        "campaign": None,
    },
    "version": Decimal(3),
}
DEAL_KEYS = {"pk": "D#hubspot#D-1042", "sk": "STATE"}
DEAL = {
    "crm": "hubspot",
    "deal_id": "D-1042",
    "lifecycle": "won",
    "version": Decimal(2**63 - 1),
    "updated_at": Decimal(1_796_000_100_000),
    "last_event_id": "ev-7",
    "contact_emails": ["ada@example.com"],
    "pipeline": "default",
    "stage": "closedwon",
    "amount": Decimal("12000.50"),
    "currency": "EUR",
    "close_date": "2026-12-15",
    "opportunity_created_at": Decimal(1_796_000_000_000),
    "won_at": Decimal(1_796_000_100_000),
    "lead_ids": [LEAD_ID, "b" * 64],
    "revision": Decimal(4),
    "changed_at": Decimal(1_796_000_100_999),
}


def test_an_inserted_touch_becomes_a_row_without_its_click_id() -> None:
    change = raw_change(record("INSERT", keys=touch_keys(), new=TOUCH))

    assert change is not None
    assert change.dataset == "raw_touches"
    assert change.row == {
        "change": "insert",
        "sequence": "0" * 18 + "1100000000017454423009",
        "changed_at": CREATED_S * 1000,
        "expired": False,
        "visitor_id": VISITOR,
        "touch_id": "evtLanding0001",
        "occurred_at": TOUCH_AT,
        "channel": "Paid Social",
        "source": "linkedin",
        "medium": "cpc",
        "campaign": "q4-webinar",
        "term": None,
        "content": "carousel-a",
        "utm_id": None,
        "click_id_type": "li_fat_id",
        "referrer_host": None,
        "landing_host": "www.acme.test",
        "landing_path": "/webinar",
        "superseded_by": None,
    }
    assert len(change.sequence) == 40


def test_the_supersede_marker_is_a_modify_row_that_names_the_new_touch() -> None:
    # docs/architecture.md, "Sessions and late beacons": the direct touch is overwritten at its key.
    marker = {
        "visitor_id": VISITOR,
        "touch_id": "evtDirect0001",
        "occurred_at": Decimal(TOUCH_AT + 60_000),
        "superseded_by": "evtLanding0001",
        "expires_at": Decimal(1_830_000_000),
    }
    direct = {**TOUCH, "touch_id": "evtDirect0001", "channel": "Direct", "source": "(direct)"}
    change = raw_change(record("MODIFY", keys=touch_keys("evtDirect0001"), new=marker, old=direct))

    assert change is not None
    row = change.row
    assert (row["change"], row["touch_id"], row["superseded_by"]) == (
        "modify",
        "evtDirect0001",
        "evtLanding0001",
    )
    assert row["occurred_at"] == TOUCH_AT + 60_000
    assert row["channel"] is None and row["source"] is None and row["landing_path"] is None


def test_a_remove_keeps_the_keys_only_and_a_ttl_remove_says_it_expired() -> None:
    deleted = raw_change(record("REMOVE", keys=touch_keys(), old=TOUCH))
    expired = raw_change(record("REMOVE", keys=touch_keys(), old=TOUCH, identity=TTL))

    assert deleted is not None and expired is not None
    for change in (deleted, expired):
        assert change.row["change"] == "remove"
        assert {k: v for k, v in change.row.items() if v is not None and k not in ("change", "sequence")} == {
            "changed_at": CREATED_S * 1000,
            "expired": change is expired,
            "visitor_id": VISITOR,
            "touch_id": "evtLanding0001",
        }
    assert deleted.row["expired"] is False
    assert expired.row["expired"] is True
    # Another service principal is not DynamoDB's TTL.
    other = raw_change(record("REMOVE", keys=touch_keys(), identity={"type": "Service", "principalId": "x"}))
    assert other is not None and other.row["expired"] is False


def test_a_lead_row_flattens_its_sources_and_holds_nothing_personal() -> None:
    change = raw_change(record("INSERT", keys={"pk": f"L#{LEAD_ID}", "sk": "PROFILE"}, new=LEAD))

    assert change is not None and change.dataset == "raw_leads"
    row = change.row
    assert set(row) == {c.name for c in raw_dataset("raw_leads").columns}
    assert (row["lead_id"], row["submissions"], row["company"], row["job_title"]) == (
        LEAD_ID,
        2,
        "Analytical Engines Ltd",
        "Analyst",
    )
    assert (row["original_channel"], row["original_source"], row["original_occurred_at"]) == (
        "Paid Social",
        "linkedin",
        TOUCH_AT,
    )
    assert (row["latest_channel"], row["latest_campaign"], row["latest_touch_id"]) == (
        "Direct",
        None,
        "evtLanding0001",
    )
    assert not any(secret in str(row.values()) for secret in PERSONAL)


def test_a_deal_row_keeps_its_server_time_apart_from_the_change_time_and_no_contact_emails() -> None:
    change = raw_change(record("MODIFY", keys=DEAL_KEYS, new=DEAL, old={**DEAL, "lifecycle": "open"}))

    assert change is not None and change.dataset == "raw_deals"
    row = change.row
    assert row["changed_at"] == CREATED_S * 1000
    assert row["changed_at_server"] == 1_796_000_100_999
    assert (row["version"], row["revision"], row["amount"], row["close_date"]) == (
        2**63 - 1,
        4,
        12000.5,
        "2026-12-15",
    )
    assert row["lead_ids"] == [LEAD_ID, "b" * 64]
    assert row["reopened_at"] is None
    assert "contact_emails" not in row
    assert "ada@example.com" not in str(row.values())


def test_a_deal_event_and_its_removal_by_erasure() -> None:
    keys = {"pk": "D#generic#D-7", "sk": "EV#ev-42"}
    event = {
        "crm": "generic",
        "event_id": "ev-42",
        "deal_id": "D-7",
        "lifecycle": "open",
        "occurred_at": Decimal(1_796_000_000_000),
        "version": Decimal(5),
        "contact_emails": ["ada@example.com"],
        "stage": "proposal",
        "amount": Decimal("99.99"),
        "currency": "USD",
        "close_date": "2027-01-31",
        "received_at": Decimal(1_796_000_000_700),
    }
    inserted = raw_change(record("INSERT", keys=keys, new=event))
    removed = raw_change(record("REMOVE", keys=keys, old=event))

    assert inserted is not None and removed is not None
    assert inserted.dataset == removed.dataset == "raw_deal_events"
    assert inserted.row["received_at"] == 1_796_000_000_700
    assert inserted.row["amount"] == pytest.approx(99.99)
    assert inserted.row["pipeline"] is None and inserted.row["created_at"] is None
    assert (removed.row["crm"], removed.row["deal_id"], removed.row["event_id"], removed.row["stage"]) == (
        "generic",
        "D-7",
        "ev-42",
        None,
    )


def test_a_visitor_link_and_its_closing() -> None:
    keys = {"pk": f"V#{VISITOR}", "sk": "LINK#0000000000000"}
    link = {"visitor_id": VISITOR, "lead_id": LEAD_ID, "linked_from": Decimal(0), "linked_at": Decimal(5)}
    opened = raw_change(record("INSERT", keys=keys, new=link))
    closed = raw_change(record("MODIFY", keys=keys, new={**link, "linked_until": Decimal(9)}, old=link))

    assert opened is not None and closed is not None
    assert opened.dataset == "raw_visitor_links"
    assert (opened.row["linked_from"], opened.row["linked_until"], opened.row["linked_at"]) == (0, None, 5)
    assert closed.row["linked_until"] == 9
    # The lead's mirror of the same link is not exported.
    mirror = {"pk": f"L#{LEAD_ID}", "sk": f"V#{VISITOR}#0000000000000"}
    assert raw_change(record("INSERT", keys=mirror, new=link)) is None


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda r: r["dynamodb"].pop("Keys"), id="no keys"),
        pytest.param(lambda r: r["dynamodb"].pop("NewImage"), id="insert without its image"),
        pytest.param(lambda r: r["dynamodb"].pop("SequenceNumber"), id="no sequence number"),
        pytest.param(lambda r: r["dynamodb"].pop("ApproximateCreationDateTime"), id="no creation time"),
        pytest.param(lambda r: r.update(eventName="UPSERT"), id="unknown event name"),
        pytest.param(
            lambda r: r["dynamodb"]["NewImage"].update(occurred_at={"S": "yesterday"}), id="bad type"
        ),
        pytest.param(lambda r: r["dynamodb"]["NewImage"].update(channel={"X": "?"}), id="not DynamoDB JSON"),
        pytest.param(
            lambda r: r["dynamodb"]["NewImage"].update(occurred_at={"N": "1.5"}), id="fractional ms"
        ),
        pytest.param(
            lambda r: r["dynamodb"].update(Keys={"pk": {"S": "V#"}, "sk": {"S": "T#x"}}), id="bad key"
        ),
    ],
)
def test_a_malformed_record_is_refused(broken: Any) -> None:
    bad = record("INSERT", keys=touch_keys(), new=TOUCH)
    broken(bad)
    with pytest.raises(MalformedRecordError):
        raw_change(bad)


class CapturingLake:
    """An in-memory analytics bucket: key -> bytes, as S3 would keep them."""

    def __init__(self, fail: bool = False) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = fail

    def put_table(self, key: str, table: pa.Table) -> int:
        if self.fail:
            raise LakeUnavailableError("S3 put_object failed")
        self.objects[key] = parquet_bytes(table)
        return len(self.objects[key])

    def rows(self, key: str) -> list[dict[str, Any]]:
        return pq.read_table(io.BytesIO(self.objects[key])).to_pylist()


def batch() -> list[dict[str, Any]]:
    malformed = record("INSERT", keys=touch_keys("evtBroken0001"), new=TOUCH, sequence=102)
    malformed["dynamodb"]["NewImage"]["occurred_at"] = {"S": "yesterday"}
    return [
        record("INSERT", keys=touch_keys(), new=TOUCH, sequence=101, created=CREATED_S),
        malformed,
        record("INSERT", keys={"pk": f"L#{LEAD_ID}", "sk": "PROFILE"}, new=LEAD, sequence=103),
        record(
            "REMOVE", keys=touch_keys("evtOld0001"), identity=TTL, sequence=104, created=CREATED_S + 86_400
        ),
        record("INSERT", keys={"pk": "LATE#2026-11-30", "sk": "TD#2026-11-29"}, new={}, sequence=105),
    ]


def test_a_batch_writes_one_object_per_dataset_skipping_and_counting_the_malformed_record() -> None:
    lake = CapturingLake()

    result = export_stream_batch(batch(), lake=lake, shard_id="shardId-00000001-f35f62ef")

    name = f"shardId-00000001-f35f62ef-{101:040d}-{104:040d}.parquet"
    # dt is the first change's day, for every dataset of the batch (the TTL remove arrived a day later).
    assert set(lake.objects) == {
        f"raw/raw_touches/dt=2026-11-30/{name}",
        f"raw/raw_leads/dt=2026-11-30/{name}",
    }
    assert result.rows == {"raw_touches": 2, "raw_leads": 1}
    assert (result.skipped, result.ignored) == (1, 1)
    touches = lake.rows(f"raw/raw_touches/dt=2026-11-30/{name}")
    assert [(r["change"], r["touch_id"], r["expired"]) for r in touches] == [
        ("insert", "evtLanding0001", False),
        ("remove", "evtOld0001", True),
    ]
    schema = pq.read_schema(io.BytesIO(lake.objects[f"raw/raw_touches/dt=2026-11-30/{name}"]))
    assert schema.equals(raw_dataset("raw_touches").schema)


def test_a_retried_batch_writes_the_same_keys_and_bytes_and_without_a_shard_a_stable_digest_names_it() -> (
    None
):
    first, again = CapturingLake(), CapturingLake()
    export_stream_batch(batch(), lake=first)
    export_stream_batch(batch(), lake=again)

    assert first.objects == again.objects
    [key, _] = sorted(first.objects)
    assert key.startswith("raw/raw_leads/dt=2026-11-30/h")
    assert key.endswith(f"-{101:040d}-{104:040d}.parquet")
    # Another batch with the same first and last sequence (another shard) gets another name.
    other = batch()
    other[2]["eventID"] = "ev-from-another-shard"
    elsewhere = CapturingLake()
    export_stream_batch(other, lake=elsewhere)
    assert set(elsewhere.objects).isdisjoint(first.objects)


def test_an_s3_failure_raises_so_lambda_retries_the_batch() -> None:
    with pytest.raises(LakeUnavailableError):
        export_stream_batch(batch(), lake=CapturingLake(fail=True))


def test_a_batch_of_nothing_exported_writes_nothing() -> None:
    lake = CapturingLake()
    result = export_stream_batch([batch()[1], batch()[4]], lake=lake)
    assert lake.objects == {}
    assert (result.skipped, result.ignored, result.objects) == (1, 1, ())


def test_a_snapshot_row_is_an_insert_with_the_zero_sequence() -> None:
    item = {**touch_keys(), **TOUCH}
    found = snapshot_row(item, snapshot_at=1_796_100_000_000)
    assert found is not None
    dataset, row = found
    assert dataset == "raw_touches"
    assert (row["change"], row["sequence"], row["changed_at"], row["expired"]) == (
        "insert",
        SNAPSHOT_SEQUENCE,
        1_796_100_000_000,
        False,
    )
    assert snapshot_row({"pk": f"V#{VISITOR}", "sk": "E#evt1"}, snapshot_at=1) is None


# Every kind of item in the table (docs/architecture.md, "The DynamoDB table"), exported or not.
ITEMS = {
    ("V#v", "STATE"): None,
    ("V#v", "E#evt"): None,
    ("V#v", "T#2026-11-30T01:56:40.123Z#evt"): ItemKind.TOUCH,
    ("V#v", "LINK#0000000000000"): ItemKind.VISITOR_LINK,
    ("L#l", "PROFILE"): ItemKind.LEAD,
    ("L#l", "V#v#0000000000000"): None,
    ("L#l", "S#sub"): None,
    ("L#l", "DEAL#hubspot#d"): None,
    ("L#l", "SYNC#hubspot#contact"): None,
    ("D#hubspot#d", "STATE"): ItemKind.DEAL,
    ("D#hubspot#d", "EV#e"): ItemKind.DEAL_EVENT,
    ("LATE#2026-11-30", "TD#2026-11-29"): None,
    ("JOB#attribute", "WATERMARK"): None,
}


@pytest.mark.parametrize(("keys", "kind"), ITEMS.items(), ids=[f"{pk} {sk}" for pk, sk in ITEMS])
@pytest.mark.parametrize("name", ["INSERT", "MODIFY", "REMOVE"])
def test_the_filters_let_through_exactly_the_exported_items(
    keys: tuple[str, str], kind: ItemKind | None, name: str
) -> None:
    pk, sk = keys
    stream_record = record(name, keys={"pk": pk, "sk": sk})
    assert any(matches(pattern, stream_record) for pattern in LAKE_EXPORT_FILTERS) is (kind is not None)
    assert item_kind(pk, sk) is kind


def test_every_raw_dataset_has_its_key_columns_and_the_change_columns() -> None:
    for dataset in RAW_DATASETS:
        names = [c.name for c in dataset.columns]
        assert names[:4] == ["change", "sequence", "changed_at", "expired"]
        assert set(RAW_KEYS[dataset.name]) <= set(names)
        assert len(names) == len(set(names))
