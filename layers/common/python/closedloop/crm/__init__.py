"""CRM webhooks: verify each CRM's deliveries and turn them into one normalised :class:`DealEvent`.

Pure Python with no AWS calls. The only I/O is the small HTTPS client (:mod:`closedloop.crm.http`)
that HubSpot and Pipedrive lookups use, injected as a collaborator so tests point it at 127.0.0.1.

Typical use in the handler::

    secrets = CrmSecrets.model_validate_json(secret_string)         # once, at cold start
    events = parse_crm_webhook(crm, WebhookRequest(...), secrets)   # 401 / 400 / 404 / 503 errors
    for event in events:
        state = next_deal_state(store.get_deal(event.crm, event.deal_id), event)
        ...                                                          # write unless None
    answer salesforce_ack() for Salesforce, else 200

See ``docs/crm-setup.md`` for each CRM's setup and the generic webhook's shape.
"""

from closedloop.crm.config import (
    CrmConfig,
    CrmSecrets,
    GenericConfig,
    HubSpotConfig,
    PipedriveConfig,
    SalesforceConfig,
    parse_crm_name,
)
from closedloop.crm.errors import (
    CrmApiError,
    CrmApiNotFoundError,
    CrmApiRetryableError,
    CrmError,
    CrmNotConfiguredError,
    CurrencyRateError,
    DealStateError,
    UnknownCrmError,
    WebhookAuthError,
    WebhookPayloadError,
)
from closedloop.crm.generic import (
    GENERIC_SIGNATURE_HEADER,
    GenericDealPayload,
    parse_generic,
    sign_generic,
    verify_generic_signature,
)
from closedloop.crm.http import JsonHttpClient
from closedloop.crm.hubspot import (
    HUBSPOT_DEAL_PROPERTIES,
    HubSpotClient,
    HubSpotDeal,
    HubSpotDealReader,
    hubspot_signed_uri,
    parse_hubspot,
    sign_hubspot_v3,
    verify_hubspot_signature,
)
from closedloop.crm.models import (
    CrmName,
    DealEvent,
    DealLifecycle,
    DealState,
    StageRules,
    WebhookRequest,
    normalise_emails,
)
from closedloop.crm.money import normalise_currency, parse_amount, to_base_currency
from closedloop.crm.pipedrive import (
    PipedriveClient,
    PipedrivePersonReader,
    parse_pipedrive,
    verify_basic_auth,
)
from closedloop.crm.salesforce import (
    SALESFORCE_MAX_NOTIFICATIONS,
    parse_salesforce,
    salesforce_ack,
    salesforce_fault,
    verify_salesforce_token,
)
from closedloop.crm.state import next_deal_state
from closedloop.crm.webhooks import parse_crm_webhook

__all__ = [
    "GENERIC_SIGNATURE_HEADER",
    "HUBSPOT_DEAL_PROPERTIES",
    "SALESFORCE_MAX_NOTIFICATIONS",
    "CrmApiError",
    "CrmApiNotFoundError",
    "CrmApiRetryableError",
    "CrmConfig",
    "CrmError",
    "CrmName",
    "CrmNotConfiguredError",
    "CrmSecrets",
    "CurrencyRateError",
    "DealEvent",
    "DealLifecycle",
    "DealState",
    "DealStateError",
    "GenericConfig",
    "GenericDealPayload",
    "HubSpotClient",
    "HubSpotConfig",
    "HubSpotDeal",
    "HubSpotDealReader",
    "JsonHttpClient",
    "PipedriveClient",
    "PipedriveConfig",
    "PipedrivePersonReader",
    "SalesforceConfig",
    "StageRules",
    "UnknownCrmError",
    "WebhookAuthError",
    "WebhookPayloadError",
    "WebhookRequest",
    "hubspot_signed_uri",
    "next_deal_state",
    "normalise_currency",
    "normalise_emails",
    "parse_amount",
    "parse_crm_name",
    "parse_crm_webhook",
    "parse_generic",
    "parse_hubspot",
    "parse_pipedrive",
    "parse_salesforce",
    "salesforce_ack",
    "salesforce_fault",
    "sign_generic",
    "sign_hubspot_v3",
    "to_base_currency",
    "verify_basic_auth",
    "verify_generic_signature",
    "verify_hubspot_signature",
    "verify_salesforce_token",
]
