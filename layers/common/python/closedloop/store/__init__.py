"""Data access: the only module that talks to DynamoDB. It returns pydantic models, not raw items."""

from closedloop.store.dynamodb import DynamoStore, WriteOutcome

__all__ = ["DynamoStore", "WriteOutcome"]
