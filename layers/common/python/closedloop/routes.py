"""Every HTTP route and the function that serves it: one list, read by the CDK app and the local gateway."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ROUTES", "Route", "function_for"]


class Route(NamedTuple):
    method: str
    path: str  # HTTP API route syntax: ``{name}`` is a path parameter
    function: str  # folder under functions/


ROUTES: tuple[Route, ...] = (
    Route("GET", "/t.js", "collect"),
    # HTTP API routes match the method exactly: without this, `curl -I .../t.js` (docs/deploy.md) is a 404.
    Route("HEAD", "/t.js", "collect"),
    Route("POST", "/collect", "collect"),
    Route("GET", "/collect.gif", "collect"),
    Route("GET", "/health", "collect"),
    Route("GET", "/openapi.json", "collect"),
    Route("POST", "/identify", "identify"),
    Route("POST", "/webhooks/{crm}", "crm_webhook"),
)


def _matches(pattern: str, path: str) -> dict[str, str] | None:
    want, got = pattern.strip("/").split("/"), path.strip("/").split("/")
    if len(want) != len(got):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(want, got, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            if not actual:
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def function_for(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving ``method path`` and its path parameters (``OPTIONS`` goes to the path's function)."""
    for route in ROUTES:
        if route.method != method.upper() and method.upper() != "OPTIONS":
            continue
        params = _matches(route.path, path)
        if params is not None:
            return route, params
    return None
