"""CRM webhook function: ``POST /webhooks/{crm}`` verifies a delivery, stores its deal events, answers.

Every event of a delivery is validated before the first write (a bad one is a 400 with nothing stored),
and the answer is a 2xx only once every event is stored, so a CRM's retry is always safe. Salesforce gets
its SOAP acknowledgement (and a SOAP fault, with the same 4xx/5xx status, when refused); the others a
small JSON count.
"""

import json
import os
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from closedloop.api import build_resolver, preflight, preflight_error, raw_body
from closedloop.clock import now_ms
from closedloop.crm import CrmName, WebhookRequest, parse_crm_name, salesforce_ack, salesforce_fault
from closedloop.deals import WebhookSecret, parse_delivery, record_delivery
from closedloop.errors import ClientInputError, ClosedloopError, InvalidInputError
from closedloop.observability import METRICS_NAMESPACE, get_tracer, logger, metrics
from closedloop.settings import WebhookSettings
from closedloop.store import DynamoStore

settings = WebhookSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
webhook_secret = WebhookSecret(settings.webhook_secret_arn, max_age=settings.webhook_secret_max_age)
tracer = get_tracer()
app = build_resolver(settings, title="Closedloop CRM webhooks")

SOAP_XML = "text/xml; charset=utf-8"


def _webhook_request(event: dict[str, Any]) -> WebhookRequest:
    """The delivery as the CRM sent it: the full URL it called (HubSpot signs it), headers, raw body."""
    context = event.get("requestContext") or {}
    url = f"https://{context.get('domainName', '')}{event.get('rawPath', '')}"
    if event.get("rawQueryString"):
        url = f"{url}?{event['rawQueryString']}"
    try:
        return WebhookRequest(
            method=(context.get("http") or {}).get("method", "POST"),
            url=url,
            headers={name.lower(): value for name, value in (event.get("headers") or {}).items()},
            body=raw_body(event),
        )
    except ValidationError as exc:
        raise InvalidInputError("the request's URL or headers are not readable (too long?)") from exc


def _count_by_crm(name: str, value: int, **dimensions: str) -> None:
    """A metric with its own dimensions (per CRM, per reason), not shared with the function's others."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=METRICS_NAMESPACE,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


@app.post(
    "/webhooks/<crm>", summary="A CRM's deal events (HubSpot, Salesforce, Pipedrive, generic)", tags=["crm"]
)
def post_webhook(crm: str):  # no return annotation: Salesforce's answer is XML
    name = "unknown"
    try:
        name = parse_crm_name(crm).value
        events = parse_delivery(name, _webhook_request(app.current_event.raw_event), webhook_secret)
        result = record_delivery(events, store=store, received_at=now_ms())
    except ClosedloopError as exc:
        reason = getattr(exc, "code", type(exc).__name__)
        logger.info("webhook refused", crm=name, reason=reason)
        _count_by_crm("WebhooksRejected", 1, crm=name, reason=reason)
        raise
    logger.info(
        "webhook stored",
        crm=name,
        received=result.received,
        duplicates=result.duplicates,
        applied=result.applied,
        offline_leads=result.offline_leads,
        contacts_dropped=result.contacts_dropped,
    )
    _count_by_crm("WebhooksAccepted", 1, crm=name)
    _count_by_crm("DealEventsStored", result.received - result.duplicates, crm=name)
    _count_by_crm("DealEventsDuplicated", result.duplicates, crm=name)
    _count_by_crm("OfflineLeadsCreated", result.offline_leads, crm=name)
    if result.contacts_dropped:
        _count_by_crm("DealContactsDropped", result.contacts_dropped, crm=name)
    if name == CrmName.SALESFORCE:
        return Response(200, SOAP_XML, salesforce_ack())
    return Response(
        200, "application/json", json.dumps({"received": result.received, "duplicates": result.duplicates})
    )


def _as_soap_fault(reply: dict[str, Any]) -> dict[str, Any]:
    """Salesforce reads SOAP: the same status, the error's message as a fault it shows the admin."""
    try:
        message = json.loads(reply.get("body") or "")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = "the request was refused"
    headers = {**(reply.get("headers") or {}), "Content-Type": SOAP_XML}
    body = salesforce_fault(str(message), server=int(reply["statusCode"]) >= 500)
    return {**reply, "headers": headers, "body": body, "isBase64Encoded": False}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        preflight(event, max_body_bytes=settings.max_body_bytes, json_text_routes=frozenset())
    except ClientInputError as exc:
        reply = preflight_error(exc, event, settings)
    else:
        reply = app.resolve(event, context)
    crm = str((event.get("pathParameters") or {}).get("crm", "")).strip().lower()
    if crm == CrmName.SALESFORCE and int(reply["statusCode"]) >= 400:
        return _as_soap_fault(reply)
    return reply
