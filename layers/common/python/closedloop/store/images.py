"""DynamoDB JSON (stream images, Scan pages) to plain values, the one way the lake export reads items.

Numbers stay exact :class:`~decimal.Decimal` s (an amount, a 64-bit version); the caller converts them
to its column types. Decoding fails loudly on a malformed attribute value, so a bad stream record can be
counted and skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer

__all__ = ["decode_item"]


@cache
def _deserializer() -> TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def decode_item(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or a stream record's ``Keys``, ``NewImage``, ``OldImage``) as plain Python values.

    Parameters
    ----------
    attributes
        Attribute name to DynamoDB attribute value (``{"S": "..."}``, ``{"N": "12"}``, ...).

    Returns
    -------
    dict
        Attribute name to value: ``str``, ``Decimal``, ``bool``, ``None``, ``list``, ``dict``, ``set``.

    Raises
    ------
    ValueError
        An attribute value is not DynamoDB JSON.
    """
    decoder = _deserializer()
    try:
        return {str(name): decoder.deserialize(value) for name, value in attributes.items()}
    except (TypeError, AttributeError, KeyError, ArithmeticError) as exc:
        raise ValueError("not a DynamoDB item") from exc
