"""The lake export: the table's changes become the raw datasets (``closedloop.analytics.raw``) on S3.

The table's stream (new and old images) has a second consumer, ``functions/lake_export``, filtered at
its event source mapping to the items the raw datasets keep (:data:`LAKE_EXPORT_FILTERS`: touches,
visitor links, lead profiles, deal states and deal events). For each batch of stream records
:func:`export_stream_batch` writes one Parquet object per dataset that has rows, at
``raw/<dataset>/dt=<day>/<shard>-<first sequence>-<last sequence>.parquet``:

- ``<day>`` is the UTC day of the batch's first change (its ``ApproximateCreationDateTime``);
- ``<shard>`` is the stream shard's id when the caller knows it (the local pump does). Lambda's stream
  event does not carry it, so the function names the batch by a digest of its records' event ids
  instead (``h`` and 16 hex digits): as unique, and the same on every retry of the batch;
- a retried batch writes the same keys with the same bytes; a bisected retry writes its halves under
  other names, so some rows appear twice, which readers collapse (one row per key and sequence).

It reads nothing from the table. A record that cannot be read (no keys, a bad image, a number where a
string belongs) is skipped and counted, never blocks the batch; an S3 failure raises, so Lambda retries
the batch. Rows keep only the columns of their dataset: no e-mail, name, phone, custom field, IP address
or click id value can reach them.

:func:`export_table_snapshot` seeds the same datasets once from a Scan, for a deployment whose table
existed before the stream consumer (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from closedloop.analytics.datasets import Column, Dataset
from closedloop.analytics.raw import (
    RAW_DATASETS,
    RAW_KEYS,
    RAW_PREFIX,
    SEQUENCE_WIDTH,
    SNAPSHOT_SEQUENCE,
    raw_dataset,
)
from closedloop.clock import day_of
from closedloop.models.collect import EPOCH_MS_MAX
from closedloop.observability import logger
from closedloop.store.images import decode_item
from closedloop.store.keys import EXPORTED_KINDS, ItemKind, item_kind, key_attributes
from closedloop.store.snapshot import scan_items

if TYPE_CHECKING:
    from closedloop.store.dynamodb import DynamoStore

__all__ = [
    "KIND_DATASETS",
    "LAKE_EXPORT_FILTERS",
    "ExportResult",
    "MalformedRecordError",
    "RawChange",
    "RawWriter",
    "export_stream_batch",
    "export_table_snapshot",
    "raw_change",
    "raw_object_key",
    "snapshot_row",
]

KIND_DATASETS: dict[ItemKind, Dataset] = {
    ItemKind.TOUCH: raw_dataset("raw_touches"),
    ItemKind.VISITOR_LINK: raw_dataset("raw_visitor_links"),
    ItemKind.LEAD: raw_dataset("raw_leads"),
    ItemKind.DEAL: raw_dataset("raw_deals"),
    ItemKind.DEAL_EVENT: raw_dataset("raw_deal_events"),
}
_CHANGES = {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}
# A lead keeps three sources as maps; the raw leads dataset flattens each into prefixed columns.
_LEAD_SOURCES = ("original_", "lead_creation_", "latest_")
_LEAD_SOURCE_FIELDS = ("channel", "source", "medium", "campaign", "touch_id", "occurred_at")
_INT64 = (-(2**63), 2**63 - 1)
_STRING, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_TIME, _STRINGS = pa.timestamp("ms", tz="UTC"), pa.list_(pa.string())


def _filters() -> tuple[dict[str, Any], ...]:
    """One Lambda filter per partition key prefix, its sort keys listed (EventBridge pattern syntax)."""
    by_pk: dict[str, list[Any]] = {}
    for shape in EXPORTED_KINDS.values():
        by_pk.setdefault(shape.pk_prefix, []).append(
            shape.sk if shape.sk is not None else {"prefix": shape.sk_prefix}
        )
    return tuple(
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": pk}]}, "sk": {"S": sks}}}} for pk, sks in by_pk.items()
    )


# The lake export's event source mapping filters: every change (insert, modify, remove) of these items.
LAKE_EXPORT_FILTERS: tuple[dict[str, Any], ...] = _filters()


class MalformedRecordError(ValueError):
    """A stream record (or a scanned item) that cannot become a row: skipped and counted."""


class RawWriter(Protocol):
    """Where the rows go (:class:`closedloop.analytics.raw_lake.RawLake`)."""

    def put_table(self, key: str, table: pa.Table) -> int: ...


@dataclass(frozen=True, slots=True)
class RawChange:
    """One change of one exported item, as the row of its raw dataset."""

    dataset: str
    sequence: str  # padded to SEQUENCE_WIDTH
    changed_at: int  # ms
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one batch (or the snapshot) wrote: rows per dataset, the objects, what it skipped."""

    rows: dict[str, int] = field(default_factory=dict)
    objects: tuple[str, ...] = ()
    skipped: int = 0  # malformed records, counted and left out
    ignored: int = 0  # records of items the lake does not keep (the filters normally drop them)

    @property
    def changes(self) -> int:
        return sum(self.rows.values())


