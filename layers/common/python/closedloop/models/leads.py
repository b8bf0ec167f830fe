"""Leads: what a form post says (``IdentifyRequest``) and what the store keeps (leads, links, submissions)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from closedloop.models.collect import EventId, VisitorId
from closedloop.models.numbers import is_storable_number

__all__ = [
    "MAX_CUSTOM_FIELDS",
    "IdentifyRequest",
    "IdentifyResponse",
    "Lead",
    "LeadSource",
    "Submission",
    "VisitorLink",
]

MAX_CUSTOM_FIELDS = 20
MAX_CUSTOM_KEY = 64
MAX_CUSTOM_VALUE = 1000
# Fields a form may carry that are not the lead's: the tracker's, the honeypot, the redirect.
CONTROL_FIELDS = frozenset({"closedloop_visitor_id", "visitor_id", "redirect", "website", "submission_id"})

Short = Annotated[str, Field(max_length=200)]


class IdentifyRequest(BaseModel):
    """A form submission: JSON, form-encoded or multipart; unknown fields are kept as custom fields."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    email: Annotated[
        str,
        Field(
            min_length=3,
            max_length=320,
            description="Required; validated and normalised.",
            json_schema_extra={"format": "email"},
        ),
    ]
    visitor_id: VisitorId | None = Field(default=None, description="The tracker's visitor id (JSON).")
    closedloop_visitor_id: VisitorId | None = Field(
        default=None, description="The tracker's hidden field on HTML forms."
    )
    submission_id: EventId | None = Field(default=None, description="Makes a resubmission idempotent.")
    name: Short | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    company: Short | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    job_title: Short | None = None
    form_id: Annotated[str, Field(max_length=100)] | None = None
    page_url: Annotated[str, Field(max_length=2048)] | None = None
    consent: bool | None = None
    redirect: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None, description="Where to send the browser after an HTML form post (allowed origins only)."
    )
    website: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None,
        description="Honeypot: humans leave it empty. A filled one is answered like a success and "
        "nothing is stored.",
        json_schema_extra={"maxLength": 0},
    )

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_missing(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _custom_fields_are_bounded(self) -> IdentifyRequest:
        extra = self.model_extra or {}
        if len(extra) > MAX_CUSTOM_FIELDS:
            raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields; got {len(extra)}")
        for key, value in extra.items():
            if not key.strip():
                # A browser never sends a field without a name; DynamoDB cannot keep one in a map.
                raise ValueError("a custom field needs a name")
            if len(key) > MAX_CUSTOM_KEY or not isinstance(value, str | int | float | bool | None):
                raise ValueError(
                    f"custom field {key[:MAX_CUSTOM_KEY]!r} must be a short name with a plain value"
                )
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and not is_storable_number(value)
            ):
                raise ValueError(f"custom field {key!r} is a number out of range (38 digits, 1E-130..1E+125)")
            if isinstance(value, str) and len(value) > MAX_CUSTOM_VALUE:
                raise ValueError(f"custom field {key!r} is over {MAX_CUSTOM_VALUE} characters")
        return self

    @property
    def custom_fields(self) -> dict[str, str | int | float | bool | None]:
        return dict(self.model_extra or {})

    @property
    def visitor(self) -> str | None:
        return self.closedloop_visitor_id or self.visitor_id


class IdentifyResponse(BaseModel):
    lead_id: str
    status: str = Field(description='"created" or "updated"')


class LeadSource(BaseModel):
    """A touch's source as a lead keeps it (original, lead-creation, latest), as CRMs show them."""

    model_config = ConfigDict(frozen=True)

    channel: str
    source: str
    medium: str
    campaign: str | None = None
    touch_id: str
    occurred_at: int
    landing_path: str | None = None


class Lead(BaseModel):
    """A person known by email. Several visitors (devices) can belong to one lead."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    phone: str | None = None
    job_title: str | None = None
    consent: bool | None = None
    custom_fields: dict[str, str | int | float | bool | None] = {}
    created_at: int
    updated_at: int
    submissions: int = 0
    first_seen_at: int | None = None
    original_source: LeadSource | None = None
    lead_creation_source: LeadSource | None = None
    latest_source: LeadSource | None = None
    version: int = 0


class VisitorLink(BaseModel):
    """Visitor ``visitor_id`` belongs to lead ``lead_id`` for touches in ``[linked_from, linked_until)``."""

    model_config = ConfigDict(frozen=True)

    visitor_id: str
    lead_id: str
    linked_from: int  # 0 for the visitor's first lead: its whole anonymous history comes along
    linked_until: int | None = None
    linked_at: int  # when the link was made

    def covers(self, at: int) -> bool:
        return self.linked_from <= at and (self.linked_until is None or at < self.linked_until)


class Submission(BaseModel):
    """One form submission: a conversion event with its time, form and page (W-shaped needs it)."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    submission_id: str
    occurred_at: int
    visitor_id: str | None = None
    form_id: str | None = None
    page_host: str | None = None
    page_path: str | None = None
