"""The wire format of ``POST /collect`` and ``GET /collect.gif`` (see docs/tracker.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from closedloop.models.numbers import is_storable_number

__all__ = [
    "EPOCH_MS_MAX",
    "EPOCH_MS_MIN",
    "MAX_EVENTS_PER_BATCH",
    "CollectBatch",
    "CollectBody",
    "CollectEvent",
    "CollectResponse",
    "EpochMillis",
    "EventId",
    "VisitorId",
]

MAX_EVENTS_PER_BATCH = 50

# Ids are opaque random strings made by the tracker; a strict shape keeps junk (and injection) out of keys.
VisitorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
# Milliseconds since the epoch, between 2000 and 2100: anything else is a broken clock or a wrong unit.
EPOCH_MS_MIN = 946_684_800_000  # 2000-01-01
EPOCH_MS_MAX = 4_102_444_800_000  # 2100-01-01
EpochMillis = Annotated[int, Field(ge=EPOCH_MS_MIN, le=EPOCH_MS_MAX, strict=False)]
PropValue = str | int | float | bool | None


class CollectEvent(BaseModel):
    """One page view, or one custom event of ``closedloop('track', name, props)``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["page_view", "track"] = "page_view"
    event_id: EventId
    visitor_id: VisitorId
    session_id: EventId | None = None
    url: Annotated[
        str,
        Field(
            min_length=1,
            max_length=8192,
            description="The page URL: absolute http(s), with a host, no whitespace or control characters.",
            # Documents the rule closedloop.traffic enforces (the fuzzing test holds the API to it).
            json_schema_extra={"pattern": r"^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f]+$"},
        ),
    ]
    referrer: Annotated[str, Field(max_length=8192)] | None = None
    title: Annotated[str, Field(max_length=1000)] | None = None
    ts: EpochMillis | None = Field(default=None, description="Client time the event happened (ms epoch).")
    sent_at: EpochMillis | None = Field(default=None, description="Client time the request was sent.")
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    props: Annotated[dict[Annotated[str, Field(max_length=100)], PropValue], Field(max_length=50)] | None = (
        None
    )

    @field_validator("props")
    @classmethod
    def _props_are_storable(cls, props: dict[str, PropValue] | None) -> dict[str, PropValue] | None:
        for key, value in (props or {}).items():
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and not is_storable_number(value)
            ):
                raise ValueError(f"property {key!r} is a number out of range (38 digits, 1E-130..1E+125)")
        return props

    @model_validator(mode="after")
    def _track_has_a_name(self) -> CollectEvent:
        if self.type == "track" and not self.name:
            raise ValueError("a track event needs a name")
        return self


class CollectBatch(BaseModel):
    """Several events in one request, as the tracker sends them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sent_at: EpochMillis | None = None
    events: Annotated[list[CollectEvent], Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)]


def _body_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "events" in value else "event"
    return "batch" if hasattr(value, "events") else "event"


CollectBody = Annotated[
    Annotated[CollectBatch, Tag("batch")] | Annotated[CollectEvent, Tag("event")],
    Discriminator(_body_kind),
]


class CollectResponse(BaseModel):
    """What became of the events of one request."""

    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events already stored before (a retry): stored once.")
    dropped: int = Field(description="Events from known bots and crawlers: not stored.")
