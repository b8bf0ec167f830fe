"""One entry point for ``POST /webhooks/{crm}``: pick the adapter, verify, parse, normalise."""

from __future__ import annotations

from closedloop.crm.config import (
    CrmSecrets,
    GenericConfig,
    HubSpotConfig,
    PipedriveConfig,
    SalesforceConfig,
    parse_crm_name,
)
from closedloop.crm.generic import parse_generic
from closedloop.crm.hubspot import HubSpotClient, HubSpotDealReader, parse_hubspot
from closedloop.crm.models import CrmName, DealEvent, WebhookRequest
from closedloop.crm.pipedrive import PipedriveClient, PipedrivePersonReader, parse_pipedrive
from closedloop.crm.salesforce import parse_salesforce

__all__ = ["parse_crm_webhook"]


def parse_crm_webhook(
    crm: str,
    request: WebhookRequest,
    secrets: CrmSecrets,
    *,
    hubspot_client: HubSpotDealReader | None = None,
    pipedrive_client: PipedrivePersonReader | None = None,
    now_ms: int | None = None,
) -> list[DealEvent]:
    """Verify and parse one delivery to ``/webhooks/{crm}``.

    Parameters
    ----------
    crm
        The ``{crm}`` path parameter (``hubspot``, ``salesforce``, ``pipedrive``, ``generic``).
    request
        The delivery as the CRM sent it.
    secrets
        The webhook secret.
    hubspot_client, pipedrive_client
        API clients for the lookups; built from ``secrets`` when omitted (and the tokens are there).
    now_ms
        The clock, ms (tests).

    Returns
    -------
    list of DealEvent
        The deal events of the delivery, in order; empty when it holds none (a contact event, say).
        Store each unless its ``dedupe_key`` was seen, through
        :func:`~closedloop.crm.state.next_deal_state`. Salesforce expects
        :func:`~closedloop.crm.salesforce.salesforce_ack` as the answer; the others any 2xx.

    Raises
    ------
    UnknownCrmError
        No adapter of that name (404).
    CrmNotConfiguredError
        No section for that CRM in the secret (404).
    WebhookAuthError
        Bad, missing or stale signature or credentials (401); nothing may be written.
    WebhookPayloadError
        An authentic delivery the adapter cannot read (400).
    CrmApiError
        A lookup in the CRM's API failed (503); ``CrmApiRetryableError`` when a retry may succeed.
    """
    name = parse_crm_name(crm)
    config = secrets.section(name)
    match name, config:
        case CrmName.HUBSPOT, HubSpotConfig():
            client = hubspot_client if hubspot_client is not None else HubSpotClient.from_config(config)
            return parse_hubspot(request, config, client=client, now_ms=now_ms)
        case CrmName.SALESFORCE, SalesforceConfig():
            return parse_salesforce(request, config)
        case CrmName.PIPEDRIVE, PipedriveConfig():
            person_reader = (
                pipedrive_client if pipedrive_client is not None else PipedriveClient.from_config(config)
            )
            return parse_pipedrive(request, config, client=person_reader, now_ms=now_ms)
        case CrmName.GENERIC, GenericConfig():
            return parse_generic(request, config, now_ms=now_ms)
    raise AssertionError(f"no adapter wired for {name.value}")  # pragma: no cover - CrmName is exhaustive
