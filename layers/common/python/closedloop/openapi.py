"""The API's one OpenAPI document, merged from what each function documents of its own routes.

Each function's resolver knows its own routes (``ClosedloopResolver.document``); the API has one
``GET /openapi.json`` (served by the collect function) for all of them. The collect function must not
import the other functions' code (its cold start is budgeted, and each function is deployed with its own
folder only), so the merged document is generated here at development time and shipped as a data file
of the package, ``closedloop/openapi.json``; a test fails when it is stale::

    python -m closedloop.openapi          # rewrite closedloop/openapi.json
    python -m closedloop.openapi --check  # exit 1 when it is stale

What the resolvers cannot know is added here, in one table per route: the statuses each route really
answers with (the error shape of ``closedloop.api``, the tracker's JavaScript, the pixel's GIF, the
identify function's page and redirect for HTML forms, Salesforce's SOAP replies) and the CRM webhook's
bodies, which its adapters read themselves. The fuzzing test (``tests/e2e/test_fuzz_api.py``) holds
every response of every route to this document.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from closedloop.routes import ROUTES

__all__ = ["PUBLISHED_DOCUMENT", "ErrorReply", "build_api_document", "main", "merge_documents"]

PUBLISHED_DOCUMENT = Path(__file__).with_name("openapi.json")
TITLE = "Closedloop"
CRMS = ("hubspot", "salesforce", "pipedrive", "generic")


class ErrorInfo(BaseModel):
    code: str = Field(description="invalid_request, payload_too_large, unauthorized, not_found, ...")
    message: str = Field(description="What is wrong, for a person to read.")
    details: list[dict[str, Any]] = Field(
        default_factory=list, description="One entry per problem, e.g. {loc: [body, email], msg, type}."
    )


class ErrorReply(BaseModel):
    """Every JSON error reply of the API (``closedloop.api.error_body``)."""

    error: ErrorInfo


_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorReply"}
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_SOAP = "text/xml; charset=utf-8"
_TEXT_SCHEMA = {"type": "string"}

_DESCRIPTIONS = {
    400: "The request is not valid; the reply says what is wrong. Nothing was stored.",
    401: "Missing, wrong or stale signature or credentials. Nothing was stored.",
    404: "No such CRM, or that CRM is not configured.",
    413: "The body is larger than the function accepts.",
    415: "The content type is not one this route reads.",
    503: "A dependency failed; retry the same request later (every write is idempotent).",
}


def _errors(*statuses: int, also: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON error replies (and ``also``: other media types the same error may come in)."""
    content = {_JSON: {"schema": _ERROR_REF}, **(also or {})}
    return {
        str(status): {
            "description": _DESCRIPTIONS[status],
            "content": content,
            **({"headers": {"Retry-After": {"schema": {"type": "string"}}}} if status == 503 else {}),
        }
        for status in statuses
    }


# Per route: responses that replace or complete what the resolver generated ("422" is always dropped:
# validation errors are answered 400 with the error shape).
_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/t.js"): {
        "200": {
            "description": "The tracker script.",
            "content": {"text/javascript; charset=utf-8": {"schema": _TEXT_SCHEMA}},
        }
    },
    ("HEAD", "/t.js"): {"200": {"description": "The tracker script's headers, without the script."}},
    ("POST", "/collect"): _errors(400, 413, 415, 503),
    ("GET", "/collect.gif"): {
        "200": {
            "description": "A transparent 1x1 GIF, whatever became of the event.",
            "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    ("POST", "/identify"): {
        "200": {
            "description": "The lead (JSON), or a thank-you page for a plain HTML form without redirect.",
            "content": {
                _JSON: {"schema": {"$ref": _REF.format(model="IdentifyResponse")}},
                _HTML: {"schema": _TEXT_SCHEMA},
            },
        },
        "303": {
            "description": "A plain HTML form with a `redirect` field on an allowed origin.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **_errors(400, 413, 503, also={_HTML: {"schema": _TEXT_SCHEMA}}),
        **_errors(415),
    },
    ("POST", "/webhooks/{crm}"): {
        "200": {
            "description": "Every event of the delivery is stored (Salesforce: its SOAP acknowledgement).",
            "content": {
                _JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "received": {"type": "integer", "description": "Deal events in the delivery."},
                            "duplicates": {"type": "integer", "description": "Of which stored before."},
                        },
                        "required": ["received", "duplicates"],
                    }
                },
                _SOAP: {"schema": _TEXT_SCHEMA},
            },
        },
        **_errors(400, 401, 404, 413, 415, 503, also={_SOAP: {"schema": _TEXT_SCHEMA}}),
    },
}

