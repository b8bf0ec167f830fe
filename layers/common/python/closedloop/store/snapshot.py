"""A whole-table read, for the one-time seed of the lake (``closedloop.analytics.raw_export``).

The only Scan in Closedloop: the lake export otherwise reads nothing from the table (the stream brings
every change). Run once, by an admin, for a deployment that existed before the stream consumer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from closedloop.errors import StoreUnavailableError
from closedloop.store.images import decode_item

if TYPE_CHECKING:
    from closedloop.store.dynamodb import DynamoStore

__all__ = ["scan_items"]


def scan_items(store: DynamoStore, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
    """Every item of the table, decoded (:func:`closedloop.store.images.decode_item`), page by page.

    Parameters
    ----------
    store
        The table (its client and name).
    page_size
        Items per Scan request (``Limit``); DynamoDB's 1 MB page when ``None``.

    Raises
    ------
    StoreUnavailableError
        DynamoDB failed; the items yielded so far were read, the rest were not.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    kwargs: dict[str, Any] = {"TableName": store.table_name}
    if page_size is not None:
        kwargs["PaginationConfig"] = {"PageSize": page_size}
    try:
        for page in store.client.get_paginator("scan").paginate(**kwargs):
            for item in page.get("Items", []):
                yield decode_item(item)
    except (ClientError, BotoCoreError) as exc:
        raise StoreUnavailableError("DynamoDB scan failed") from exc
