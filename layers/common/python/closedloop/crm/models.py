"""The normalised deal event every CRM adapter produces, the deal state the store keeps, and the request
view the adapters read.

Times are integer milliseconds since the epoch, UTC, as everywhere in Closedloop (``closedloop.clock``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from closedloop.crm.money import normalise_currency
from closedloop.models.collect import EPOCH_MS_MAX
from closedloop.models.numbers import is_storable_number

__all__ = [
    "MAX_DEAL_TIME_MS",
    "MAX_DEAL_VERSION",
    "CrmName",
    "DealEvent",
    "DealLifecycle",
    "DealState",
    "StageRules",
    "WebhookRequest",
    "normalise_emails",
]

# Deliberately loose: the CRM already validated the address; this only keeps out blanks and junk.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Bounds of a deal event's times and version: an event that validates is one the store can keep (a
# 39-digit number fails DynamoDB's write, a 500 the CRM would retry forever). Times end where
# EpochMillis does, in 2100, but start at the epoch (CRMs hold deals older than 2000); a version is any
# signed 64-bit integer, as every CRM's ordering key is.
MAX_DEAL_TIME_MS = EPOCH_MS_MAX
MAX_DEAL_VERSION = 2**63 - 1
DealTime = Annotated[int, Field(ge=0, le=MAX_DEAL_TIME_MS)]


class CrmName(StrEnum):
    """The CRMs Closedloop reads deal events from; the value is the ``{crm}`` of ``/webhooks/{crm}``."""

    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"
    PIPEDRIVE = "pipedrive"
    GENERIC = "generic"


class DealLifecycle(StrEnum):
    """Where a deal is in its life, as attribution needs it.

    ``OPEN`` is an open opportunity (pipeline); ``WON`` and ``LOST`` are closed; ``REOPENED`` is a deal
    that was won or lost and went back to an open stage (it counts as open); ``DELETED`` is gone from
    the CRM.
    """

    OPEN = "open"
    WON = "won"
    LOST = "lost"
    REOPENED = "reopened"
    DELETED = "deleted"

    @property
    def is_open(self) -> bool:
        """Whether the deal is an open opportunity (``OPEN`` or ``REOPENED``)."""
        return self in (DealLifecycle.OPEN, DealLifecycle.REOPENED)

    @property
    def is_closed(self) -> bool:
        """Whether the deal is won or lost."""
        return self in (DealLifecycle.WON, DealLifecycle.LOST)


def normalise_emails(values: Iterable[object]) -> tuple[str, ...]:
    """Return the e-mail addresses among ``values``, trimmed, lower-cased, deduplicated, in order.

    Parameters
    ----------
    values
        Candidates as a CRM sends them; ``None``, blanks and values that are not addresses are dropped
        (one bad contact must not lose the deal). A string may hold several, separated by ``,`` or ``;``.

    Returns
    -------
    tuple of str
        The addresses, first occurrence first.
    """
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            continue
        for part in re.split(r"[;,]", value):
            email = part.strip().lower()
            if _EMAIL.fullmatch(email):
                seen.setdefault(email, None)
    return tuple(seen)


class StageRules(BaseModel):
    """Which stages of a CRM mean won or lost; every other stage is open.

    Stage names compare without regard to case or surrounding spaces. The defaults per CRM are
    :meth:`for_crm`; an admin overrides them in the webhook secret (custom HubSpot pipelines have
    numeric stage ids, for example).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    won_stages: Annotated[frozenset[str], Field(description="Stage ids or names: won.")] = frozenset()
    lost_stages: Annotated[frozenset[str], Field(description="Stage ids or names: lost.")] = frozenset()

    @field_validator("won_stages", "lost_stages", mode="after")
    @classmethod
    def _casefold(cls, stages: frozenset[str]) -> frozenset[str]:
        return frozenset(stage.strip().casefold() for stage in stages if stage.strip())

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = self.won_stages & self.lost_stages
        if both:
            raise ValueError(f"stages cannot be both won and lost: {sorted(both)}")
        return self

    @classmethod
    def for_crm(cls, crm: CrmName) -> StageRules:
        """Return the default rules of a CRM.

        Parameters
        ----------
        crm
            The CRM.

        Returns
        -------
        StageRules
            HubSpot: ``closedwon`` / ``closedlost`` (the default pipeline's stage ids). Salesforce:
            ``Closed Won`` / ``Closed Lost`` (used only when ``IsWon`` / ``IsClosed`` are not in the
            message). Pipedrive and generic: none, their ``status`` field says won or lost.
        """
        match crm:
            case CrmName.HUBSPOT:
                return cls(won_stages=frozenset({"closedwon"}), lost_stages=frozenset({"closedlost"}))
            case CrmName.SALESFORCE:
                return cls(won_stages=frozenset({"Closed Won"}), lost_stages=frozenset({"Closed Lost"}))
            case _:
                return cls()

    def lifecycle_for(self, stage: str | None) -> DealLifecycle | None:
        """Return ``WON`` or ``LOST`` when the stage is listed, else ``None`` (the caller decides).

        Parameters
        ----------
        stage
            The stage id or name.

        Returns
        -------
        DealLifecycle or None
            The lifecycle the rules give this stage.
        """
        if stage is None:
            return None
        key = stage.strip().casefold()
        if key in self.won_stages:
            return DealLifecycle.WON
        if key in self.lost_stages:
            return DealLifecycle.LOST
        return None