# -- one record -> one row ---------------------------------------------------------------------------------


def _cell(column: Column, value: Any) -> Any:
    """``value`` as the column's type; a value of another type makes the record malformed."""
    if value is None:
        return None
    kind = column.arrow
    if kind == _STRING:
        if isinstance(value, str):
            return value
    elif kind in (_INT, _TIME) and isinstance(value, int | Decimal) and not isinstance(value, bool):
        if value == int(value):
            whole = int(value)
            low, high = (0, EPOCH_MS_MAX) if kind == _TIME else _INT64
            if low <= whole <= high:
                return whole
    elif kind == _FLOAT and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
    elif kind == _STRINGS and isinstance(value, list | tuple | set | frozenset):
        values = sorted(value) if isinstance(value, set | frozenset) else list(value)
        if all(isinstance(v, str) for v in values):
            return values
    raise MalformedRecordError(f"column {column.name} cannot hold a {type(value).__name__}")


def _item_values(kind: ItemKind, image: Mapping[str, Any]) -> dict[str, Any]:
    """An item's attributes under its dataset's column names (lead sources flattened, deal time renamed)."""
    values = dict(image)
    if kind is ItemKind.LEAD:
        for prefix in _LEAD_SOURCES:
            source = values.pop(f"{prefix}source", None)
            if source is not None and not isinstance(source, Mapping):
                raise MalformedRecordError(f"{prefix}source is not a map")
            for name in _LEAD_SOURCE_FIELDS:
                values[f"{prefix}{name}"] = (source or {}).get(name)
    if kind is ItemKind.DEAL:
        # The state's own write time; the row's changed_at is the stream's.
        values["changed_at_server"] = values.pop("changed_at", None)
    return values


def _row(
    kind: ItemKind,
    values: Mapping[str, Any],
    *,
    change: str,
    sequence: str,
    changed_at: int,
    expired: bool,
) -> dict[str, Any]:
    dataset = KIND_DATASETS[kind]
    # The change columns last: an item attribute of the same name (a deal's changed_at) never wins.
    merged = {**values, "change": change, "sequence": sequence, "changed_at": changed_at, "expired": expired}
    row = {column.name: _cell(column, merged.get(column.name)) for column in dataset.columns}
    missing = [name for name in RAW_KEYS[dataset.name] if row[name] is None]
    if missing:
        raise MalformedRecordError(f"{dataset.name} row without its key {missing}")
    return row


def _keys_of(item: Mapping[str, Any]) -> tuple[str, str]:
    pk, sk = item.get("pk"), item.get("sk")
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise MalformedRecordError("the item has no string pk and sk")
    return pk, sk


def _sequence(value: object) -> str:
    if not isinstance(value, str) or not value.isdigit() or len(value) > SEQUENCE_WIDTH:
        raise MalformedRecordError("the record has no sequence number")
    return value.zfill(SEQUENCE_WIDTH)


