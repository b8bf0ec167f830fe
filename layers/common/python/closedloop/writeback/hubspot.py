"""HubSpot write-back: the lead's source fields as ``closedloop_*`` contact and deal properties.

HubSpot's CRM API v3 (developers.hubspot.com, "Properties" and "Contacts"):

- ``GET /crm/v3/properties/{object}`` lists an object's properties; ``POST
  /crm/v3/properties/{object}/batch/create`` creates several; ``GET`` / ``POST
  /crm/v3/properties/{object}/groups[/{name}]`` read and create a property group. Missing properties
  are created once per warm function, in the ``closedloop`` group (scope ``crm.schemas.*.write``).
- ``PATCH /crm/v3/objects/contacts/{email}?idProperty=email`` updates the contact with that e-mail;
  404 when there is none. ``PATCH /crm/v3/objects/deals/{dealId}`` updates a deal.
- A 429 carries ``Retry-After``; the worker waits that long (:mod:`closedloop.writeback.service`).

Every write also sets ``closedloop_last_sync``: the marker the webhook adapter uses to recognise the
property-change events our own writes cause (every ``closedloop_*`` property is ignored there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from closedloop.crm.config import HubSpotConfig
from closedloop.crm.errors import CrmApiError, CrmApiNotFoundError
from closedloop.crm.http import JsonHttpClient
from closedloop.crm.models import CrmName
from closedloop.writeback.fields import FIELDS, FieldSpec, SourceFields

__all__ = ["HUBSPOT_PREFIX", "LAST_SYNC", "HubSpotWriter", "hubspot_property_definitions"]

HUBSPOT_PREFIX = "closedloop_"
LAST_SYNC = f"{HUBSPOT_PREFIX}last_sync"
_TYPES = {"string": ("string", "text"), "number": ("number", "number"), "datetime": ("datetime", "date")}


def _definition(spec: FieldSpec, group: str) -> dict[str, Any]:
    kind, field_type = _TYPES[spec.kind]
    return {
        "name": f"{HUBSPOT_PREFIX}{spec.name}",
        "label": f"Closedloop: {spec.label}",
        "description": spec.description,
        "groupName": group,
        "type": kind,
        "fieldType": field_type,
    }


def hubspot_property_definitions(group: str = "closedloop") -> list[dict[str, Any]]:
    """The properties Closedloop writes (``docs/crm-writeback.md`` lists them), as HubSpot creates them."""
    last_sync = FieldSpec(
        "last_sync", "datetime", "Last sync", "When Closedloop last wrote these properties."
    )
    return [_definition(spec, group) for spec in (*FIELDS, last_sync)]


class HubSpotWriter:
    """Writes source fields to HubSpot with a private-app token.

    Parameters
    ----------
    token
        The private app's access token.
    base_url
        ``https://api.hubapi.com``; tests point it at a local server.
    group
        The property group (``hubspot.writeback.property_group``).
    create_properties
        Create missing properties and the group before the first write.
    contacts, deals
        Which objects to write.
    timeout
        Seconds per call.
    """

    crm = CrmName.HUBSPOT

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.hubapi.com",
        group: str = "closedloop",
        create_properties: bool = True,
        contacts: bool = True,
        deals: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self._http = JsonHttpClient(
            base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, service="HubSpot"
        )
        self.group = group
        self.create_properties = create_properties
        self.writes_contacts = contacts
        self.writes_deals = deals
        self._ready: set[str] = set()

    @classmethod
    def from_config(cls, config: HubSpotConfig) -> HubSpotWriter | None:
        """The writer of the ``hubspot`` section; ``None`` when write-back is off or has no token."""
        settings = config.writeback
        if settings is None or not settings.enabled or config.private_app_token is None:
            return None
        return cls(
            config.private_app_token.get_secret_value(),
            base_url=config.api_base_url,
            group=settings.property_group,
            create_properties=settings.create_properties,
            contacts=settings.contacts,
            deals=settings.deals,
            timeout=max(config.api_timeout_seconds, 5.0),
        )

    # -- payloads (what the hash covers) --------------------------------------------------------------

    def contact_payload(self, fields: SourceFields) -> dict[str, str]:
        """The properties of a contact write (without the ``last_sync`` marker)."""
        return {
            f"{HUBSPOT_PREFIX}{spec.name}": ""
            if fields.get(spec.name) is None
            else str(fields.get(spec.name))
            for spec in FIELDS
        }

    def deal_payload(self, fields: SourceFields) -> dict[str, str]:
        """The properties of a deal write: the same as the contact's."""
        return self.contact_payload(fields)

    # -- writes ---------------------------------------------------------------------------------------

    def write_contact(
        self, email: str, payload: Mapping[str, object], *, synced_at: str, record_id: str | None = None
    ) -> str | None:
        """Update the contact with ``email``; return its id, or ``None`` when HubSpot has no such contact.

        The contact is addressed by e-mail (``idProperty=email``), not by ``record_id``: a merge in
        HubSpot may have changed its id, never its e-mail.

        Raises
        ------
        CrmApiRetryableError
            429 (with ``retry_after``), 5xx, timeout.
        CrmApiError
            Any other refusal (a missing scope, a property HubSpot refuses).
        """
        self._ensure("contacts")
        try:
            answer = self._http.patch_json(
                f"/crm/v3/objects/contacts/{quote(email, safe='@')}",
                {"properties": {**payload, LAST_SYNC: synced_at}},
                query={"idProperty": "email"},
                label="/crm/v3/objects/contacts/{email}",
            )
        except CrmApiNotFoundError:
            return None
        return str(answer.get("id")) if isinstance(answer, dict) and answer.get("id") else ""

    def write_deal(self, deal_id: str, payload: Mapping[str, object], *, synced_at: str) -> bool:
        """Update deal ``deal_id``; ``False`` when it no longer exists (errors as :meth:`write_contact`)."""
        self._ensure("deals")
        try:
            self._http.patch_json(
                f"/crm/v3/objects/deals/{quote(deal_id, safe='')}",
                {"properties": {**payload, LAST_SYNC: synced_at}},
            )
        except CrmApiNotFoundError:
            return False
        return True

    # -- properties -----------------------------------------------------------------------------------

    def _ensure(self, object_type: str) -> None:
        """Create the group and the missing properties of ``object_type``, once per warm function."""
        if object_type in self._ready or not self.create_properties:
            return
        try:
            self._http.get_json(f"/crm/v3/properties/{object_type}/groups/{self.group}")
        except CrmApiNotFoundError:
            self._http.post_json(
                f"/crm/v3/properties/{object_type}/groups",
                {"name": self.group, "label": "Closedloop", "displayOrder": -1},
            )
        answer = self._http.get_json(f"/crm/v3/properties/{object_type}")
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise CrmApiError(f"HubSpot API GET properties of {object_type}: unexpected answer")
        existing = {str(item.get("name")) for item in results if isinstance(item, dict)}
        missing = [d for d in hubspot_property_definitions(self.group) if d["name"] not in existing]
        if missing:
            self._http.post_json(f"/crm/v3/properties/{object_type}/batch/create", {"inputs": missing})
        self._ready.add(object_type)
