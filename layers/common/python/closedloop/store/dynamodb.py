"""``DynamoStore``: every read and write of the Closedloop table (key layout in ``store.schema``)."""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from closedloop import aws
from closedloop.clock import iso_ms
from closedloop.errors import StoreUnavailableError
from closedloop.models.leads import Lead, Submission, VisitorLink
from closedloop.models.visits import PageView, Touch, VisitorState
from closedloop.store.deals import DealStoreMixin
from closedloop.store.erasure import ErasureStoreMixin
from closedloop.store.schema import BY_DAY_INDEX
from closedloop.store.writeback import WritebackStoreMixin

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from mypy_boto3_dynamodb import DynamoDBClient

    from closedloop.identity import LinkChange

__all__ = ["DynamoStore", "WriteOutcome"]


class WriteOutcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # the event was stored before: a retry, nothing changed
    CONFLICT = "conflict"  # another request moved the visitor's state first: re-read and try again


def _to_dynamo(value: Any) -> Any:
    """Floats become Decimals, as DynamoDB's number type requires."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


class DynamoStore(DealStoreMixin, WritebackStoreMixin, ErasureStoreMixin):
    """The Closedloop table. Pass ``client`` (moto's, a stub) in tests; otherwise one is made on first use.

    boto3 is imported lazily: the collect function's cold start must stay small, and a request that is
    rejected as bad input never needs it.
    """

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @functools.cached_property
    def _serializer(self) -> TypeSerializer:
        from boto3.dynamodb.types import TypeSerializer

        return TypeSerializer()

    @functools.cached_property
    def _deserializer(self) -> TypeDeserializer:
        from boto3.dynamodb.types import TypeDeserializer

        return TypeDeserializer()

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    # -- (de)serialisation -------------------------------------------------------------------------

    def _item(self, attributes: dict[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in attributes.items() if v is not None}
        return {k: self._serializer.serialize(_to_dynamo(v)) for k, v in clean.items()}

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _from_dynamo(self._deserializer.deserialize(v)) for k, v in item.items()}

    def _query(self, *, max_items: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query matches, page after page; with ``max_items``, at most that many in one call."""
        from botocore.exceptions import BotoCoreError, ClientError

        if max_items is not None:
            kwargs["PaginationConfig"] = {"MaxItems": max_items, "PageSize": max_items}
        try:
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(TableName=self.table_name, **kwargs):
                for item in page.get("Items", []):
                    yield self._plain(item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB query failed") from exc

    def _query_prefix(
        self, pk: str, prefix: str, *, max_items: int | None = None, newest_first: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The items of one partition whose sort key starts with ``prefix`` (a consistent read).

        ``max_items`` bounds the work: at most that many items, in one request. ``newest_first``
        reads the sort key backwards (the last items first).
        """
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
            ScanIndexForward=not newest_first,
            max_items=max_items,
        )

    def _transact(self, operations: list[dict[str, Any]]) -> list[str]:
        """Run one transaction: ``[]`` when it committed, else each item's cancellation reason.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed for another reason than a condition (throttling after retries, an outage).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.transact_write_items(TransactItems=operations)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise StoreUnavailableError("DynamoDB write failed") from exc
            reasons = [str(r.get("Code")) for r in exc.response.get("CancellationReasons", [])]
            if not any(reason in {"ConditionalCheckFailed", "TransactionConflict"} for reason in reasons):
                raise StoreUnavailableError("DynamoDB transaction cancelled") from exc
            return reasons
        except BotoCoreError as exc:
            raise StoreUnavailableError("DynamoDB unreachable") from exc
        return []

    def _write_if(self, operation: str, **request: Any) -> bool:
        """One conditional ``put_item`` or ``update_item``: False when its condition does not hold.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed for another reason than the condition.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            getattr(self.client, operation)(TableName=self.table_name, **request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailableError("DynamoDB write failed") from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError("DynamoDB unreachable") from exc
        return True

    # -- visitors, events, touches -----------------------------------------------------------------

    def get_visitor_state(self, visitor_id: str) -> VisitorState | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_item(
                TableName=self.table_name,
                Key=self._item({"pk": f"V#{visitor_id}", "sk": "STATE"}),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB read failed") from exc
        if "Item" not in reply:
            return None
        return VisitorState.model_validate(self._plain(reply["Item"]))

    def record_event(
        self,
        event: PageView,
        state: VisitorState,
        *,
        previous_version: int | None,
        touch: Touch | None,
        supersedes: tuple[str, int] | None = None,
    ) -> WriteOutcome:
        """Store one event, the visitor's new state and the touch it started, all or nothing.

        The event's key is its id, so a retried request finds it stored and changes nothing
        (``DUPLICATE``). The state is written only over the version it was computed from
        (``CONFLICT`` otherwise), so two concurrent requests of one visitor cannot lose a session.
        ``supersedes`` (touch id, time) is a direct touch that ``touch`` replaces as its session's
        start (a late landing page): it is overwritten by a marker that no reader counts as a touch.
        A Put, not a Delete: collect is granted ``PutItem`` only, and no function ``DeleteItem``.
        """
        pk = f"V#{event.visitor_id}"
        new_state = state.model_copy(update={"version": (previous_version or 0) + 1})
        operations: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._item({"pk": pk, "sk": f"E#{event.event_id}", **event.model_dump()}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table_name,
                    # The running session expires with the visitor's last event (a returning visitor
                    # simply starts afresh).
                    "Item": self._item(
                        {"pk": pk, "sk": "STATE", **new_state.model_dump(), "expires_at": event.expires_at}
                    ),
                    **(
                        {"ConditionExpression": "attribute_not_exists(pk)"}
                        if previous_version is None
                        else {
                            "ConditionExpression": "version = :v",
                            "ExpressionAttributeValues": {":v": {"N": str(previous_version)}},
                        }
                    ),
                }
            },
        ]
        received_day = iso_ms(event.received_at)[:10]
        touch_days: set[str] = set()
        if touch is not None:
            at = iso_ms(touch.occurred_at)
            touch_days.add(at[:10])
            operations.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(
                            {
                                "pk": pk,
                                "sk": f"T#{at}#{touch.touch_id}",
                                "gsi1pk": f"TD#{at[:10]}",
                                "gsi1sk": f"{at}#{touch.visitor_id}",
                                **touch.model_dump(),
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        if touch is not None and supersedes is not None:
            superseded_id, superseded_at = supersedes
            old_at = iso_ms(superseded_at)
            touch_days.add(old_at[:10])
            operations.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        # Same key, no by-day index keys: the touch leaves its day and the visitor's
                        # journey; the time stays for erasure, which matches visit items by it.
                        "Item": self._item(
                            {
                                "pk": pk,
                                "sk": f"T#{old_at}#{superseded_id}",
                                "visitor_id": event.visitor_id,
                                "touch_id": superseded_id,
                                "occurred_at": superseded_at,
                                "superseded_by": touch.touch_id,
                                "expires_at": touch.expires_at,
                            }
                        ),
                    }
                }
            )
        # A touch written or retired on another day than it arrived (a late beacon): the attribute job's
        # run for the arrival day must also refresh that day.
        operations += [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._item({"pk": f"LATE#{received_day}", "sk": f"TD#{day}"}),
                }
            }
            for day in sorted(touch_days - {received_day})
        ]
        reasons = self._transact(operations)
        if not reasons:
            return WriteOutcome.STORED
        return WriteOutcome.DUPLICATE if reasons[0] == "ConditionalCheckFailed" else WriteOutcome.CONFLICT

    def events_of_visitor(self, visitor_id: str) -> list[PageView]:
        """The visitor's stored events, in time order."""
        items = self._query_prefix(f"V#{visitor_id}", "E#")
        events = [PageView.model_validate(item) for item in items]
        return sorted(events, key=lambda e: (e.occurred_at, e.event_id))

    def touches_of_visitor(self, visitor_id: str) -> list[Touch]:
        """The visitor's touches in time order: one Query, the sort key is the time.

        A touch superseded by a late landing page (``superseded_by``) is no longer one.
        """
        items = self._query_prefix(f"V#{visitor_id}", "T#")
        return [Touch.model_validate(item) for item in items if "superseded_by" not in item]

    def touches_on_day(self, day: str) -> Iterator[Touch]:
        """Every touch of one UTC day (``yyyy-mm-dd``) in time order: one Query on the by-day index."""
        items = self._query(
            IndexName=BY_DAY_INDEX,
            KeyConditionExpression="gsi1pk = :day",
            ExpressionAttributeValues={":day": {"S": f"TD#{day}"}},
        )
        for item in items:
            yield Touch.model_validate(item)

    # -- leads, visitor links, submissions ---------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_item(
                TableName=self.table_name, Key=self._item({"pk": pk, "sk": sk}), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB read failed") from exc
        return self._plain(reply["Item"]) if "Item" in reply else None

    def get_lead(self, lead_id: str) -> Lead | None:
        item = self._get(f"L#{lead_id}", "PROFILE")
        return Lead.model_validate(item) if item else None

    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]:
        """The visitor's leads over time, oldest first."""
        items = self._query_prefix(f"V#{visitor_id}", "LINK#")
        return [VisitorLink.model_validate(item) for item in items]

    def last_link_of_visitor(self, visitor_id: str) -> VisitorLink | None:
        """The visitor's latest link (the open one, if any): one item, one request, however many it has.

        Links of one visitor never overlap and are keyed by their start, so the last one is the only
        one a new submission can close, and where a new one starts.
        """
        items = self._query_prefix(f"V#{visitor_id}", "LINK#", max_items=1, newest_first=True)
        return next((VisitorLink.model_validate(item) for item in items), None)

    def links_of_lead(self, lead_id: str, *, limit: int | None = None) -> list[VisitorLink]:
        """The lead's visitors (devices), each with the interval of touches that are the lead's.

        ``limit``: at most that many links, in one request (identify reads one more than the lead may
        have, ``closedloop.identity.MAX_DEVICES_PER_LEAD``, to know the lead is full).
        """
        items = self._query_prefix(f"L#{lead_id}", "V#", max_items=limit)
        return [VisitorLink.model_validate(item) for item in items]

    def submissions_of_lead(self, lead_id: str) -> list[Submission]:
        items = self._query_prefix(f"L#{lead_id}", "S#")
        return sorted((Submission.model_validate(item) for item in items), key=lambda s: s.occurred_at)

    def get_submission(self, lead_id: str, submission_id: str) -> Submission | None:
        item = self._get(f"L#{lead_id}", f"S#{submission_id}")
        return Submission.model_validate(item) if item else None

    def _link_items(self, link: VisitorLink) -> list[dict[str, Any]]:
        start = f"{link.linked_from:013d}"
        attributes = link.model_dump()
        return [
            {"pk": f"L#{link.lead_id}", "sk": f"V#{link.visitor_id}#{start}", **attributes},
            {"pk": f"V#{link.visitor_id}", "sk": f"LINK#{start}", **attributes},
        ]

    def record_identification(
        self, lead: Lead, *, previous_version: int | None, submission: Submission, links: LinkChange
    ) -> WriteOutcome:
        """Store the lead's profile, the submission and the link changes, all or nothing.

        ``DUPLICATE``: this submission id is stored already. ``CONFLICT``: the lead or the visitor's
        links changed since they were read; read again and retry.
        """
        new_lead = lead.model_copy(update={"version": (previous_version or 0) + 1})
        lead_condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if previous_version is None
            else {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(previous_version)}},
            }
        )
        profile = {
            "pk": f"L#{lead.lead_id}",
            "sk": "PROFILE",
            "gsi1pk": f"LD#{iso_ms(lead.updated_at)[:10]}",
            "gsi1sk": f"{iso_ms(lead.updated_at)}#{lead.lead_id}",
            **new_lead.model_dump(),
        }
        operations: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table_name, "Item": self._item(profile), **lead_condition}},
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._item(
                        {
                            "pk": f"L#{lead.lead_id}",
                            "sk": f"S#{submission.submission_id}",
                            **submission.model_dump(),
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if links.new_link is not None:
            operations += [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(item),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for item in self._link_items(links.new_link)
            ]
        if links.closed_link is not None:
            operations += [
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._item({"pk": item["pk"], "sk": item["sk"]}),
                        "UpdateExpression": "SET linked_until = :until",
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(linked_until)",
                        "ExpressionAttributeValues": {":until": {"N": str(links.closed_link.linked_until)}},
                    }
                }
                for item in self._link_items(links.closed_link)
            ]
        reasons = self._transact(operations)
        if not reasons:
            return WriteOutcome.STORED
        return WriteOutcome.DUPLICATE if reasons[1] == "ConditionalCheckFailed" else WriteOutcome.CONFLICT

    def leads_updated_on(self, day: str) -> Iterator[Lead]:
        """Every lead whose profile last changed on UTC day ``yyyy-mm-dd``: one Query on the by-day index."""
        items = self._query(
            IndexName=BY_DAY_INDEX,
            KeyConditionExpression="gsi1pk = :day",
            ExpressionAttributeValues={":day": {"S": f"LD#{day}"}},
        )
        for item in items:
            yield Lead.model_validate(item)

    # -- the attribute job's watermark ---------------------------------------------------------------

    def late_touch_days(self, received_day: str) -> list[str]:
        """Days of the touches that arrived on ``received_day`` but are dated another day."""
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"LATE#{received_day}"}},
        )
        return sorted(str(item["sk"]).removeprefix("TD#") for item in items)

    def get_job_watermark(self, job: str) -> int | None:
        """When ``job`` last completed (ms), or ``None`` before its first run."""
        item = self._get(f"JOB#{job}", "WATERMARK")
        return int(item["completed_at"]) if item else None

    def set_job_watermark(self, job: str, completed_at: int) -> None:
        """Move the watermark forward only: a slow run finishing late never moves it back."""
        self._write_if(
            "put_item",
            Item=self._item({"pk": f"JOB#{job}", "sk": "WATERMARK", "completed_at": completed_at}),
            ConditionExpression="attribute_not_exists(pk) OR completed_at < :at",
            ExpressionAttributeValues={":at": {"N": str(completed_at)}},
        )
