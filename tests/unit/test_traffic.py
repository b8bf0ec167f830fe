"""Parsing a page view's URL and referrer into its traffic source."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from pydantic import ValidationError

from closedloop.channels import Channel, SourceLists
from closedloop.traffic import (
    CLICK_ID_MAX_LENGTH,
    MAX_URL_LENGTH,
    UTM_MAX_LENGTH,
    InvalidUrlError,
    TrafficSource,
    parse_traffic_source,
)

SITE = frozenset({"example.com"})
TIKTOK_CLICK_ID = "E.C.P." + "x" * (CLICK_ID_MAX_LENGTH - 6)


class Case(NamedTuple):
    page_url: str
    referrer: str | None
    expected: dict[str, Any]
    own_domains: frozenset[str] = SITE


CASES: dict[str, Case] = {
    "no referrer and no tags is direct": Case(
        "https://example.com/",
        None,
        {"channel": Channel.DIRECT, "source": "(direct)", "medium": "(none)", "is_new_source": False},
    ),
    "empty referrer is direct": Case("https://example.com/", "", {"channel": Channel.DIRECT}),
    "google referrer alone is organic search": Case(
        "https://example.com/pricing",
        "https://www.google.com/",
        {
            "channel": Channel.ORGANIC_SEARCH,
            "source": "google",
            "medium": "organic",
            "referrer_host": "www.google.com",
            "landing_path": "/pricing",
            "is_new_source": True,
        },
    ),
    "google referrer with gclid is paid search": Case(
        "https://example.com/?gclid=Cj0KCQiA&gad_source=1",
        "https://www.google.com/",
        {
            "channel": Channel.PAID_SEARCH,
            "source": "google",
            "medium": "cpc",
            "click_id_type": "gclid",
            "click_id": "Cj0KCQiA",
            "is_new_source": True,
        },
    ),
    "gad_source alone is a google ad click": Case(
        "https://example.com/?gad_source=1",
        None,
        {"channel": Channel.PAID_SEARCH, "source": "google", "click_id_type": "gad_source", "click_id": "1"},
    ),
    "cpc with a social source is paid social": Case(
        "https://example.com/?utm_source=facebook&utm_medium=cpc&utm_campaign=Q4+Launch",
        "https://l.facebook.com/",
        {"channel": Channel.PAID_SOCIAL, "source": "facebook", "medium": "cpc", "campaign": "Q4 Launch"},
    ),
    "email medium in mixed case is email": Case(
        "https://example.com/?utm_source=Newsletter&utm_medium=EMail",
        None,
        {"channel": Channel.EMAIL, "source": "newsletter", "medium": "email", "is_new_source": True},
    ),
    "all utm fields are read and decoded": Case(
        "https://example.com/lp?utm_source=linkedin&utm_medium=paid_social&utm_campaign=Spring%20Sale"
        "&utm_term=crm+software&utm_content=video-a&utm_id=cmp-42",
        None,
        {
            "channel": Channel.PAID_SOCIAL,
            "campaign": "Spring Sale",
            "term": "crm software",
            "content": "video-a",
            "utm_id": "cmp-42",
        },
    ),
    "tags win over the referrer": Case(
        "https://example.com/?utm_source=newsletter&utm_medium=email",
        "https://www.google.com/",
        {"channel": Channel.EMAIL, "source": "newsletter", "referrer_host": "www.google.com"},
    ),
    "utm_source without medium": Case(
        "https://example.com/?utm_source=partner",
        "https://partner.example.net/",
        {"channel": Channel.UNASSIGNED, "source": "partner", "medium": "(not set)", "is_new_source": True},
    ),
    "utm_campaign alone": Case(
        "https://example.com/?utm_campaign=launch",
        None,
        {"channel": Channel.UNASSIGNED, "source": "(not set)", "medium": "(not set)", "campaign": "launch"},
    ),
    "click id supplies a missing utm_medium": Case(
        "https://example.com/?utm_source=google&utm_campaign=brand&gclid=abc",
        None,
        {"channel": Channel.PAID_SEARCH, "medium": "cpc", "campaign": "brand"},
    ),
    "msclkid is bing cpc": Case(
        "https://example.com/?msclkid=d8f7",
        "https://www.bing.com/",
        {"channel": Channel.PAID_SEARCH, "source": "bing", "medium": "cpc", "click_id_type": "msclkid"},
    ),
    "ttclid of the maximum length is kept": Case(
        f"https://example.com/?ttclid={TIKTOK_CLICK_ID}",
        None,
        {"channel": Channel.PAID_SOCIAL, "source": "tiktok", "click_id": TIKTOK_CLICK_ID},
    ),
    "an over-long click id is ignored": Case(
        f"https://example.com/?ttclid={TIKTOK_CLICK_ID}x",
        None,
        {"channel": Channel.DIRECT, "click_id_type": None, "click_id": None, "is_new_source": False},
    ),
    "li_fat_id is linkedin cpc": Case(
        "https://example.com/?li_fat_id=9c1e", None, {"channel": Channel.PAID_SOCIAL, "source": "linkedin"}
    ),
    "dclid is display": Case(
        "https://example.com/?dclid=CJ", None, {"channel": Channel.DISPLAY, "medium": "display"}
    ),
    "several click ids: gclid wins": Case(
        "https://example.com/?fbclid=fb1&gad_source=1&gclid=g1",
        None,
        {"click_id_type": "gclid", "click_id": "g1"},
    ),
    "fbclid keeps the referrer as source": Case(
        "https://example.com/?fbclid=IwAR0",
        "https://l.instagram.com/",
        {
            "channel": Channel.ORGANIC_SOCIAL,
            "source": "l.instagram.com",
            "medium": "referral",
            "click_id_type": "fbclid",
            "click_id": "IwAR0",
        },
    ),
    "fbclid without a referrer is facebook social": Case(
        "https://example.com/?fbclid=IwAR0",
        None,
        {"channel": Channel.ORGANIC_SOCIAL, "source": "facebook", "medium": "social", "is_new_source": True},
    ),
    "social referral keeps the host without www": Case(
        "https://example.com/",
        "https://www.linkedin.com/feed/",
        {"channel": Channel.ORGANIC_SOCIAL, "source": "linkedin.com", "medium": "referral"},
    ),
    "plain referral": Case(
        "https://example.com/",
        "https://blog.partner.org:8443/post?id=1",
        {"channel": Channel.REFERRAL, "source": "blog.partner.org", "referrer_host": "blog.partner.org"},
    ),
    "webmail is a referral": Case(
        "https://example.com/",
        "https://mail.google.com/",
        {"channel": Channel.REFERRAL, "source": "mail.google.com"},
    ),
    "search engine on a country domain with a port": Case(
        "https://example.com/",
        "https://www.google.de:443/search?q=crm",
        {"channel": Channel.ORGANIC_SEARCH, "source": "google"},
    ),
    "android search app": Case(
        "https://example.com/",
        "android-app://com.google.android.googlequicksearchbox/",
        {"channel": Channel.ORGANIC_SEARCH, "source": "google"},
    ),
    "android gmail app is a referral": Case(
        "https://example.com/",
        "android-app://com.google.android.gm/",
        {"channel": Channel.REFERRAL, "source": "com.google.android.gm"},
    ),
    "self-referral is not a new source": Case(
        "https://www.example.com/pricing",
        "https://www.example.com/",
        {
            "channel": Channel.DIRECT,
            "source": "(direct)",
            "is_new_source": False,
            "referrer_host": "www.example.com",
        },
    ),
    "a subdomain of an own domain is own": Case(
        "https://www.example.com/", "https://app.example.com/login", {"is_new_source": False}
    ),
    "own domains are normalised": Case(
        "https://shop.example.net/",
        "http://Blog.Example.COM/",
        {"is_new_source": False},
        frozenset({"https://www.example.com/"}),
    ),
    "the page's own host is own without configuration": Case(
        "http://localhost:3000/demo", "http://localhost:3000/", {"is_new_source": False}, frozenset()
    ),
    "a look-alike of an own domain is external": Case(
        "https://example.com/",
        "https://example.com.attacker.net/",
        {"channel": Channel.REFERRAL, "is_new_source": True},
    ),
    "a self-referral with tags is a new source": Case(
        "https://example.com/?utm_source=banner&utm_medium=display",
        "https://example.com/blog",
        {"channel": Channel.DISPLAY, "is_new_source": True},
    ),
    "unusable referrers are ignored": Case(
        "https://example.com/", "not a url", {"channel": Channel.DIRECT, "referrer_host": None}
    ),
    "a malformed referrer is ignored": Case("https://example.com/", "http://[::1", {"referrer_host": None}),
    "a non-web referrer is ignored": Case(
        "https://example.com/", "chrome-extension://abcdef/", {"referrer_host": None}
    ),
    "empty parameters are absent and the first value wins": Case(
        "https://example.com/?utm_source=&utm_source=bing&utm_source=google&utm_medium=cpc",
        None,
        {"source": "bing", "channel": Channel.PAID_SEARCH},
    ),
    "parameter names are case-insensitive": Case(
        "https://example.com/?UTM_SOURCE=google&Utm_Medium=cpc", None, {"channel": Channel.PAID_SEARCH}
    ),
    "blank tag values are absent": Case(
        "https://example.com/?utm_source=%20%20", None, {"is_new_source": False}
    ),
    "empty path is slash": Case("https://example.com?x=1", None, {"landing_path": "/"}),
    "tags in the fragment are not read": Case(
        "https://example.com/#utm_source=google&utm_medium=cpc", None, {"channel": Channel.DIRECT}
    ),
    "ipv6 and port": Case("http://[::1]:8000/demo", None, {"landing_path": "/demo"}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_parse_traffic_source(case: Case) -> None:
    # When
    visit = parse_traffic_source(case.page_url, case.referrer, case.own_domains)

    # Then
    assert {field: getattr(visit, field) for field in case.expected} == case.expected


def test_long_utm_values_are_cut() -> None:
    visit = parse_traffic_source("https://example.com/?utm_campaign=" + "c" * (UTM_MAX_LENGTH + 500), None)

    assert visit.campaign == "c" * UTM_MAX_LENGTH


def test_custom_source_lists_are_used() -> None:
    lists = SourceLists.default().extended(social=["circle.so"])

    default = parse_traffic_source("https://example.com/", "https://community.circle.so/c/1", SITE)
    custom = parse_traffic_source(
        "https://example.com/", "https://community.circle.so/c/1", SITE, source_lists=lists
    )

    assert default.channel is Channel.REFERRAL
    assert custom.channel is Channel.ORGANIC_SOCIAL


INVALID_PAGE_URLS: dict[str, str] = {
    "empty": "",
    "not a url": "not a url",
    "relative": "/pricing?utm_source=google",
    "no scheme": "example.com/pricing",
    "ftp": "ftp://example.com/file",
    "javascript": "javascript:alert(1)",
    "no host": "https:///path",
    "space in host": "https://exa mple.com/",
    "bad port": "https://example.com:99999/",
    "unclosed ipv6": "http://[::1/",
    "newline": "https://example.com/\nSet-Cookie: x",
    "too long": "https://example.com/?q=" + "a" * MAX_URL_LENGTH,
}


@pytest.mark.parametrize("page_url", INVALID_PAGE_URLS.values(), ids=INVALID_PAGE_URLS.keys())
def test_unparseable_page_urls_raise_invalid_url_error(page_url: str) -> None:
    with pytest.raises(InvalidUrlError) as raised:
        parse_traffic_source(page_url, None)

    assert raised.value.field == "page_url"
    assert isinstance(raised.value, ValueError)
    # The reason goes back to the client: it must not echo the URL (its query may hold personal data).
    assert "example.com" not in str(raised.value)


def test_international_host_names_are_accepted() -> None:
    assert parse_traffic_source("https://bücher.example/", None).landing_path == "/"


def _key(page_url: str, referrer: str | None = None) -> tuple[str | None, ...]:
    return parse_traffic_source(page_url, referrer, SITE).campaign_key()


def test_campaign_key_is_stable_for_a_reload_of_the_landing_page() -> None:
    url = "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=a1"
    assert _key(url) == _key(url, "https://example.com/?utm_source=google")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("?gclid=a1", "?gclid=a2"),
        (
            "?utm_source=google&utm_medium=cpc&utm_campaign=brand",
            "?utm_source=google&utm_medium=cpc&utm_campaign=q4",
        ),
        (
            "?utm_source=meta&utm_medium=cpc&utm_content=ad-a",
            "?utm_source=meta&utm_medium=cpc&utm_content=ad-b",
        ),
        ("?utm_source=google&utm_medium=cpc&utm_term=crm", "?utm_source=google&utm_medium=cpc&utm_term=erp"),
        ("?utm_source=bing&utm_medium=cpc&utm_id=1", "?utm_source=bing&utm_medium=cpc&utm_id=2"),
        ("?utm_source=google&utm_medium=cpc", "?utm_source=google&utm_medium=email"),
    ],
)
def test_campaign_key_changes_with_a_new_campaign(first: str, second: str) -> None:
    assert _key("https://example.com/" + first) != _key("https://example.com/" + second)


def test_organic_visits_from_the_same_engine_share_a_key() -> None:
    assert _key("https://example.com/a", "https://www.google.com/") == _key(
        "https://example.com/b", "https://www.google.de/"
    )


def test_traffic_source_is_immutable() -> None:
    visit = parse_traffic_source("https://example.com/", None)

    with pytest.raises(ValidationError):
        visit.source = "google"  # type: ignore[misc]
    assert isinstance(visit, TrafficSource)
