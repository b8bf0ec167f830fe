"""Faster ``TransactWriteItems`` and index queries for moto's in-memory DynamoDB (local stack only).

moto 5.2 backs up a table with ``copy.deepcopy`` once per item of every transaction, so each
transaction costs time in proportion to the whole table: the demo, which writes thousands of items
one transaction at a time, slowed down quadratically. This version keeps DynamoDB's semantics (every
condition is evaluated against the state before the transaction; all or nothing) and backs up only
the items the transaction touches. Unit and integration tests run stock moto.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["install"]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    planned: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        marker = (str(table_name), str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                errors.append(("ConditionalCheckFailed", "The conditional request failed", None))
                continue
        errors.append((None, None, None))
        planned.append((op_type, op, table_name, key))

    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    backups = [
        (table_name, key, copy.deepcopy(self.get_item(table_name, key))) for _, _, table_name, key in planned
    ]
    try:
        for op_type, op, table_name, key in planned:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, previous in backups:
            if previous is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, previous.to_json()["Attributes"])
        raise


def speed_up_moto_index_queries() -> None:
    """Make moto's global-secondary-index queries cost what they match, not the whole table.

    moto answers every index query by sorting *all* the table's items (comparing ``DynamoType``
    objects) and testing each one: the attribute job's per-day index queries then cost minutes at the
    demo's size. This keeps moto's answers (same items, same order) but sorts the table once per change
    and hands the query only the items whose index hash key matches. Writes go through ``Table.put_item``
    and ``Table.delete_item`` (restores replace ``Table.items``): either invalidates the cache.
    """
    import threading

    from moto.dynamodb.models.table import Table

    if getattr(Table, "_closedloop_index_speedup", False):
        return
    original_all_items, original_query = Table.all_items, Table.query
    original_put, original_delete = Table.put_item, Table.delete_item
    local = threading.local()

    def changed(table: Any) -> None:
        table.__dict__.pop("_closedloop_sorted", None)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        changed(self)
        return original_put(self, *args, **kwargs)

    def delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        changed(self)
        return original_delete(self, *args, **kwargs)

    def cached(self: Any) -> dict[Any, Any]:
        entry = self.__dict__.get("_closedloop_sorted")
        if entry is None or entry["items_id"] != id(self.items):
            entry = {"items_id": id(self.items), "all": original_all_items(self), "buckets": {}}
            self.__dict__["_closedloop_sorted"] = entry
        return entry

    def all_items(self: Any) -> list[Any]:
        bucket = getattr(local, "bucket", None)
        return list(bucket) if bucket is not None else list(cached(self)["all"])

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        if not index_name or len(conditions) != 1:
            return original_query(self, *args, **kwargs)
        name, value = conditions[0]
        entry = cached(self)
        buckets = entry["buckets"].get(name)
        if buckets is None:
            buckets = {}
            for item in entry["all"]:
                found = item.attrs.get(name)
                if found is not None:
                    buckets.setdefault((found.type, str(found.value)), []).append(item)
            entry["buckets"][name] = buckets
        local.bucket = buckets.get((value.type, str(value.value)), [])
        try:
            return original_query(self, *args, **kwargs)
        finally:
            local.bucket = None

    Table.all_items, Table.query = all_items, query  # type: ignore[method-assign]
    Table.put_item, Table.delete_item = put_item, delete_item  # type: ignore[method-assign]
    Table._closedloop_index_speedup = True  # type: ignore[attr-defined]


def install() -> None:
    """Patch moto's DynamoDB backend (process-wide): transactions and index queries."""
    from moto.dynamodb.models import DynamoDBBackend

    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    speed_up_moto_index_queries()
