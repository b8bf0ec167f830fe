"""Reading a form post in any of the three encodings browsers and scripts use, into one flat mapping."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from closedloop.errors import InvalidInputError, UnsupportedMediaTypeError

__all__ = ["FORM_CONTENT_TYPES", "is_html_form", "read_form", "refuse_unpaired_surrogates"]

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
        refuse_unpaired_surrogates(data)
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
        fields = _read_multipart(content_type, body)
        refuse_unpaired_surrogates(fields)  # a part may name a charset (utf-7) that decodes to surrogates
        return fields
    raise UnsupportedMediaTypeError(
        f"unsupported content type {kind or '(none)'!r}: send JSON, url-encoded or multipart form data"
    )


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """A name that may hold a surrogate, made printable (``\\ud800``) for an error message."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def refuse_unpaired_surrogates(data: Any, loc: tuple[str | int, ...] = ("body",)) -> None:
    """Refuse JSON whose strings (values or keys) hold an unpaired UTF-16 surrogate (``"\\ud800"``).

    JSON's ``\\uXXXX`` escapes can spell half of a surrogate pair, which is no Unicode character: Python
    decodes it, but no UTF-8 encoder (boto3's, DynamoDB's) can write it, so the request would fail at
    the store as a 503 that no retry can cure. RFC 8259 (section 8.2) leaves such strings' behaviour
    unpredictable; refusing them, naming the field, is the one answer that helps the sender.

    Raises
    ------
    InvalidInputError
        Naming the first field (a dotted path under the body) whose text is not valid Unicode.
    """
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(data, loc)]
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            if not _is_text(value):
                _refuse(where)
        elif isinstance(value, dict):
            for key, child in value.items():
                if not _is_text(key):
                    _refuse((*where, _printable(key)))
                pending.append((child, (*where, key)))
        elif isinstance(value, list):
            pending.extend((child, (*where, index)) for index, child in enumerate(value))


def _refuse(where: tuple[str | int, ...]) -> None:
    path = [part if isinstance(part, int) else _printable(part) for part in where]
    field = ".".join(str(part) for part in path[1:]) or "the body"
    raise InvalidInputError(
        f"the field {field} is not valid text: it holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)",
        details=[
            {
                "loc": path,
                "msg": "JSON \\u escapes of surrogates must come in pairs",
                "type": "unpaired_surrogate",
            }
        ],
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
