"""What a visit means: its traffic source, parsed server-side from the page URL and the referrer.

Precedence, GA4-like (see ``docs/channels.md``):

1. UTM tags. When any ``utm_*`` parameter is present, the tags name the visit and the referrer is
   ignored; a missing ``utm_source``/``utm_medium`` comes from the click id if there is one, else is
   ``"(not set)"``.
2. A click id of an ad platform (``gclid`` -> ``google / cpc``, ``msclkid`` -> ``bing / cpc``, ...).
   ``fbclid`` is not proof of an ad (Meta adds it to organic links too): the referrer names the visit
   when there is one, else ``facebook / social``.
3. An external referrer: a listed search engine gives ``<engine name> / organic`` (``google / organic``);
   any other gives ``<host without "www."> / referral`` (``linkedin.com / referral``).
4. Otherwise ``(direct) / (none)``. A self-referral (a referrer on the site's own domains) counts as no
   referrer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import SplitResult, parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from closedloop.channels import CLICK_ID_PLATFORMS, Channel, SourceCategory, SourceLists, classify_channel

__all__ = [
    "CLICK_ID_MAX_LENGTH",
    "CLICK_ID_PARAMETERS",
    "MAX_URL_LENGTH",
    "UTM_MAX_LENGTH",
    "UTM_PARAMETERS",
    "InvalidUrlError",
    "TrafficSource",
    "parse_traffic_source",
]

UTM_PARAMETERS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id")
"""The UTM query parameters read from the page URL."""

CLICK_ID_PARAMETERS = tuple(CLICK_ID_PLATFORMS)
"""The click-id query parameters read from the page URL, in precedence order."""

CLICK_ID_MAX_LENGTH = 1000
"""Longest click id kept (TikTok's ``ttclid`` runs to several hundred characters); longer ones are ignored."""

UTM_MAX_LENGTH = 1000
"""UTM values are cut to this many characters so a runaway tag cannot bloat every touch record."""

MAX_URL_LENGTH = 16_384
"""Longest page URL accepted; longer is refused as invalid."""

_WANTED_PARAMETERS = frozenset(UTM_PARAMETERS) | frozenset(CLICK_ID_PARAMETERS)
_WEB_SCHEMES = frozenset({"http", "https"})
# Android apps send "android-app://<package id>/" as the referrer; the package id stands in for a host.
_REFERRER_SCHEMES = _WEB_SCHEMES | {"android-app"}
_HOST = re.compile(r"^[\w.-]+$|^[0-9a-f:.]+$")  # a name (IDN letters allowed) or a bracket-less IPv6
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
_DIRECT_SOURCE = "(direct)"
_DIRECT_MEDIUM = "(none)"
_NOT_SET = "(not set)"


class InvalidUrlError(ValueError):
    """The page URL cannot be parsed as an absolute ``http(s)`` URL; the collect endpoint answers 400.

    Attributes
    ----------
    field
        Which input was wrong (``"page_url"``).
    reason
        What is wrong, safe to return to the client (it never repeats the URL, which may hold personal
        data in its query).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class TrafficSource(BaseModel):
    """The traffic source of one visit (page view), as the server understands it."""

    # Schema built on first use rather than at import, to keep cold-start imports light.
    model_config = ConfigDict(frozen=True, defer_build=True)

    channel: Annotated[Channel, Field(description="GA4 default channel group.")]
    source: Annotated[
        str,
        Field(
            description='Lower-case utm_source, click-id platform ("google"), search engine name, referrer '
            'host without "www." ("linkedin.com"), "(direct)" or "(not set)".'
        ),
    ]
    medium: Annotated[
        str,
        Field(description='Lower-case utm_medium, "cpc", "organic", "referral", "(none)" or "(not set)".'),
    ]
    campaign: Annotated[str | None, Field(description="utm_campaign as sent (trimmed).")] = None
    term: Annotated[str | None, Field(description="utm_term as sent (trimmed).")] = None
    content: Annotated[str | None, Field(description="utm_content as sent (trimmed).")] = None
    utm_id: Annotated[str | None, Field(description="utm_id as sent (trimmed).")] = None
    click_id_type: Annotated[str | None, Field(description='The click-id parameter, e.g. "gclid".')] = None
    click_id: Annotated[str | None, Field(description="The click id's value.")] = None
    referrer_host: Annotated[
        str | None,
        Field(description="The referrer's host, lower-case, without port; also set for self-referrals."),
    ] = None
    landing_path: Annotated[str, Field(description='The page URL\'s path ("/" when empty).')] = "/"
    is_new_source: Annotated[
        bool,
        Field(
            description="True when the visit carries its own source (UTM tags, a click id, an external "
            "referrer); False for direct and self-referral navigation."
        ),
    ]

    def campaign_key(self) -> tuple[str | None, ...]:
        """Return the fields whose change makes a visit a new campaign (and so a new session/touch).

        Returns
        -------
        tuple[str | None, ...]
            ``(source, medium, campaign, term, content, utm_id, click_id)``. A new click id is a new ad
            click even within the same campaign; a reload of the landing page repeats the same key.
        """
        return (self.source, self.medium, self.campaign, self.term, self.content, self.utm_id, self.click_id)


def parse_traffic_source(
    page_url: str,
    referrer: str | None,
    own_domains: frozenset[str] = frozenset(),
    *,
    source_lists: SourceLists | None = None,
) -> TrafficSource:
    """Parse a page view's URL and referrer into its traffic source and channel.

    Parameters
    ----------
    page_url
        The absolute URL of the page viewed (``location.href``); must be ``http(s)`` with a host.
    referrer
        ``document.referrer``; ``None``/empty for none. A referrer that is not an ``http(s)`` or
        ``android-app`` URL with a host is ignored (treated as none) rather than refused: the page view
        itself is still good.
    own_domains
        The site's own domains; their subdomains are own too, and so is the page URL's own host (without
        ``www.``). A referrer on them is a self-referral: not a new source.
    source_lists
        The search/social/video/shopping lists; the packaged defaults when omitted.

    Returns
    -------
    TrafficSource
        The visit's source, medium, campaign fields, click id, channel and whether it is a new source.

    Raises
    ------
    InvalidUrlError
        ``page_url`` is not an absolute ``http(s)`` URL with a valid host and port, is longer than
        :data:`MAX_URL_LENGTH`, or contains whitespace or control characters.

    Examples
    --------
    >>> visit = parse_traffic_source("https://example.com/?gclid=abc", "https://www.google.com/")
    >>> (visit.channel, visit.source, visit.medium, visit.is_new_source)
    (<Channel.PAID_SEARCH: 'Paid Search'>, 'google', 'cpc', True)
    """
    page = _split_page_url(page_url)
    lists = source_lists if source_lists is not None else SourceLists.default()
    params = _read_parameters(page.query)

    utm = {name: _utm_value(params.get(name)) for name in UTM_PARAMETERS}
    utm_source = utm["utm_source"].lower() if utm["utm_source"] else None
    utm_medium = utm["utm_medium"].lower() if utm["utm_medium"] else None
    has_utm = any(value is not None for value in utm.values())

    click_id_type, click_id = _first_click_id(params)
    platform = CLICK_ID_PLATFORMS[click_id_type] if click_id_type else None

    referrer_host = _referrer_host(referrer)
    own = (*_own_domains(own_domains), _without_www(page.hostname or ""))
    external_referrer = referrer_host is not None and not _is_own(referrer_host, own)

    if has_utm:
        source = utm_source or (platform.source if platform else _NOT_SET)
        medium = utm_medium or (platform.medium if platform else _NOT_SET)
    elif platform is not None and (platform.paid or not external_referrer):
        source, medium = platform.source, platform.medium
    elif external_referrer and referrer_host is not None:
        source, medium = _referrer_source(referrer_host, lists)
    else:
        source, medium = _DIRECT_SOURCE, _DIRECT_MEDIUM

    return TrafficSource(
        channel=classify_channel(
            source, medium, utm["utm_campaign"], click_id_type=click_id_type, source_lists=lists
        ),
        source=source,
        medium=medium,
        campaign=utm["utm_campaign"],
        term=utm["utm_term"],
        content=utm["utm_content"],
        utm_id=utm["utm_id"],
        click_id_type=click_id_type,
        click_id=click_id,
        referrer_host=referrer_host,
        landing_path=page.path or "/",
        is_new_source=has_utm or platform is not None or external_referrer,
    )


def _split_page_url(page_url: str) -> SplitResult:
    if not isinstance(page_url, str) or not page_url:
        raise InvalidUrlError("page_url", "is missing")
    if len(page_url) > MAX_URL_LENGTH:
        raise InvalidUrlError("page_url", f"is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_CHARACTERS.search(page_url):
        raise InvalidUrlError("page_url", "contains whitespace or control characters")
    try:
        parts = urlsplit(page_url)
        parts.port  # noqa: B018 -- the property raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidUrlError("page_url", "is not a parseable URL") from exc
    if parts.scheme.lower() not in _WEB_SCHEMES:
        raise InvalidUrlError("page_url", "is not an absolute http(s) URL")
    if not parts.hostname or not _HOST.match(parts.hostname):
        raise InvalidUrlError("page_url", "has no valid host")
    return parts


def _read_parameters(query: str) -> dict[str, str]:
    """The UTM and click-id parameters of a query; names case-insensitive, the first non-empty wins."""
    if not query:
        return {}
    found: dict[str, str] = {}
    for name, value in parse_qsl(query):
        key = name.lower()
        if key in _WANTED_PARAMETERS and key not in found and value.strip():
            found[key] = value
    return found


def _utm_value(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()[:UTM_MAX_LENGTH].strip()
    return value or None


def _first_click_id(params: dict[str, str]) -> tuple[str | None, str | None]:
    for parameter in CLICK_ID_PARAMETERS:
        value = params.get(parameter)
        if value is not None:
            value = value.strip()
            # An over-long value is not a real click id (and would bloat the record): ignore it.
            if len(value) <= CLICK_ID_MAX_LENGTH:
                return parameter, value
    return None, None


def _referrer_host(referrer: str | None) -> str | None:
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in _REFERRER_SCHEMES or not host:
        return None
    host = host.rstrip(".")
    return host if host and _HOST.match(host) else None


def _without_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _referrer_source(host: str, lists: SourceLists) -> tuple[str, str]:
    engine = lists.lookup(host).get(SourceCategory.SEARCH)
    if engine is not None:
        return engine, "organic"
    return _without_www(host), "referral"


@functools.lru_cache(maxsize=64)
def _own_domains(own_domains: frozenset[str]) -> tuple[str, ...]:
    """Normalise the configured own domains once per distinct set (lower-case, no scheme/port/www)."""
    return tuple(domain for domain in (_normalise_domain(value) for value in own_domains) if domain)


def _normalise_domain(value: str) -> str:
    domain = value.strip().lower()
    if "://" in domain:
        domain = domain.split("://", 1)[1]
    domain = domain.split("/", 1)[0].split(":", 1)[0].rstrip(".")
    return _without_www(domain)


def _is_own(host: str, own: Iterable[str]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in own)
