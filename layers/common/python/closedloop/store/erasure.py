"""The erasure side of the store: read whole partitions, delete items, and forget a contact on a deal.

Mixed into :class:`closedloop.store.dynamodb.DynamoStore`; used by :mod:`closedloop.erasure` only.
Items are handled in DynamoDB's wire format (``{"S": ...}``, ``{"N": ...}``): an erasure rewrites a
deal's contacts without reading its amount through a float or dropping a field it does not know.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from closedloop.clock import iso_ms
from closedloop.errors import StoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["ErasureStoreMixin", "Key"]

Key = tuple[str, str]  # (pk, sk)
_BATCH = 25  # DynamoDB's limit of requests in one BatchWriteItem
_BATCH_ATTEMPTS = 8
_MAX_CONFLICTS = 5


def _strings(value: dict[str, Any] | None) -> list[str]:
    """The strings of a wire-format list (``L`` of ``S``) or string set (``SS``)."""
    if not value:
        return []
    if "L" in value:
        return [str(item.get("S")) for item in value["L"] if "S" in item]
    return [str(item) for item in value.get("SS", [])]


class ErasureStoreMixin:
    """The erasure methods of :class:`~closedloop.store.dynamodb.DynamoStore` (which provides the
    client and the table name)."""

    if TYPE_CHECKING:
        table_name: str

        @property
        def client(self) -> DynamoDBClient: ...

        def _write_if(self, operation: str, **request: Any) -> bool: ...

    def partition_items(self, pk: str) -> list[dict[str, Any]]:
        """Every item of one partition, in wire format (a consistent, paginated Query).

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        return list(self._wire_query(pk))

    def _wire_query(self, pk: str, prefix: str | None = None) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
        values: dict[str, Any] = {":pk": {"S": pk}}
        if prefix:
            values[":prefix"] = {"S": prefix}
        try:
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            ):
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB query failed") from exc

    def delete_items(self, keys: Iterable[Key]) -> int:
        """Delete items by key, 25 per request, retrying what DynamoDB leaves unprocessed.

        Deleting an item that is gone already changes nothing, so a failed erasure can simply be run
        again.

        Returns
        -------
        int
            How many keys were sent.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed, or kept items unprocessed after the retries.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            requests: list[Any] = [
                {"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}}
                for pk, sk in unique[start : start + _BATCH]
            ]
            for attempt in range(_BATCH_ATTEMPTS):
                try:
                    reply = self.client.batch_write_item(RequestItems={self.table_name: requests})
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailableError("DynamoDB delete failed") from exc
                requests = list(reply.get("UnprocessedItems", {}).get(self.table_name, []))
                if not requests:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreUnavailableError("DynamoDB left deletes unprocessed")
        return len(unique)

    def forget_deal_contact(
        self,
        pk: str,
        *,
        lead_id: str,
        is_contact: Callable[[str], bool],
        changed_at: int,
        crm: str,
        deal_id: str,
    ) -> bool:
        """Remove a lead and its e-mails from a deal's state and from every event of its history.

        ``is_contact`` says which stored addresses are the person's (every spelling of theirs: the
        domain logic decides, the store only applies it).

        The state is written only over the revision it was read at (the webhook's optimistic lock),
        with its revision moved on and indexed as changed at ``changed_at``, so the next attribute run
        credits the deal again without this contact.

        Returns
        -------
        bool
            Whether anything of the deal named the contact.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed, or the deal kept changing under concurrent deliveries.
        """

        changed = False
        for event in self._wire_query(pk, "EV#"):
            contacts = _strings(event.get("contact_emails"))
            if any(map(is_contact, contacts)):
                kept = [{"S": e} for e in contacts if not is_contact(e)]
                self._set_attributes(event, {"contact_emails": {"L": kept}})
                changed = True
        at = iso_ms(changed_at)
        for _attempt in range(_MAX_CONFLICTS):
            state = next(
                iter(item for item in self._wire_query(pk, "STATE") if item["sk"]["S"] == "STATE"), None
            )
            if state is None:
                return changed
            contacts, leads = _strings(state.get("contact_emails")), _strings(state.get("lead_ids"))
            if not any(map(is_contact, contacts)) and lead_id not in leads:
                return changed
            revision = int(state.get("revision", {}).get("N", "0"))
            item = {
                **state,
                "contact_emails": {"L": [{"S": e} for e in contacts if not is_contact(e)]},
                "lead_ids": {"L": [{"S": lead} for lead in leads if lead != lead_id]},
                "revision": {"N": str(revision + 1)},
                "changed_at": {"N": str(changed_at)},
                "gsi1pk": {"S": f"DC#{at[:10]}"},
                "gsi1sk": {"S": f"{at}#{crm}#{deal_id}"},
            }
            if self._write_if(
                "put_item",
                Item=item,
                ConditionExpression="revision = :r",
                ExpressionAttributeValues={":r": {"N": str(revision)}},
            ):
                return True
        raise StoreUnavailableError("the deal kept changing during the erasure")

    def _set_attributes(self, item: dict[str, Any], values: dict[str, Any]) -> None:
        """Set attributes of an item that still exists (one gone meanwhile is left gone)."""
        names = {f"#a{i}": name for i, name in enumerate(values)}
        self._write_if(
            "update_item",
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": value for i, value in enumerate(values.values())},
            ConditionExpression="attribute_exists(pk)",
        )
