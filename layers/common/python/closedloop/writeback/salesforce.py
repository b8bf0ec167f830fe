"""Salesforce write-back: the lead's source fields into Contact or Lead fields the admin mapped.

Salesforce's REST API (developer.salesforce.com, "REST API Developer Guide"):

- a connected app's OAuth 2.0 client credentials flow: ``POST {My Domain}/services/oauth2/token`` with
  ``grant_type=client_credentials``, ``client_id`` and ``client_secret`` gives an ``access_token`` and
  the ``instance_url`` to call; a 401 on a later call means the token expired (a new one is fetched
  once);
- ``GET /services/data/vXX.X/query?q=SELECT Id FROM Contact WHERE Email = '...'`` finds the record,
  Contacts first, then unconverted Leads (``salesforce.writeback.objects`` sets the order);
- ``PATCH /services/data/vXX.X/sobjects/{Contact|Lead|Opportunity}/{Id}`` with the mapped fields
  answers 204.

Values: text as is, numbers as numbers, times as ISO 8601 (map them to Date/Time fields).

Limits: the org's API allowance over a rolling 24 hours. Every answer says how much of it is used
(``Sforce-Limit-Info: api-usage=N/M``); once it is gone Salesforce refuses with 403
``REQUEST_LIMIT_EXCEEDED``. Either way the writer makes no call for an hour and raises a 429 of its own,
so the worker waits it out as a rate limit instead of counting failures toward the dead-letter queue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from http.client import HTTPResponse
from typing import Any, TypeVar
from urllib.parse import quote

from closedloop.crm.config import SalesforceConfig
from closedloop.crm.errors import CrmApiError, CrmApiNotFoundError
from closedloop.crm.http import JsonHttpClient
from closedloop.crm.models import CrmName
from closedloop.writeback.budget import BudgetedHttpClient, RateLimitBudget
from closedloop.writeback.fields import SourceFields

__all__ = ["SalesforceWriter", "read_salesforce_budget", "soql_string"]

T = TypeVar("T")

# The allowance is a rolling 24 hours with no reset time: look again in an hour.
LIMIT_PAUSE_SECONDS = 3600.0
_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def read_salesforce_budget(response: HTTPResponse, budget: RateLimitBudget) -> None:
    """A 403 ``REQUEST_LIMIT_EXCEEDED``, or ``api-usage`` at its limit: no call for an hour."""
    if response.status == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.read(64 * 1024):
        budget.spend(LIMIT_PAUSE_SECONDS, refused=True)
        return
    usage = _API_USAGE.search(response.headers.get("Sforce-Limit-Info") or "")
    if usage is None:
        return
    if int(usage[1]) >= int(usage[2]):
        budget.spend(LIMIT_PAUSE_SECONDS)
    else:
        budget.restore()


def soql_string(value: str) -> str:
    """A SOQL string literal: backslashes and quotes escaped, as SOQL requires."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceWriter:
    """Writes mapped source fields to a Salesforce org through its REST API.

    Parameters
    ----------
    instance_url
        The org's My Domain URL (the token endpoint's host).
    client_id, client_secret
        The connected app's consumer key and secret (client credentials flow).
    api_version
        ``v62.0``.
    objects
        Where the e-mail is looked up, in order (``Contact``, ``Lead``).
    fields, opportunity_fields
        Closedloop field name -> API name on Lead/Contact, and on Opportunity.
    timeout
        Seconds per call.
    """

    crm = CrmName.SALESFORCE

    def __init__(
        self,
        *,
        instance_url: str,
        client_id: str,
        client_secret: str,
        api_version: str = "v62.0",
        objects: tuple[str, ...] = ("Contact", "Lead"),
        fields: Mapping[str, str],
        opportunity_fields: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._credentials = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._timeout = timeout
        self.budget = RateLimitBudget("Salesforce")  # the org's allowance, for the token and the API calls
        self._login = self._client(instance_url)
        self._api: JsonHttpClient | None = None
        self.api_version = api_version
        self.objects = objects
        self.fields = dict(fields)
        self.opportunity_fields = dict(opportunity_fields or {})
        self.writes_contacts = bool(self.fields)
        self.writes_deals = bool(self.opportunity_fields)

    @classmethod
    def from_config(cls, config: SalesforceConfig) -> SalesforceWriter | None:
        """The writer of the ``salesforce`` section; ``None`` when write-back is off."""
        settings = config.writeback
        if settings is None or not settings.enabled:
            return None
        return cls(
            instance_url=settings.instance_url,
            client_id=settings.client_id.get_secret_value(),
            client_secret=settings.client_secret.get_secret_value(),
            api_version=settings.api_version,
            objects=settings.objects,
            fields=settings.fields,
            opportunity_fields=settings.opportunity_fields,
            timeout=settings.api_timeout_seconds,
        )

    # -- the session ----------------------------------------------------------------------------------

    def _client(self, base_url: str, headers: Mapping[str, str] | None = None) -> JsonHttpClient:
        return BudgetedHttpClient(
            base_url,
            read=read_salesforce_budget,
            budget=self.budget,
            headers=headers,
            timeout=self._timeout,
            service="Salesforce",
        )

    def _session(self) -> JsonHttpClient:
        if self._api is None:
            answer = self._login.post_form("/services/oauth2/token", self._credentials, label="/oauth2/token")
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not isinstance(token, str) or not token:
                raise CrmApiError("Salesforce API token: unexpected answer")
            instance = answer.get("instance_url") or self._login.base_url
            self._api = self._client(str(instance), {"Authorization": f"Bearer {token}"})
        return self._api

    def _call(self, call: Callable[[JsonHttpClient], T]) -> T:
        try:
            return call(self._session())
        except CrmApiError as exc:
            if exc.status != 401:
                raise
            self._api = None  # the token expired or was revoked: one new one
            return call(self._session())

    # -- payloads -------------------------------------------------------------------------------------

    def contact_payload(self, fields: SourceFields) -> dict[str, Any]:
        return {api_name: fields.get(name) for name, api_name in sorted(self.fields.items())}

    def deal_payload(self, fields: SourceFields) -> dict[str, Any]:
        return {api_name: fields.get(name) for name, api_name in sorted(self.opportunity_fields.items())}

    # -- writes ---------------------------------------------------------------------------------------

    def _path(self, kind: str, record_id: str) -> str:
        return f"/services/data/{self.api_version}/sobjects/{kind}/{quote(record_id, safe='')}"

    def find_record(self, email: str) -> str | None:
        """``Contact/<Id>`` or ``Lead/<Id>`` of the first record with this e-mail, in ``objects`` order."""
        path = f"/services/data/{self.api_version}/query"
        for kind in self.objects:
            # kind is Contact or Lead (validated); the e-mail is an escaped SOQL literal.
            where = f"Email = {soql_string(email)}" + (" AND IsConverted = false" if kind == "Lead" else "")
            soql = f"SELECT Id FROM {kind} WHERE {where} ORDER BY CreatedDate LIMIT 1"  # noqa: S608

            def query(api: JsonHttpClient, q: str = soql) -> Any:
                return api.get_json(path, {"q": q})

            answer = self._call(query)
            records = answer.get("records") if isinstance(answer, dict) else None
            if not isinstance(records, list):
                raise CrmApiError("Salesforce API query: unexpected answer")
            if records and isinstance(records[0], dict) and records[0].get("Id"):
                return f"{kind}/{records[0]['Id']}"
        return None

    def write_contact(
        self, email: str, payload: Mapping[str, object], *, synced_at: str, record_id: str | None = None
    ) -> str | None:
        """Update the Contact (or Lead) with ``email``; ``None`` when the org has none.

        Raises
        ------
        CrmApiRetryableError
            429, 5xx, timeout.
        CrmApiError
            Any other refusal (a field name the org does not have, missing permissions, the daily
            API limit: 403 ``REQUEST_LIMIT_EXCEEDED``).
        """
        if record_id is not None and "/" in record_id:
            kind, _, known = record_id.partition("/")
            try:
                self._call(
                    lambda api: api.patch_json(self._path(kind, known), payload, label=f"/sobjects/{kind}")
                )
                return record_id
            except CrmApiNotFoundError:
                pass  # merged, converted or deleted since
        found = self.find_record(email)
        if found is None:
            return None
        kind, _, new_id = found.partition("/")
        try:
            self._call(
                lambda api: api.patch_json(self._path(kind, new_id), payload, label=f"/sobjects/{kind}")
            )
        except CrmApiNotFoundError:
            return None
        return found

    def write_deal(self, deal_id: str, payload: Mapping[str, object], *, synced_at: str) -> bool:
        """Update Opportunity ``deal_id``; ``False`` when it no longer exists."""
        try:
            self._call(lambda api: api.patch_json(self._path("Opportunity", deal_id), payload))
        except CrmApiNotFoundError:
            return False
        return True