# The CRM webhook's bodies: each adapter verifies the signature over the raw bytes, then reads them.
_REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/webhooks/{crm}"): {
        "required": True,
        "description": "As the CRM sends it: JSON (HubSpot, Pipedrive, generic) or a SOAP Outbound "
        "Message (Salesforce). See docs/crm-setup.md.",
        "content": {
            _JSON: {"schema": {"type": "object"}},
            "text/xml": {"schema": _TEXT_SCHEMA},
        },
    }
}
# More media types a route reads, besides those its resolver documents.
_MORE_BODY_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/collect"): {
        "text/plain": {
            "schema": {
                "type": "string",
                "description": "The same JSON, sent as text/plain (navigator.sendBeacon can send no other).",
            }
        }
    }
}


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


# Parameters a route reads itself (the pixel reads its query string: a repeated parameter must not
# turn the GIF into a JSON error), or documents more precisely than its resolver can.
_PARAMETERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/collect.gif"): [
        _query("v", "The visitor id."),
        _query("e", "The event id (a retry with the same id is stored once)."),
        _query("u", "The page URL."),
        _query("r", "The referrer."),
        _query("t", "The page title."),
        _query("ts", "Client time of the page view, ms since the epoch."),
    ],
    ("POST", "/webhooks/{crm}"): [
        {
            "name": "crm",
            "in": "path",
            "required": True,
            "description": "The CRM that sends the delivery.",
            "schema": {"type": "string", "enum": list(CRMS)},
        }
    ],
}


def merge_documents(documents: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge each function's own document (by folder name) into the API's document.

    Every route of ``closedloop.routes`` is taken from the function that serves it, completed by this
    module's tables; components are the union of the functions' (a name defined twice must agree).

    Raises
    ------
    ValueError
        A route is missing from its function's document, or two functions define one component
        differently.
    """
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for route in ROUTES:
        if route.path == "/openapi.json":
            continue  # the document does not describe itself
        own = documents[route.function]
        operation = own.get("paths", {}).get(route.path, {}).get(route.method.lower())
        if operation is None:
            raise ValueError(f"{route.function} does not document {route.method} {route.path}")
        operation = json.loads(json.dumps(operation))
        key = (route.method, route.path)
        responses = {k: v for k, v in operation.get("responses", {}).items() if k != "422"}
        responses.update(_RESPONSES.get(key, {}))
        operation["responses"] = dict(sorted(responses.items()))
        if key in _REQUEST_BODIES:
            operation["requestBody"] = _REQUEST_BODIES[key]
        if key in _MORE_BODY_TYPES:
            operation["requestBody"]["content"].update(_MORE_BODY_TYPES[key])
        if key in _PARAMETERS:
            operation["parameters"] = _PARAMETERS[key]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
        for name, schema in own.get("components", {}).get("schemas", {}).items():
            if name in {"HTTPValidationError", "ValidationError"}:
                continue
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"component {name} is defined differently by two functions")
            schemas[name] = schema
    schemas["ErrorReply"] = ErrorReply.model_json_schema(ref_template=_REF)
    for name, schema in schemas["ErrorReply"].pop("$defs", {}).items():
        schemas[name] = schema
    _add_identify_response(schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "1",
            "description": "Closedloop's HTTP API: the tracker, forms and CRM webhooks. "
            "Every error is a JSON `ErrorReply` (Salesforce gets SOAP faults, HTML forms a page).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _add_identify_response(schemas: dict[str, Any]) -> None:
    from closedloop.models.leads import IdentifyResponse

    schemas["IdentifyResponse"] = IdentifyResponse.model_json_schema(ref_template=_REF)


# Settings the functions validate when their module loads; none of them changes the document.
_PLACEHOLDER_ENV = {
    "TABLE_NAME": "closedloop-openapi",
    "BUCKET_NAME": "closedloop-openapi",
    "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:openapi",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def build_api_document() -> dict[str, Any]:
    """Load each HTTP function from ``functions/`` and merge their documents (development time)."""
    from closedloop.local.gateway import load_function

    saved = {key: os.environ.get(key) for key in _PLACEHOLDER_ENV}
    os.environ.update({k: v for k, v in _PLACEHOLDER_ENV.items() if not os.environ.get(k)})
    try:
        names = sorted({route.function for route in ROUTES})
        return merge_documents({name: load_function(name).app.document() for name in names})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``closedloop/openapi.json``, or with ``--check`` exit 1 when it is stale."""
    args = sys.argv[1:] if argv is None else argv
    text = render(build_api_document())
    if "--check" in args:
        current = PUBLISHED_DOCUMENT.read_text(encoding="utf-8") if PUBLISHED_DOCUMENT.exists() else ""
        if current != text:
            print(f"{PUBLISHED_DOCUMENT} is stale: run python -m closedloop.openapi", file=sys.stderr)
            return 1
        return 0
    PUBLISHED_DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {PUBLISHED_DOCUMENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
