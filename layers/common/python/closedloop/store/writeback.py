"""The write-back side of the store: what was last written to each CRM record of a lead.

Mixed into :class:`closedloop.store.dynamodb.DynamoStore`. One item per lead and CRM record, in the
lead's partition (erasing the lead erases them):

- ``L#<lead_id>`` / ``SYNC#<crm>#contact``: the lead's contact (person, Lead) in that CRM;
- ``L#<lead_id>`` / ``SYNC#<crm>#deal#<deal_id>``: a deal whose first contact is the lead.

Each holds the digest of the values last written (:func:`closedloop.writeback.fields.fields_hash`),
the CRM's record id when it has one, and when. The worker compares before calling the CRM: the same
values are never written twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from closedloop.errors import StoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["SyncState", "WritebackStoreMixin", "sync_key"]


class SyncState(BaseModel):
    """What was last written to one CRM record of a lead."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    target: Annotated[str, Field(description="`<crm>#contact` or `<crm>#deal#<deal_id>`.")]
    digest: Annotated[str, Field(description="fields_hash of the values written.")]
    record_id: Annotated[str | None, Field(description="The CRM's id of the record, when known.")] = None
    synced_at: Annotated[int, Field(ge=0, description="When it was written, ms.")]


def sync_key(crm: str, deal_id: str | None = None) -> str:
    """The ``target`` of a lead's contact in ``crm``, or of one of its deals."""
    return f"{crm}#contact" if deal_id is None else f"{crm}#deal#{deal_id}"


class WritebackStoreMixin:
    """The sync-state methods of :class:`~closedloop.store.dynamodb.DynamoStore`."""

    if TYPE_CHECKING:
        table_name: str

        @property
        def client(self) -> DynamoDBClient: ...

        def _item(self, attributes: dict[str, Any]) -> dict[str, Any]: ...

        def _get(self, pk: str, sk: str) -> dict[str, Any] | None: ...

    def get_sync_state(self, lead_id: str, target: str) -> SyncState | None:
        """What was last written to ``target`` (:func:`sync_key`) for the lead, or ``None``.

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed.
        """
        item = self._get(f"L#{lead_id}", f"SYNC#{target}")
        if item is None:
            return None
        return SyncState.model_validate({k: v for k, v in item.items() if k in SyncState.model_fields})

    def put_sync_state(self, state: SyncState) -> None:
        """Remember what was written (an unconditional put: the latest write wins).

        Raises
        ------
        StoreUnavailableError
            DynamoDB failed; the CRM call already succeeded, so the next change writes it again.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        item = {"pk": f"L#{state.lead_id}", "sk": f"SYNC#{state.target}", **state.model_dump()}
        try:
            self.client.put_item(TableName=self.table_name, Item=self._item(item))
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError("DynamoDB write failed") from exc