def _creation_ms(value: object) -> int:
    """Lambda sends epoch seconds (a number); the Streams API (boto3) a datetime."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        ms = round(float(value) * 1000)
        if 0 <= ms <= EPOCH_MS_MAX:
            return ms
    raise MalformedRecordError("the record has no ApproximateCreationDateTime")


def _by_ttl(identity: object) -> bool:
    """DynamoDB's own removal of an expired item (documented userIdentity of a TTL delete)."""
    return (
        isinstance(identity, Mapping)
        and identity.get("type") == "Service"
        and identity.get("principalId") == "dynamodb.amazonaws.com"
    )


def raw_change(record: Mapping[str, Any]) -> RawChange | None:
    """One stream record (Lambda's shape) as its raw row, or ``None`` for an item the lake does not keep.

    An insert or modify row holds the new image's values; a remove row holds the item's key columns
    only (from its keys), with ``expired`` set when TTL removed it.

    Raises
    ------
    MalformedRecordError
        The record cannot be read: the caller skips and counts it.
    """
    try:
        stream = record["dynamodb"]
        pk, sk = _keys_of(decode_item(stream["Keys"]))
        kind = item_kind(pk, sk)
        if kind is None:
            return None
        change = _CHANGES[record["eventName"]]
        sequence = _sequence(stream.get("SequenceNumber"))
        changed_at = _creation_ms(stream.get("ApproximateCreationDateTime"))
        keys = key_attributes(kind, pk, sk)
        if change == "remove":
            values: dict[str, Any] = keys
        else:
            values = {**keys, **_item_values(kind, decode_item(stream["NewImage"]))}
        row = _row(
            kind,
            values,
            change=change,
            sequence=sequence,
            changed_at=changed_at,
            expired=change == "remove" and _by_ttl(record.get("userIdentity")),
        )
    except MalformedRecordError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise MalformedRecordError(type(exc).__name__) from exc
    return RawChange(KIND_DATASETS[kind].name, sequence, changed_at, row)


def snapshot_row(item: Mapping[str, Any], *, snapshot_at: int) -> tuple[str, dict[str, Any]] | None:
    """A scanned item (decoded) as an ``insert`` row of the snapshot, or ``None`` if the lake skips it.

    Raises
    ------
    MalformedRecordError
        The item cannot become a row (counted and skipped by :func:`export_table_snapshot`).
    """
    try:
        pk, sk = _keys_of(item)
        kind = item_kind(pk, sk)
        if kind is None:
            return None
        values = {**key_attributes(kind, pk, sk), **_item_values(kind, item)}
        row = _row(
            kind, values, change="insert", sequence=SNAPSHOT_SEQUENCE, changed_at=snapshot_at, expired=False
        )
    except MalformedRecordError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise MalformedRecordError(type(exc).__name__) from exc
    return KIND_DATASETS[kind].name, row


# -- a batch -> objects ------------------------------------------------------------------------------------


def raw_object_key(dataset: str, day: str, name: str) -> str:
    """``raw/<dataset>/dt=<day>/<name>.parquet``."""
    return f"{RAW_PREFIX}{dataset}/dt={day}/{name}.parquet"


