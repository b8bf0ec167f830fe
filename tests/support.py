"""Test helpers shared by the suites: HTTP API v2 events as API Gateway builds them."""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from closedloop.local.gateway import LambdaContextStub, build_http_api_event
from closedloop.routes import function_for

BROWSER_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def api_event(
    method: str,
    path: str,
    *,
    body: bytes | str | dict[str, Any] | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The payload v2.0 event for one request, with a browser's user agent unless told otherwise."""
    match = function_for(method, path)
    assert match is not None, f"no route for {method} {path}"
    route, params = match
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
        content_type = content_type or "application/json"
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body or b""
    all_headers = {"user-agent": BROWSER_UA, "host": "api.acme.test"}
    if content_type:
        all_headers["content-type"] = content_type
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    return build_http_api_event(
        method=method,
        raw_path=path,
        raw_query=urlencode(query or {}),
        headers=all_headers,
        body=raw,
        route=route,
        path_parameters=params,
    )


def invoke(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Call a handler; return status, lower-cased headers and the body (JSON decoded when it is JSON)."""
    reply = module.handler(event, LambdaContextStub(function_name="test"))
    headers = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
    for key, values in (reply.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ", ".join(values)
    body: Any = reply.get("body") or ""
    if reply.get("isBase64Encoded"):
        body = base64.b64decode(body)
    elif headers.get("content-type", "").startswith("application/json") and body:
        body = json.loads(body)
    return int(reply["statusCode"]), headers, body
