"""Reading a form post in any of the three encodings browsers and scripts use, into one flat mapping."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from closedloop.errors import InvalidInputError, UnsupportedMediaTypeError

__all__ = ["FORM_CONTENT_TYPES", "is_html_form", "read_form"]

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_html_form(content_type: str) -> bool:
    """A browser's plain form post (it wants a page back, not JSON)."""
    return content_type.lower().startswith(FORM_CONTENT_TYPES)


def read_form(content_type: str, body: bytes) -> dict[str, Any]:
    """Fields of a JSON object, a url-encoded form or a multipart form (files are refused).

    A repeated field keeps its first value, as most form handlers do.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError("the body is not valid JSON") from exc
        except RecursionError:
            # "[[[[..." a few thousand deep exhausts the decoder's stack: still the client's fault.
            raise InvalidInputError("the body is nested too deeply") from None
        if not isinstance(data, dict):
            raise InvalidInputError("the body must be a JSON object")
        return data
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInputError("the form body cannot be decoded") from exc
        fields: dict[str, Any] = {}
        for key, value in pairs:
            fields.setdefault(key, value)
        return fields
    if kind == "multipart/form-data":
        return _read_multipart(content_type, body)
    raise UnsupportedMediaTypeError(
        f"unsupported content type {kind or '(none)'!r}: send JSON, url-encoded or multipart form data"
    )


def _read_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    if "boundary=" not in content_type:
        raise InvalidInputError("multipart/form-data without a boundary")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise InvalidInputError("the multipart body cannot be parsed")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if part.get_filename():
            raise InvalidInputError("file uploads are not accepted", details=[{"loc": ["body", str(name)]}])
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise InvalidInputError(f"field {name!r} cannot be read", details=[{"loc": ["body", str(name)]}])
        try:
            fields.setdefault(str(name), payload.decode(part.get_content_charset() or "utf-8"))
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidInputError(f"field {name!r} is not valid text") from exc
    return fields
