"""Collect function: the tracker script, page views (JSON, beacon, pixel), health and OpenAPI."""

import os
from typing import Annotated, Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from closedloop.api import build_resolver, preflight, preflight_error
from closedloop.clock import now_ms
from closedloop.collect import opts_out, record_events
from closedloop.errors import ClientInputError, DependencyError
from closedloop.models.collect import CollectBatch, CollectBody, CollectEvent, CollectResponse
from closedloop.observability import logger, metrics
from closedloop.settings import CollectSettings
from closedloop.store import DynamoStore
from closedloop.tracker import TRACKER_CONTENT_TYPE, tracker_script

settings = CollectSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
# GET /openapi.json serves the whole API's document (every function's routes): closedloop.openapi.
app = build_resolver(settings, title="Closedloop collect", published_document="openapi.json")

# The smallest transparent GIF (43 bytes).
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}


def _store_events(events: list[CollectEvent], sent_at: int | None) -> CollectResponse:
    headers = app.current_event.headers
    opted_out = opts_out(headers.get("sec-gpc"), honor_gpc=settings.honor_gpc)
    result = record_events(
        events,
        store=store,
        received_at=now_ms(),
        user_agent=headers.get("user-agent"),
        site_domains=settings.site_domains,
        sent_at=sent_at,
        retention_days=settings.retention_days,
        opted_out=opted_out,
        max_event_age_ms=settings.max_event_age_hours * 3_600_000,
    )
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="EventsDuplicated", unit=MetricUnit.Count, value=result.duplicates)
    dropped = "OptOutEventsDropped" if opted_out else "BotEventsDropped"
    metrics.add_metric(name=dropped, unit=MetricUnit.Count, value=result.dropped)
    return result


@app.get("/t.js", summary="The first-party tracker script", tags=["tracker"])
@app.head("/t.js", summary="The tracker script's headers (a deploy check, a CDN)", tags=["tracker"])
def get_tracker():
    return Response(
        200, TRACKER_CONTENT_TYPE, tracker_script(), headers={"Cache-Control": "public, max-age=3600"}
    )


@app.post("/collect", summary="Record one event or a batch of up to 50", tags=["tracker"])
def post_collect(body: Annotated[CollectBody, Body()]) -> CollectResponse:
    if isinstance(body, CollectBatch):
        return _store_events(list(body.events), body.sent_at)
    return _store_events([body], body.sent_at)


# The pixel's query parameters -> CollectEvent fields (documented in closedloop.openapi).
PIXEL_FIELDS = {"v": "visitor_id", "e": "event_id", "u": "url", "r": "referrer", "t": "title", "ts": "ts"}


@app.get(
    "/collect.gif", summary="Record a page view from query parameters; always a 1x1 GIF", tags=["tracker"]
)
def get_pixel():
    # Read here, not declared as validated parameters: the resolver answers a JSON 400 to a repeated
    # parameter, and an image tag must always get its GIF. The first value of a parameter wins.
    query: dict[str, str] = {}
    for key, value in parse_qsl(
        app.current_event.raw_event.get("rawQueryString") or "", keep_blank_values=True
    ):
        query.setdefault(key, value)
    try:
        event = CollectEvent.model_validate(
            {field: query[name] for name, field in PIXEL_FIELDS.items() if query.get(name)}
        )
        _store_events([event], None)
    except (ValidationError, ClientInputError) as exc:
        # An image tag can neither show an error nor retry: count it, answer the pixel anyway.
        logger.info("pixel request rejected", error=type(exc).__name__)
        metrics.add_metric(name="PixelRejected", unit=MetricUnit.Count, value=1)
    except DependencyError as exc:
        logger.warning("pixel event not stored", error=type(exc).__name__)
        metrics.add_metric(name="PixelNotStored", unit=MetricUnit.Count, value=1)
    return Response(200, "image/gif", PIXEL, headers=NO_CACHE)


# No Powertools Tracer here: Lambda's active tracing records this function (see closedloop.observability).
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        preflight(event, max_body_bytes=settings.max_body_bytes, json_text_routes=frozenset({"/collect"}))
    except ClientInputError as exc:
        return preflight_error(exc, event, settings)
    return app.resolve(event, context)
