"""A tiny JSON-over-HTTPS client on the standard library, for the CRM lookups (no ``requests`` in the layer).

It never retries: the webhook must answer inside the CRM's own timeout (Pipedrive: 10 s), so a slow or
failing CRM API becomes :class:`~closedloop.crm.errors.CrmApiRetryableError` (503) and the CRM redelivers
later. Errors never carry the token, the response body or personal data.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urlsplit

from closedloop.crm.errors import CrmApiError, CrmApiNotFoundError, CrmApiRetryableError

__all__ = ["JsonHttpClient"]

_MAX_RESPONSE_BYTES = 2 * 1024 * 1024


def _retry_after(headers: Message | None) -> float | None:
    if headers is None:
        return None
    # Retry-After (HubSpot, Pipedrive), else Pipedrive's x-ratelimit-reset: seconds until the window
    # (or, once the daily token budget is spent, the day) resets.
    for name in ("Retry-After", "x-ratelimit-reset"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue  # an HTTP date: the CRM's own retry schedule is good enough
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError, hence a CrmApiError


class JsonHttpClient:
    """Send JSON requests to one API and read JSON answers.

    Parameters
    ----------
    base_url
        ``http(s)://host[:port][/prefix]``; paths are appended to it.
    headers
        Sent with every request (authorization, for example).
    timeout
        Seconds for connecting and for each read.
    service
        The API's name in error messages (``"HubSpot"``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 3.0,
        service: str = "CRM",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.service = service
        self._headers = {"Accept": "application/json", "User-Agent": "closedloop-crm/1", **(headers or {})}
        # No proxies from the environment, and no redirect followed: urllib would resend our token.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` (with ``query``) and return the decoded JSON body.

        Raises
        ------
        CrmApiNotFoundError
            On a 404.
        CrmApiRetryableError
            On a timeout, a connection error, a 429 or a 5xx.
        CrmApiError
            On any other error status or a body that is not JSON.
        """
        url = f"{self.base_url}{path}"
        if query:
            url = f"{url}?{urlencode(query)}"
        # The base URL is checked to be http(s) in __init__: no file:// or custom schemes.
        request = urllib.request.Request(url, headers=self._headers, method="GET")  # noqa: S310
        return self._send(request, path)

    def post_json(self, path: str, payload: object, *, label: str | None = None) -> Any:
        """POST ``payload`` as JSON to ``path`` and return the decoded JSON body (errors as ``get_json``).

        ``label`` names the call in error messages instead of the path (a path holding an e-mail).
        """
        return self.send_json("POST", path, payload, label=label)

    def patch_json(
        self, path: str, payload: object, *, query: Mapping[str, str] | None = None, label: str | None = None
    ) -> Any:
        """PATCH ``payload`` as JSON to ``path`` (errors as ``get_json``; a 204 returns ``None``)."""
        return self.send_json("PATCH", path, payload, query=query, label=label)

    def send_json(
        self,
        method: str,
        path: str,
        payload: object,
        *,
        query: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> Any:
        """Send ``payload`` as JSON with ``method`` and return the decoded JSON body."""
        data = json.dumps(payload).encode()
        headers = {**self._headers, "Content-Type": "application/json"}
        url = f"{self.base_url}{path}"
        if query:
            url = f"{url}?{urlencode(query)}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        return self._send(request, label or path)

    def post_form(self, path: str, fields: Mapping[str, str], *, label: str | None = None) -> Any:
        """POST url-encoded ``fields`` (an OAuth token request) and return the decoded JSON body."""
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        url = f"{self.base_url}{path}"
        data = urlencode(fields).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
        return self._send(request, label or path)

    def _send(self, request: urllib.request.Request, path: str) -> Any:
        what = f"{self.service} API {request.get_method()} {path.split('?')[0]}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read(_MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status == 404:
                raise CrmApiNotFoundError(f"{what}: not found", status=status) from None
            if status == 429 or status >= 500:
                raise CrmApiRetryableError(
                    f"{what}: answered {status}", status=status, retry_after=_retry_after(exc.headers)
                ) from None
            raise CrmApiError(f"{what}: answered {status}", status=status) from None
        except TimeoutError as exc:
            raise CrmApiRetryableError(f"{what}: timed out after {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            raise CrmApiRetryableError(f"{what}: unreachable ({type(exc.reason).__name__})") from exc
        except OSError as exc:
            raise CrmApiRetryableError(f"{what}: connection failed ({type(exc).__name__})") from exc
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise CrmApiError(f"{what}: answer larger than {_MAX_RESPONSE_BYTES} bytes")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise CrmApiError(f"{what}: answer is not JSON") from None
