"""Identify function: form posts (HTML, multipart or JSON) turn a visitor into a lead."""

import os
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from closedloop.api import build_resolver, html_page, preflight, preflight_error, raw_body, request_bodies
from closedloop.clock import now_ms
from closedloop.collect import opts_out
from closedloop.errors import ClientInputError, InvalidInputError
from closedloop.forms import is_html_form, read_form
from closedloop.identify import VISITOR_COOKIE, identify_lead, safe_redirect
from closedloop.models.leads import IdentifyRequest, IdentifyResponse
from closedloop.observability import get_tracer, logger, metrics
from closedloop.settings import IdentifySettings
from closedloop.store import DynamoStore

settings = IdentifySettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
tracer = get_tracer()
app = build_resolver(
    settings,
    title="Closedloop identify",
    documented_bodies=request_bodies(
        {"/identify": IdentifyRequest},
        ("application/json", "application/x-www-form-urlencoded", "multipart/form-data"),
    ),
)
THANKS = "Thank you: we received your details."


def _cookie_visitor_id() -> str | None:
    """The ``_cl_vid`` cookie as sent; identify_lead checks it before it becomes a key."""
    for cookie in app.current_event.cookies or []:
        name, _, value = cookie.partition("=")
        if name.strip() == VISITOR_COOKIE:
            return value.strip() or None
    return None


def _parse(content_type: str) -> IdentifyRequest:
    fields = read_form(content_type, raw_body(app.current_event.raw_event))
    try:
        return IdentifyRequest.model_validate(fields)
    except ValidationError as exc:
        details = [
            {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        fields_named = ", ".join(sorted({d["loc"][1] for d in details if len(d["loc"]) > 1})) or "the body"
        raise InvalidInputError(
            f"these fields are missing or invalid: {fields_named}", details=details
        ) from exc


@app.post("/identify", summary="A form submission: creates or updates the lead", tags=["leads"])
def post_identify():
    content_type = app.current_event.headers.get("content-type", "")
    request = _parse(content_type)
    html_form = is_html_form(content_type)
    redirect = (
        safe_redirect(
            request.redirect, settings.allowed_origins, referer=app.current_event.headers.get("referer")
        )
        if request.redirect
        else None
    )

    result = identify_lead(
        request,
        store=store,
        received_at=now_ms(),
        cookie_visitor_id=_cookie_visitor_id(),
        page_url=app.current_event.headers.get("referer"),
        opted_out=opts_out(app.current_event.headers.get("sec-gpc"), honor_gpc=settings.honor_gpc),
    )
    if result.device_refused:
        metrics.add_metric(name="DeviceLinksRefused", unit=MetricUnit.Count, value=1)
    if result.trapped:
        metrics.add_metric(name="HoneypotSubmissions", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(
            name="LeadsCreated" if result.created else "LeadsUpdated", unit=MetricUnit.Count, value=1
        )
    lead_id, status = result.lead_id, "created" if result.created else "updated"

    if html_form:
        if redirect:
            return Response(
                303, "text/plain", "", headers={"Location": redirect, "Cache-Control": "no-store"}
            )
        return html_page(200, "Thank you", THANKS)
    return Response(
        200, "application/json", IdentifyResponse(lead_id=lead_id, status=status).model_dump_json()
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        preflight(event, max_body_bytes=settings.max_body_bytes, json_text_routes=frozenset())
    except ClientInputError as exc:
        return preflight_error(exc, event, settings)
    return app.resolve(event, context)
