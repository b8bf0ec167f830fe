"""What every HTTP function shares: the resolver, CORS, the error shape, and request preflight.

Errors are mapped to HTTP here and nowhere else. Every error reply has the same JSON shape::

    {"error": {"code": "invalid_request", "message": "...", "details": [{"loc": [...], "msg": "..."}]}}
"""

from __future__ import annotations

import base64
import functools
import html
import json
import sys
from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel

from closedloop.errors import (
    ClientInputError,
    DependencyError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from closedloop.forms import is_html_form, refuse_unpaired_surrogates
from closedloop.observability import logger
from closedloop.settings import ApiSettings

__all__ = [
    "ClosedloopResolver",
    "build_resolver",
    "error_body",
    "html_page",
    "preflight",
    "preflight_error",
    "raw_body",
    "request_bodies",
]

JSON = "application/json"


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"error": {"code": code, "message": message, "details": details or []}})


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in errors
    ]


def _cors(settings: ApiSettings) -> CORSConfig | None:
    if not settings.allowed_origins:
        return None
    first, *rest = settings.allowed_origins
    return CORSConfig(
        allow_origin=first,
        extra_origins=rest,
        allow_headers=["Content-Type"],
        max_age=600,
        allow_credentials=False,
    )


ERROR_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1>{title}</h1><p>{message}</p><p><a href="javascript:history.back()">Go back</a> and try again.</p>
</body></html>"""


def html_page(status: int, title: str, message: str) -> Response:
    """A minimal readable page, for browsers that posted a plain HTML form."""
    body = ERROR_PAGE.format(title=html.escape(title), message=html.escape(message))
    return Response(status, "text/html; charset=utf-8", body, headers={"Cache-Control": "no-store"})


def request_bodies(models: dict[str, type[BaseModel]], content_types: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` objects for routes that read their body themselves (several encodings)."""
    return {
        path: {
            "required": True,
            "content": {kind: {"schema": model.model_json_schema()} for kind in content_types},
        }
        for path, model in models.items()
    }


class ClosedloopResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver that knows its own OpenAPI document (see :meth:`document`)."""

    def __init__(
        self,
        *,
        title: str,
        documented_bodies: dict[str, dict[str, Any]] | None = None,
        cors: CORSConfig | None = None,
    ) -> None:
        super().__init__(cors=cors, enable_validation=True)
        self.title = title
        self.documented_bodies = documented_bodies or {}

    def document(self) -> dict[str, Any]:
        """This function's routes as OpenAPI 3.1, with the bodies of routes that parse their own body.

        ``closedloop.openapi`` merges the documents of every function into the API's one document.
        """
        document: dict[str, Any] = json.loads(self.get_openapi_json_schema(title=self.title, version="1"))
        for path, body in self.documented_bodies.items():
            document["paths"][path]["post"]["requestBody"] = body
        return document


def build_resolver(
    settings: ApiSettings,
    *,
    title: str,
    documented_bodies: dict[str, dict[str, Any]] | None = None,
    published_document: str | None = None,
) -> ClosedloopResolver:
    """An HTTP API (payload v2) resolver with validation, CORS for the allowed origins only, the error
    mapping, ``GET /health`` and ``GET /openapi.json``.

    ``documented_bodies`` (path -> requestBody) documents the bodies of POST routes that parse their
    own body, so the OpenAPI document describes every route. ``published_document`` names a file of
    the ``closedloop`` package that ``GET /openapi.json`` serves instead of this function's own
    document: the API's whole document (``closedloop/openapi.json``, made by ``closedloop.openapi``).
    """
    app = ClosedloopResolver(title=title, documented_bodies=documented_bodies, cors=_cors(settings))

    def wants_page() -> bool:
        return is_html_form(app.current_event.headers.get("content-type", ""))

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(error.get("type") == "json_invalid" for error in errors):
            message = "the body is not valid JSON"
        else:
            message = "the request does not match the schema: see details"
        return Response(400, JSON, error_body("invalid_request", message, _validation_details(errors)))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response:
        content_type = app.current_event.headers.get("content-type", "")
        return Response(
            415, JSON, error_body("unsupported_media_type", f"unsupported content type {content_type!r}")
        )

    @app.exception_handler(ClientInputError)
    def _client_error(exc: ClientInputError) -> Response:
        if wants_page():
            return html_page(exc.status_code, "We could not read that form", exc.message)
        return Response(exc.status_code, JSON, error_body(exc.code, exc.message, exc.details))

    @app.exception_handler(DependencyError)
    def _dependency(exc: DependencyError) -> Response:
        logger.warning("dependency failed", error=type(exc).__name__, cause=type(exc.__cause__).__name__)
        return Response(
            503,
            JSON,
            error_body(exc.code, "a dependency is unavailable: retry the same request later"),
            headers={"Retry-After": "5"},
        )

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        path = app.current_event.path
        return Response(
            404, JSON, error_body("not_found", f"no route {app.current_event.http_method} {path}")
        )

    @app.get("/health", summary="Liveness check", tags=["operations"])
    def health() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get(
        "/openapi.json", summary="This API's OpenAPI document", tags=["operations"], include_in_schema=False
    )
    def openapi():  # no return annotation: a Response annotation breaks schema generation
        if published_document is not None:
            return Response(200, JSON, _package_file(published_document))
        return Response(200, JSON, json.dumps(app.document()))

    return app


@functools.cache
def _package_file(name: str) -> str:
    """A data file of the ``closedloop`` package (read once per warm function)."""
    return resources.files("closedloop").joinpath(name).read_text(encoding="utf-8")


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body)
        except ValueError:
            return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


# A real collect body nests three levels (``{"events": [{"props": {...}}]}``). Far deeper is hostile: the
# parser recurses per level and, near Python's recursion limit, raises RecursionError (a 500), and how
# near depends on the stack of whoever parses. Refusing it here keeps every later parse shallow.
MAX_JSON_DEPTH = 32


def _json_depth(value: Any) -> int:
    """How deeply ``value`` nests arrays and objects, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep() -> InvalidInputError:
    return InvalidInputError(
        f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
        details=[{"loc": ["body"], "msg": f"at most {MAX_JSON_DEPTH} levels", "type": "json_too_deep"}],
    )


