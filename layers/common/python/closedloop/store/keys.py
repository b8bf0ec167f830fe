"""Which item a key names: the kinds of item the lake export copies, and the attributes their keys hold.

The table's keys are prefixed strings (``closedloop.store.schema``); this module is the one place that
reads them back. The stream's filters (``closedloop.analytics.raw_export``) and the snapshot export are
built from :data:`EXPORTED_KINDS`, so what reaches the lake and what the code recognises cannot drift.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["EXPORTED_KINDS", "ItemKind", "KeyShape", "item_kind", "key_attributes"]


class ItemKind(enum.StrEnum):
    """The items whose changes the raw datasets keep (each has one raw dataset)."""

    TOUCH = "touch"  # V#<visitor> / T#<ts>#<touch id> (a touch, or the marker of a superseded one)
    VISITOR_LINK = "visitor_link"  # V#<visitor> / LINK#<from ms, 13 digits>
    LEAD = "lead"  # L#<lead> / PROFILE
    DEAL = "deal"  # D#<crm>#<deal> / STATE
    DEAL_EVENT = "deal_event"  # D#<crm>#<deal> / EV#<event id>


@dataclass(frozen=True, slots=True)
class KeyShape:
    """A partition key prefix and a sort key that is either exactly ``sk`` or starts with ``sk_prefix``."""

    pk_prefix: str
    sk: str | None = None
    sk_prefix: str | None = None

    def matches(self, pk: str, sk: str) -> bool:
        if not pk.startswith(self.pk_prefix):
            return False
        return sk == self.sk if self.sk is not None else sk.startswith(self.sk_prefix or "")


# The lead's mirror of a visitor link (L#<lead> / V#<visitor>#<from>) is not exported: the visitor's
# own LINK# item carries the same attributes.
EXPORTED_KINDS: dict[ItemKind, KeyShape] = {
    ItemKind.TOUCH: KeyShape("V#", sk_prefix="T#"),
    ItemKind.VISITOR_LINK: KeyShape("V#", sk_prefix="LINK#"),
    ItemKind.LEAD: KeyShape("L#", sk="PROFILE"),
    ItemKind.DEAL: KeyShape("D#", sk="STATE"),
    ItemKind.DEAL_EVENT: KeyShape("D#", sk_prefix="EV#"),
}


def item_kind(pk: str, sk: str) -> ItemKind | None:
    """The kind of the item with these keys, or ``None`` for every item the lake does not keep."""
    for kind, shape in EXPORTED_KINDS.items():
        if shape.matches(pk, sk):
            return kind
    return None


def key_attributes(kind: ItemKind, pk: str, sk: str) -> dict[str, Any]:
    """The item attributes its keys hold, named as in the item (what a REMOVE's keys still say).

    Raises
    ------
    ValueError
        The keys are not of that kind's shape (say, a deal key without a deal id).
    """
    match kind:
        case ItemKind.TOUCH:
            touch_id = _split(sk, 3)[2]
            return {"visitor_id": _after(pk, "V#"), "touch_id": touch_id}
        case ItemKind.VISITOR_LINK:
            start = sk.removeprefix("LINK#")
            if not start.isdigit():
                raise ValueError("a visitor link's sort key holds its start in ms")
            return {"visitor_id": _after(pk, "V#"), "linked_from": int(start)}
        case ItemKind.LEAD:
            return {"lead_id": _after(pk, "L#")}
        case ItemKind.DEAL:
            _, crm, deal_id = _split(pk, 3)
            return {"crm": crm, "deal_id": deal_id}
        case ItemKind.DEAL_EVENT:
            _, crm, deal_id = _split(pk, 3)
            return {"crm": crm, "deal_id": deal_id, "event_id": _after(sk, "EV#")}


def _after(key: str, prefix: str) -> str:
    rest = key.removeprefix(prefix)
    if not rest or rest == key:
        raise ValueError(f"not a {prefix} key")
    return rest


def _split(key: str, parts: int) -> list[str]:
    """``T#<ts>#<id>`` or ``D#<crm>#<deal>``: the last part may itself hold ``#``."""
    values = key.split("#", parts - 1)
    if len(values) != parts or not all(values):
        raise ValueError("the key has fewer parts than its kind")
    return values