class DealEvent(BaseModel):
    """One change of one deal, the same shape whatever CRM sent it.

    A field that is ``None`` (or an empty ``contact_emails``) was not in the delivery: the state keeps
    what it knew (see :func:`closedloop.crm.state.next_deal_state`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    crm: CrmName
    event_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description="The CRM's id of this delivery (HubSpot eventId, Salesforce notification Id, "
            "Pipedrive meta.id, generic event_id): the same event delivered twice has the same id.",
        ),
    ]
    deal_id: Annotated[str, Field(min_length=1, max_length=256, description="The CRM's id of the deal.")]
    lifecycle: DealLifecycle
    occurred_at: Annotated[DealTime, Field(description="When the change happened, ms epoch UTC.")]
    version: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_DEAL_VERSION,
            description="Ordering key: the CRM's modification time in ms (or its own sequence). A state "
            "never moves back to an older version.",
        ),
    ]
    contact_emails: Annotated[tuple[str, ...], Field(description="The deal's contacts, lower case.")] = ()
    pipeline: Annotated[str | None, Field(max_length=256)] = None
    stage: Annotated[str | None, Field(max_length=256)] = None
    amount: Annotated[Decimal | None, Field(description="Exact amount in `currency`.")] = None
    currency: Annotated[str | None, Field(description="ISO 4217 code, upper case.")] = None
    close_date: Annotated[date | None, Field(description="The expected or actual close date.")] = None
    created_at: Annotated[DealTime | None, Field(description="When the CRM created the deal, ms.")] = None

    @field_validator("contact_emails", mode="before")
    @classmethod
    def _emails(cls, value: object) -> object:
        if isinstance(value, str):
            value = (value,)
        if isinstance(value, list | tuple | set | frozenset):
            emails = normalise_emails(value)
            bad = [v for v in value if isinstance(v, str) and v.strip() and not normalise_emails([v])]
            if bad:
                raise ValueError(f"{len(bad)} contact e-mail(s) are not e-mail addresses")
            return emails
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: object) -> object:
        return normalise_currency(value) if isinstance(value, str) else value

    @field_validator("amount", mode="after")
    @classmethod
    def _finite(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not value.is_finite():
            raise ValueError("the amount must be a finite number")
        if value is not None and not is_storable_number(value):
            raise ValueError("the amount has more than 38 digits or is out of range")
        return value

    @property
    def dedupe_key(self) -> str:
        """The idempotency key of this delivery: a replay of the same event has the same key."""
        return f"{self.crm.value}#{self.event_id}"


class DealState(BaseModel):
    """What the store keeps of one deal, built only by :func:`~closedloop.crm.state.next_deal_state`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    crm: CrmName
    deal_id: str
    lifecycle: DealLifecycle
    version: Annotated[int, Field(ge=0, description="The version of the last event applied.")]
    updated_at: Annotated[int, Field(ge=0, description="occurred_at of the last event applied, ms.")]
    last_event_id: str
    contact_emails: tuple[str, ...] = ()
    pipeline: str | None = None
    stage: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    close_date: date | None = None
    opportunity_created_at: Annotated[
        int | None, Field(description="When the deal became an opportunity (W-shaped attribution), ms.")
    ] = None
    won_at: Annotated[int | None, Field(description="When it was last won, ms.")] = None
    lost_at: Annotated[int | None, Field(description="When it was last lost, ms.")] = None
    reopened_at: Annotated[int | None, Field(description="When it last went back to open, ms.")] = None
    deleted_at: Annotated[int | None, Field(description="When it was deleted, ms.")] = None


class WebhookRequest(BaseModel):
    """A framework-free view of one webhook delivery, as the adapters read it.

    ``url`` is the full URL exactly as the CRM called it (scheme, host, path and query string):
    HubSpot signs it. Header names are case-insensitive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Annotated[str, Field(min_length=1, max_length=16)] = "POST"
    url: Annotated[str, Field(min_length=1, max_length=8192)]
    headers: Annotated[Mapping[str, str], Field(description="Header names are stored lower case.")] = {}
    body: bytes = b""
    query: Annotated[
        Mapping[str, str] | None, Field(description="Query parameters; read from `url` when omitted.")
    ] = None

    @field_validator("method", mode="after")
    @classmethod
    def _upper(cls, method: str) -> str:
        return method.upper()

    @field_validator("headers", mode="after")
    @classmethod
    def _lower_names(cls, headers: Mapping[str, str]) -> dict[str, str]:
        return {name.lower(): value for name, value in headers.items()}

    def header(self, name: str) -> str | None:
        """Return a header's value, whatever the case of its name, or ``None``."""
        return self.headers.get(name.lower())

    def query_param(self, name: str) -> str | None:
        """Return a query parameter from ``query``, or from the URL's query string."""
        if self.query is not None:
            return self.query.get(name)
        for key, value in parse_qsl(urlsplit(self.url).query, keep_blank_values=True):
            if key == name:
                return value
        return None