def _check_json_text(data: bytes | str) -> str:
    """The body as text, once it is known that the resolver can parse it without crashing.

    Invalid JSON is left to the resolver, which names the position; what would make it raise something
    else (a 500) is refused here: bytes that are not UTF-8, nesting past ``MAX_JSON_DEPTH``, an integer
    longer than Python converts (``sys.get_int_max_str_digits()``, 4,300 digits), and a string that
    holds an unpaired UTF-16 surrogate (valid JSON, but no text DynamoDB can store).
    """
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            "the body is not valid UTF-8: JSON must be sent as UTF-8",
            details=[{"loc": ["body", exc.start], "msg": exc.reason, "type": "utf8_invalid"}],
        ) from exc
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # int() refuses a number of more than 4,300 digits
        limit = sys.get_int_max_str_digits()
        raise InvalidInputError(
            f"a number in the body has more than {limit} digits",
            details=[{"loc": ["body"], "msg": f"at most {limit} digits", "type": "number_too_long"}],
        ) from exc
    if _json_depth(parsed) > MAX_JSON_DEPTH:
        raise _too_deep()
    refuse_unpaired_surrogates(parsed)
    return text


def preflight(event: dict[str, Any], *, max_body_bytes: int, json_text_routes: frozenset[str]) -> None:
    """Checks that must run before the resolver parses the body.

    - A body over ``max_body_bytes`` is refused before anything parses it (413).
    - ``json_text_routes`` are the routes whose body the resolver parses as JSON (``/collect``).
      ``navigator.sendBeacon`` can only send ``text/plain``: such a body is JSON by contract, so it is
      handed to validation as JSON. Any other type than JSON, ``text/plain`` or none is refused (415)
      before the resolver would try to parse it (a multipart type without a boundary made it raise: a
      500). A body the resolver's parser would crash on is a 400 here (see ``_check_json_text``), and
      a base64-encoded body is handed on decoded.
    """
    body = event.get("body")
    if body:
        # base64 inflates by 4/3: measure what the client sent.
        size = (
            len(body) * 3 // 4
            if event.get("isBase64Encoded")
            else len(body.encode("utf-8", errors="surrogatepass"))
        )
        if size > max_body_bytes:
            raise PayloadTooLargeError(f"the body is {size} bytes; the limit is {max_body_bytes}")
    route = event.get("rawPath") or ""
    if route not in json_text_routes:
        return
    headers = event.get("headers") or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in {"", "application/json", "text/plain"}:
        raise UnsupportedMediaTypeError(f"unsupported content type {kind!r}: send application/json")
    if kind == "text/plain":
        event["headers"] = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        event["headers"]["content-type"] = JSON
    if body:
        event["body"] = _check_json_text(raw_body(event) if event.get("isBase64Encoded") else body)
        event["isBase64Encoded"] = False


def preflight_error(exc: ClientInputError, event: dict[str, Any], settings: ApiSettings) -> dict[str, Any]:
    """The HTTP API reply for an error raised by ``preflight`` (outside the resolver), with CORS."""
    headers = {"Content-Type": JSON}
    cors = _cors(settings)
    if cors is not None:
        origin = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "origin"), None)
        headers.update(cors.to_dict(origin))
    return {
        "statusCode": exc.status_code,
        "headers": headers,
        "body": error_body(exc.code, exc.message, exc.details),
        "isBase64Encoded": False,
    }
