"""The deal side of the store: CRM deal states, their event history, and the leads of their contacts.

The models it returns (:class:`~closedloop.deals.StoredDeal`, :class:`~closedloop.deals.DealLink`,
:class:`~closedloop.crm.models.DealEvent`) are imported when first used: every function imports the
store, and the collect function's cold start must not pay for the CRM package (~50 ms).

Mixed into :class:`closedloop.store.dynamodb.DynamoStore`; keys in :mod:`closedloop.store.schema`:

- ``D#<crm>#<deal_id>`` / ``STATE``: the deal's :class:`StoredDeal`, indexed by the day it last changed
  (``DC#<yyyy-mm-dd>`` / ``<iso>#<crm>#<deal_id>``) for the attribution job;
- ``D#<crm>#<deal_id>`` / ``EV#<event_id>``: every event ever received, once (the CRM's event id);
- ``L#<lead_id>`` / ``DEAL#<crm>#<deal_id>``: the lead of one of the deal's contacts;
- ``L#<lead_id>`` / ``PROFILE``: the offline lead of a contact who never filled a form, written in the
  same transaction as the event that names them (never on its own).

Amounts are DynamoDB numbers read back as exact ``Decimal`` s (never through a float).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from closedloop.clock import iso_ms
from closedloop.errors import StoreUnavailableError
from closedloop.models.leads import Lead
from closedloop.store.schema import BY_DAY_INDEX

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer
    from mypy_boto3_dynamodb import DynamoDBClient

    from closedloop.crm.models import CrmName, DealEvent
    from closedloop.deals import DealLink, StoredDeal
    from closedloop.store.dynamodb import WriteOutcome

__all__ = ["DealStoreMixin", "DealWrite"]

# DynamoDB's limit of items in one transaction (TransactWriteItems).
_TRANSACTION_LIMIT = 100
_KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})


def _deal_pk(crm: CrmName | str, deal_id: str) -> str:
    # CrmName is a StrEnum: its value is the string itself.
    return f"D#{str(crm).lower()}#{deal_id}"


def _attributes(model: BaseModel, amount: object = None) -> dict[str, Any]:
    """Model fields as DynamoDB values: JSON types, with the amount kept an exact Decimal."""
    data = model.model_dump(mode="json")
    if "amount" in data:
        data["amount"] = amount
    return data


def _fields_of(model: type[BaseModel], item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in model.model_fields}


@dataclass(frozen=True, slots=True)
class DealWrite:
    """What :meth:`DealStoreMixin.record_deal_event` did, and how many offline leads it created."""

    outcome: WriteOutcome
    leads_created: int = 0


class DealStoreMixin:
    """The deal methods of :class:`~closedloop.store.dynamodb.DynamoStore` (which provides the client,
    the table name and the (de)serialisers)."""

    if TYPE_CHECKING:
        table_name: str

        @property
        def client(self) -> DynamoDBClient: ...

        @property
        def _deserializer(self) -> TypeDeserializer: ...

        def _item(self, attributes: dict[str, Any]) -> dict[str, Any]: ...

        def _transact(self, operations: list[dict[str, Any]]) -> list[str]: ...

    # -- reading, exactly (numbers stay Decimal; pydantic makes the ints ints) ----------------------

    def _exact(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._deserializer.deserialize(v) for k, v in item.items()}

    def _exact_query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(TableName=self.table_name, **kwargs):
                for item in page.get("Items", []):
                    yield self._exact(item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB query failed") from exc

    def get_deal(self, crm: CrmName | str, deal_id: str) -> StoredDeal | None:
        """Return the deal's stored state (a consistent read), or ``None`` when none was stored yet.

        Parameters
        ----------
        crm
            The CRM the deal lives in.
        deal_id
            The CRM's id of the deal.

        Returns
        -------
        StoredDeal or None
            The state with its lead ids and revision.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from closedloop.deals import StoredDeal

        try:
            reply = self.client.get_item(
                TableName=self.table_name,
                Key=self._item({"pk": _deal_pk(crm, deal_id), "sk": "STATE"}),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB read failed") from exc
        if "Item" not in reply:
            return None
        return StoredDeal.model_validate(_fields_of(StoredDeal, self._exact(reply["Item"])))

    def deal_events(self, crm: CrmName | str, deal_id: str) -> list[DealEvent]:
        """Return every event received for the deal, once each, in version order (the CRM's order).

        Events that arrived late (older than the state) are in the history too, though they never
        moved the state. Ties are broken by the time of the change, then the event id.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        from closedloop.crm.models import DealEvent

        items = self._exact_query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": _deal_pk(crm, deal_id)}, ":prefix": {"S": "EV#"}},
            ConsistentRead=True,
        )
        events = [DealEvent.model_validate(_fields_of(DealEvent, item)) for item in items]
        return sorted(events, key=lambda e: (e.version, e.occurred_at, e.event_id))

    def deals_of_lead(self, lead_id: str) -> list[DealLink]:
        """Return the deals the lead is a contact of, one link per deal (read each with :meth:`get_deal`).

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        from closedloop.deals import DealLink

        items = self._exact_query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"L#{lead_id}"}, ":prefix": {"S": "DEAL#"}},
            ConsistentRead=True,
        )
        return [DealLink.model_validate(_fields_of(DealLink, item)) for item in items]

    def deals_changed_on(self, day: str) -> Iterator[StoredDeal]:
        """Yield every deal whose state was last written on UTC day ``yyyy-mm-dd`` (server time), in
        time order: one Query on the by-day index (eventually consistent, like every GSI read).

        A deal changed again on a later day moves to that day: the attribution job reads the days
        since its last run.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        from closedloop.deals import StoredDeal

        items = self._exact_query(
            IndexName=BY_DAY_INDEX,
            KeyConditionExpression="gsi1pk = :day",
            ExpressionAttributeValues={":day": {"S": f"DC#{day}"}},
        )
        for item in items:
            yield StoredDeal.model_validate(_fields_of(StoredDeal, item))

    # -- writing ---------------------------------------------------------------------------------------

    def _lead_item(self, lead: Lead) -> dict[str, Any]:
        at = iso_ms(lead.updated_at)
        return {
            "pk": f"L#{lead.lead_id}",
            "sk": "PROFILE",
            "gsi1pk": f"LD#{at[:10]}",
            "gsi1sk": f"{at}#{lead.lead_id}",
            **lead.model_dump(),
        }

    def _link_item(self, lead_id: str, crm: CrmName, deal_id: str, linked_at: int) -> dict[str, Any]:
        from closedloop.deals import DealLink

        link = DealLink(lead_id=lead_id, crm=crm, deal_id=deal_id, linked_at=linked_at)
        return {"pk": f"L#{lead_id}", "sk": f"DEAL#{crm.value}#{deal_id}", **_attributes(link)}

    def record_deal_event(
        self,
        event: DealEvent,
        *,
        state: StoredDeal | None,
        previous: StoredDeal | None,
        received_at: int,
        leads: Sequence[Lead] = (),
        late_contacts: Sequence[str] = (),
    ) -> DealWrite:
        """Store one deal event, the deal's new state, its new lead links and offline leads, all or
        nothing (one transaction).

        Parameters
        ----------
        event
            The event; stored in the history under its id, unless that id is there already.
        state
            The deal's new state (its ``changed_at`` indexes it by day), or ``None`` when the event
            does not move the state (an older event): then only the history gets it.
        previous
            The state ``state`` was computed from, as :meth:`get_deal` returned it (``None``: none).
            The write succeeds only if the stored state is still at that revision.
        received_at
            Server time the delivery arrived, ms (kept with the event).
        leads
            Profiles for the contacts new to the deal; each is created only if the lead has none (a
            contact who filled a form keeps theirs). Their ``version`` is stored as is.
        late_contacts
            For an event that does not move the state: the lead ids of its contacts that are not on
            the state. Each is linked to the deal (``L#<lead>`` / ``DEAL#...``, no profile), so an
            erasure of that person finds the deal and the event that names them.

        Returns
        -------
        DealWrite
            ``STORED`` (with the number of leads created); ``DUPLICATE`` when this event id is stored
            already (a CRM retry: nothing changed); ``CONFLICT`` when the state changed since it was
            read, or a lead was being written at the same time (read again and retry).

        Raises
        ------
        StoreUnavailableError
            DynamoDB refused or failed the write; nothing of it was stored, so retrying is safe.
        ValueError
            More items than one transaction holds (callers bound the contacts per event).
        """
        from closedloop.store.dynamodb import WriteOutcome

        pk = _deal_pk(event.crm, event.deal_id)
        history = {"pk": pk, "sk": f"EV#{event.event_id}", "received_at": received_at}
        history.update(_attributes(event, event.amount))
        operations: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": self._item(history),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if state is not None:
            revision = previous.revision if previous is not None else 0
            new_state = state.model_copy(update={"revision": revision + 1})
            changed = iso_ms(new_state.changed_at)
            item = {
                "pk": pk,
                "sk": "STATE",
                "gsi1pk": f"DC#{changed[:10]}",
                "gsi1sk": f"{changed}#{new_state.crm.value}#{new_state.deal_id}",
                **_attributes(new_state, new_state.amount),
            }
            operations.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(item),
                        **(
                            {"ConditionExpression": "attribute_not_exists(pk)"}
                            if previous is None
                            else {
                                "ConditionExpression": "revision = :r",
                                "ExpressionAttributeValues": {":r": {"N": str(previous.revision)}},
                            }
                        ),
                    }
                }
            )
            known = set(previous.lead_ids) if previous is not None else set()
            operations += [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(
                            self._link_item(lead_id, new_state.crm, new_state.deal_id, new_state.changed_at)
                        ),
                    }
                }
                for lead_id in new_state.lead_ids
                if lead_id not in known
            ]
        else:
            operations += [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(self._link_item(lead_id, event.crm, event.deal_id, received_at)),
                    }
                }
                for lead_id in dict.fromkeys(late_contacts)
            ]
        # Leads go last: a cancellation's reasons, item by item, then say which of them exist.
        first_lead = len(operations)
        pending = list(leads)
        while True:
            transaction = operations + [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(self._lead_item(lead)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for lead in pending
            ]
            if len(transaction) > _TRANSACTION_LIMIT:
                raise ValueError(f"a deal event's transaction has {len(transaction)} items, over 100")
            reasons = self._transact(transaction)
            if not reasons:
                return DealWrite(WriteOutcome.STORED, leads_created=len(pending))
            if reasons[0] == "ConditionalCheckFailed":
                return DealWrite(WriteOutcome.DUPLICATE)
            deal_reasons, lead_reasons = reasons[:first_lead], reasons[first_lead:]
            existing = {i for i, reason in enumerate(lead_reasons) if reason == "ConditionalCheckFailed"}
            if (
                not existing
                or any(r != "None" for r in deal_reasons)
                or any(r not in ("None", "ConditionalCheckFailed") for r in lead_reasons)
            ):
                return DealWrite(WriteOutcome.CONFLICT)
            # Only leads that have a profile already (a form, another deal) stopped it: write without
            # them. Each round drops at least one, so this ends.
            pending = [lead for i, lead in enumerate(pending) if i not in existing]