def _batch_source(records: Sequence[Mapping[str, Any]]) -> str:
    """A name for a batch whose shard is unknown: a digest of its records' event ids (stable on retry)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(str(record.get("eventID", "")).encode())
        digest.update(b"\n")
    return f"h{digest.hexdigest()[:16]}"


def _write(
    lake: RawWriter, rows: Mapping[str, list[dict[str, Any]]], key_of: Mapping[str, str]
) -> tuple[str, ...]:
    written = []
    for dataset in RAW_DATASETS:
        dataset_rows = rows.get(dataset.name)
        if not dataset_rows:
            continue
        table = pa.Table.from_pylist(dataset_rows, schema=dataset.schema)
        lake.put_table(key_of[dataset.name], table)
        written.append(key_of[dataset.name])
    return tuple(written)


def export_stream_batch(
    records: Sequence[Mapping[str, Any]], *, lake: RawWriter, shard_id: str | None = None
) -> ExportResult:
    """Write one batch of stream records as raw change rows: one Parquet object per dataset with rows.

    Parameters
    ----------
    records
        The batch, in shard order, in Lambda's shape (``event["Records"]``).
    lake
        Where the objects go.
    shard_id
        The stream shard the batch came from, if known; else the batch's digest names its objects.

    Returns
    -------
    ExportResult
        Rows per dataset, the keys written, and the records skipped as malformed.

    Raises
    ------
    LakeUnavailableError
        A PUT failed: retry the whole batch (the same keys get the same bytes).
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    changes: list[RawChange] = []
    skipped = ignored = 0
    for record in records:
        try:
            change = raw_change(record)
        except MalformedRecordError as exc:
            # The reason names a column or an exception type, never a value; the record is not logged.
            skipped += 1
            logger.warning("stream record skipped: malformed", reason=str(exc)[:200])
            continue
        if change is None:
            ignored += 1
            continue
        changes.append(change)
        rows.setdefault(change.dataset, []).append(change.row)
    if not changes:
        return ExportResult(skipped=skipped, ignored=ignored)
    day = day_of(changes[0].changed_at)
    name = f"{shard_id or _batch_source(records)}-{changes[0].sequence}-{changes[-1].sequence}"
    key_of = {dataset.name: raw_object_key(dataset.name, day, name) for dataset in RAW_DATASETS}
    objects = _write(lake, rows, key_of)
    return ExportResult(
        rows={name: len(r) for name, r in rows.items()}, objects=objects, skipped=skipped, ignored=ignored
    )


def export_table_snapshot(
    store: DynamoStore,
    *,
    lake: RawWriter,
    snapshot_at: int,
    rows_per_object: int = 200_000,
    page_size: int | None = None,
) -> ExportResult:
    """Seed the raw datasets from the whole table, once: every exported item as an ``insert`` row.

    For a deployment whose table existed before the stream consumer. Deploy the consumer first, then
    run this: a change made during or after the scan also reaches the lake through the stream, and its
    row (a real sequence number) wins over the snapshot's (sequence ``"0" * 40``).

    Parameters
    ----------
    store
        The table.
    lake
        Where the objects go.
    snapshot_at
        When the snapshot is taken, ms: every row's ``changed_at``, and its ``dt`` and object names
        (``raw/<dataset>/dt=<day>/snapshot-<snapshot_at>-<part>.parquet``), so a rerun with the same
        value rewrites the same objects.
    rows_per_object
        Rows buffered per dataset before an object is written (memory stays bounded).
    page_size
        Items per Scan request.

    Returns
    -------
    ExportResult
        Rows per dataset, the objects written, and the items skipped as malformed.

    Raises
    ------
    StoreUnavailableError
        The Scan failed; run it again (with the same ``snapshot_at``).
    LakeUnavailableError
        A PUT failed; run it again (with the same ``snapshot_at``).
    """
    day = day_of(snapshot_at)
    buffers: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, int] = {}
    counts: dict[str, int] = {}
    objects: list[str] = []
    skipped = ignored = 0

    def flush(dataset: str) -> None:
        part = parts.get(dataset, 0)
        key = raw_object_key(dataset, day, f"snapshot-{snapshot_at:013d}-{part:05d}")
        objects.extend(_write(lake, {dataset: buffers.pop(dataset)}, {dataset: key}))
        parts[dataset] = part + 1

    items: Iterable[dict[str, Any]] = scan_items(store, page_size=page_size)
    for item in items:
        try:
            found = snapshot_row(item, snapshot_at=snapshot_at)
        except MalformedRecordError:
            skipped += 1
            continue
        if found is None:
            ignored += 1
            continue
        dataset, row = found
        buffers.setdefault(dataset, []).append(row)
        counts[dataset] = counts.get(dataset, 0) + 1
        if len(buffers[dataset]) >= rows_per_object:
            flush(dataset)
    for dataset in list(buffers):
        flush(dataset)
    if skipped:
        logger.warning("table snapshot: items skipped as malformed", skipped=skipped)
    return ExportResult(rows=counts, objects=tuple(objects), skipped=skipped, ignored=ignored)
