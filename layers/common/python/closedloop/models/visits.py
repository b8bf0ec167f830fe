"""What the store keeps of a visitor's browsing: page views, touches and the running session."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["PageView", "Touch", "VisitorState"]


class PageView(BaseModel):
    """One stored tracker event. The URL keeps host and path only: query strings may carry personal data."""

    model_config = ConfigDict(frozen=True)

    visitor_id: str
    event_id: str
    type: Literal["page_view", "track"] = "page_view"
    occurred_at: int  # ms epoch, derived from the client clock corrected by the server's
    received_at: int
    session_id: str  # the touch id of the session this event belongs to
    client_session_id: str | None = None
    page_host: str
    page_path: str
    title: str | None = None
    referrer_host: str | None = None
    name: str | None = None
    props: dict[str, str | int | float | bool | None] | None = None
    expires_at: int | None = None  # epoch seconds, DynamoDB TTL


class Touch(BaseModel):
    """The start of a session, with the source that brought the visitor: what attribution credits."""

    model_config = ConfigDict(frozen=True)

    visitor_id: str
    touch_id: str  # the event id of the session's first event
    occurred_at: int  # ms epoch
    channel: str
    source: str
    medium: str
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    utm_id: str | None = None
    click_id_type: str | None = None
    click_id: str | None = None
    referrer_host: str | None = None
    landing_host: str
    landing_path: str
    expires_at: int | None = None


class VisitorState(BaseModel):
    """The running session of one visitor, updated with optimistic locking (``version``)."""

    model_config = ConfigDict(frozen=True)

    visitor_id: str
    first_seen_at: int
    last_seen_at: int
    session_id: str
    session_started_at: int
    campaign_key: tuple[str | None, ...]
    client_session_id: str | None = None  # the tracker's session cookie, one signal of a new session
    sessions: int = 1
    events: int = 1
    version: int = 0
