"""Pipedrive write-back: the lead's source fields into the person's (and deal's) custom fields.

Pipedrive's API v2 (developers.pipedrive.com): ``GET /api/v2/persons/search?term=<e-mail>&fields=email
&exact_match=true`` finds the person; ``PATCH /api/v2/persons/{id}`` and ``PATCH /api/v2/deals/{id}``
with ``{"custom_fields": {"<field key>": value}}`` update them. The admin creates the custom fields and
maps each Closedloop field to a field's 40-character key in the secret (``pipedrive.writeback``).

Values: text as is, numbers as numbers, times as ``YYYY-MM-DD`` (Pipedrive's date fields). Limits are
a token budget per day and a burst window (2 s); the search API has its own, smaller limit, so the
person's id is remembered and the search is only repeated when the id no longer exists. Every answer
says what is left (``x-ratelimit-remaining``) and when it resets (``x-ratelimit-reset``, seconds): once
nothing is left the writer makes no call before the reset and raises a 429 of its own, so the worker
holds Pipedrive back as if Pipedrive had answered one. A real 429's ``Retry-After`` or
``x-ratelimit-reset`` is the worker's wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.client import HTTPResponse
from typing import Any
from urllib.parse import quote

from closedloop.crm.config import PipedriveConfig
from closedloop.crm.errors import CrmApiError, CrmApiNotFoundError
from closedloop.crm.models import CrmName
from closedloop.writeback.budget import BudgetedHttpClient, RateLimitBudget
from closedloop.writeback.fields import FIELD_KINDS, SourceFields

__all__ = ["PipedriveWriter", "read_pipedrive_budget"]


_WINDOW_SECONDS = 2.0  # the burst window, when an answer does not say when it resets


def read_pipedrive_budget(response: HTTPResponse, budget: RateLimitBudget) -> None:
    """``x-ratelimit-remaining`` 0: nothing is left until ``x-ratelimit-reset`` (seconds) has passed."""
    try:
        remaining = float(response.headers["x-ratelimit-remaining"])
    except (TypeError, ValueError):
        return  # not said (or not a number): the answer tells nothing
    if remaining > 0:
        budget.restore()
        return
    try:
        reset = float(response.headers["x-ratelimit-reset"])
    except (TypeError, ValueError):
        reset = _WINDOW_SECONDS
    budget.spend(reset)


def _value(name: str, value: object) -> object:
    if value is None:
        return None
    if FIELD_KINDS[name] == "datetime":
        return str(value)[:10]
    return value


class PipedriveWriter:
    """Writes mapped source fields to Pipedrive persons and deals with an API token.

    Parameters
    ----------
    api_token
        A user's API token (``x-api-token`` header).
    base_url
        ``https://{company}.pipedrive.com/api/v2``.
    person_fields, deal_fields
        Closedloop field name -> custom field key; an empty mapping writes nothing to that object.
    timeout
        Seconds per call.
    """

    crm = CrmName.PIPEDRIVE

    def __init__(
        self,
        api_token: str,
        *,
        base_url: str,
        person_fields: Mapping[str, str],
        deal_fields: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.budget = RateLimitBudget("Pipedrive")
        self._http = BudgetedHttpClient(
            base_url,
            read=read_pipedrive_budget,
            budget=self.budget,
            headers={"x-api-token": api_token},
            timeout=timeout,
            service="Pipedrive",
        )
        self.person_fields = dict(person_fields)
        self.deal_fields = dict(deal_fields or {})
        self.writes_contacts = bool(self.person_fields)
        self.writes_deals = bool(self.deal_fields)

    @classmethod
    def from_config(cls, config: PipedriveConfig) -> PipedriveWriter | None:
        """The writer of the ``pipedrive`` section; ``None`` when write-back is off or incomplete."""
        settings = config.writeback
        base_url = config.resolved_api_base_url
        if settings is None or not settings.enabled or config.api_token is None or base_url is None:
            return None
        return cls(
            config.api_token.get_secret_value(),
            base_url=base_url,
            person_fields=settings.person_fields,
            deal_fields=settings.deal_fields,
            timeout=max(config.api_timeout_seconds, 5.0),
        )

    def _payload(self, fields: SourceFields, mapping: Mapping[str, str]) -> dict[str, Any]:
        return {
            "custom_fields": {key: _value(name, fields.get(name)) for name, key in sorted(mapping.items())}
        }

    def contact_payload(self, fields: SourceFields) -> dict[str, Any]:
        return self._payload(fields, self.person_fields)

    def deal_payload(self, fields: SourceFields) -> dict[str, Any]:
        return self._payload(fields, self.deal_fields)

    def find_person(self, email: str) -> str | None:
        """The id of the person with this e-mail (exact match), or ``None``."""
        answer = self._http.get_json(
            "/persons/search", {"term": email, "fields": "email", "exact_match": "true", "limit": "1"}
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise CrmApiError("Pipedrive API search persons: unexpected answer")
        for entry in items:
            item = entry.get("item") if isinstance(entry, dict) else None
            if isinstance(item, dict) and item.get("id") is not None:
                return str(item["id"])
        return None

    def write_contact(
        self, email: str, payload: Mapping[str, object], *, synced_at: str, record_id: str | None = None
    ) -> str | None:
        """Update the person with ``email`` (by its remembered id first); ``None`` when there is none.

        Raises
        ------
        CrmApiRetryableError
            429 (with ``retry_after``), 5xx, timeout.
        CrmApiError
            Any other refusal (a wrong field key, a bad token).
        """
        if record_id is not None:
            try:
                self._http.patch_json(f"/persons/{quote(record_id, safe='')}", payload)
                return record_id
            except CrmApiNotFoundError:
                pass  # merged or deleted since: look the e-mail up again
        person_id = self.find_person(email)
        if person_id is None:
            return None
        try:
            self._http.patch_json(f"/persons/{quote(person_id, safe='')}", payload)
        except CrmApiNotFoundError:
            return None
        return person_id

    def write_deal(self, deal_id: str, payload: Mapping[str, object], *, synced_at: str) -> bool:
        """Update deal ``deal_id``; ``False`` when it no longer exists."""
        try:
            self._http.patch_json(f"/deals/{quote(deal_id, safe='')}", payload)
        except CrmApiNotFoundError:
            return False
        return True
