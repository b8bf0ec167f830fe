"""Google's own source-category list: every entry classifies as GA4 classifies it.

The expected channels are derived here from the raw CSV with the standard library and GA4's rules, not
from closedloop's parser, so a parsing slip cannot hide a wrong classification.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import pytest

from closedloop.channels import (
    Channel,
    GoogleSourceCategory,
    SourceCategory,
    SourceLists,
    classify_channel,
    read_google_source_categories,
)
from closedloop.traffic import parse_traffic_source

DATA = resources.files("closedloop.channels").joinpath("data")
RAW = DATA.joinpath("ga4_source_categories.csv").read_bytes()
PROVENANCE = json.loads(DATA.joinpath("ga4_source_categories.source.json").read_bytes())
GOOGLE_ROWS: list[tuple[str, str]] = [
    (row["source"], row["source_category"]) for row in csv.DictReader(io.StringIO(RAW.decode("utf-8")))
]
SITE = frozenset({"example.com"})

# GA4's default channel group: with a non-paid medium a listed source is its category's organic channel,
# with a paid medium (^(.*cp.*|ppc|retargeting|paid.*)$) its paid channel.
ORGANIC = {
    "SOURCE_CATEGORY_SEARCH": Channel.ORGANIC_SEARCH,
    "SOURCE_CATEGORY_SOCIAL": Channel.ORGANIC_SOCIAL,
    "SOURCE_CATEGORY_VIDEO": Channel.ORGANIC_VIDEO,
    "SOURCE_CATEGORY_SHOPPING": Channel.ORGANIC_SHOPPING,
}
PAID = {
    "SOURCE_CATEGORY_SEARCH": Channel.PAID_SEARCH,
    "SOURCE_CATEGORY_SOCIAL": Channel.PAID_SOCIAL,
    "SOURCE_CATEGORY_VIDEO": Channel.PAID_VIDEO,
    "SOURCE_CATEGORY_SHOPPING": Channel.PAID_SHOPPING,
}


def test_the_packaged_copy_is_googles_list_as_recorded() -> None:
    # The sidecar names where the file came from; the hash pins the bytes to that record.
    assert hashlib.sha256(RAW).hexdigest() == PROVENANCE["sha256"]
    assert len(GOOGLE_ROWS) == PROVENANCE["entries"] == 819
    by_category: dict[str, int] = {}
    for _, category in GOOGLE_ROWS:
        by_category[category] = by_category.get(category, 0) + 1
    assert by_category == PROVENANCE["entries_by_category"]
    assert PROVENANCE["help_page"] == "https://support.google.com/analytics/answer/9756891"
    assert PROVENANCE["copied_from"]["repository"] == "https://github.com/Velir/dbt-ga4"
    assert len(PROVENANCE["copied_from"]["commit"]) == 40
    assert PROVENANCE["retrieved_on"] == "2026-12-07"


def test_google_sources_are_unique_ignoring_case() -> None:
    sources = [source.lower() for source, _ in GOOGLE_ROWS]
    assert len(set(sources)) == len(sources)


@pytest.mark.parametrize(("source", "category"), GOOGLE_ROWS, ids=[source for source, _ in GOOGLE_ROWS])
def test_every_entry_of_googles_list_classifies_as_in_ga4(source: str, category: str) -> None:
    # A referral (or any medium no earlier rule claims) from the source is its organic channel.
    assert classify_channel(source, "referral", None) is ORGANIC[category]
    # A paid medium makes it the paid channel of the same list, never another list's.
    assert classify_channel(source, "cpc", None) is PAID[category]
    assert classify_channel(source, "paid_social", None) is PAID[category]
    # The source is on exactly the one list Google puts it on.
    assert set(SourceLists.default().lookup(source)) == {SourceCategory.from_ga4_name(category)}


@pytest.mark.parametrize(("source", "category"), GOOGLE_ROWS, ids=[source for source, _ in GOOGLE_ROWS])
def test_every_entry_of_googles_list_classifies_as_in_ga4_from_a_page_view(
    source: str, category: str
) -> None:
    # When the source arrives as utm tags on the landing page
    tagged = parse_traffic_source(
        f"https://example.com/?utm_source={quote(source)}&utm_medium=cpc", None, SITE
    )
    # Then it is the paid channel of its list
    assert tagged.channel is PAID[category]

    # And when a domain of the list is the referrer, the visit is that list's organic channel
    if "." in source:
        referred = parse_traffic_source("https://example.com/", f"https://{source}/path", SITE)
        assert referred.channel is ORGANIC[category]


NAMED_IN_ISSUE_17: dict[str, tuple[str, str, Channel]] = {
    "msn.com": ("msn.com", "referral", Channel.ORGANIC_SEARCH),
    "ntp.msn.com": ("ntp.msn.com", "referral", Channel.ORGANIC_SEARCH),
    "bit.ly": ("bit.ly", "referral", Channel.ORGANIC_SOCIAL),
    "tinyurl.com": ("tinyurl.com", "referral", Channel.ORGANIC_SOCIAL),
    "wordpress.com": ("wordpress.com", "referral", Channel.ORGANIC_SOCIAL),
    "blogspot.com": ("blogspot.com", "referral", Channel.ORGANIC_SOCIAL),
    "stackoverflow.com": ("stackoverflow.com", "referral", Channel.ORGANIC_SOCIAL),
    "yelp.com": ("yelp.com", "referral", Channel.ORGANIC_SOCIAL),
    "glassdoor.com": ("glassdoor.com", "referral", Channel.ORGANIC_SOCIAL),
    "netflix.com": ("netflix.com", "referral", Channel.ORGANIC_VIDEO),
    "ted.com": ("ted.com", "referral", Channel.ORGANIC_VIDEO),
    "wistia.com": ("wistia.com", "referral", Channel.ORGANIC_VIDEO),
    "shopify.com": ("shopify.com", "referral", Channel.ORGANIC_SHOPPING),
    "stripe.com": ("stripe.com", "referral", Channel.ORGANIC_SHOPPING),
    "checkout.stripe.com": ("checkout.stripe.com", "referral", Channel.ORGANIC_SHOPPING),
    "IGShopping": ("IGShopping", "referral", Channel.ORGANIC_SHOPPING),
    "Google Shopping, cpc": ("Google Shopping", "cpc", Channel.PAID_SHOPPING),
    "shopping.yahoo.com": ("shopping.yahoo.com", "referral", Channel.ORGANIC_SHOPPING),
    "shopping.naver.com": ("shopping.naver.com", "referral", Channel.ORGANIC_SHOPPING),
    "answers.yahoo.com": ("answers.yahoo.com", "referral", Channel.ORGANIC_SOCIAL),
    "blog.naver.com": ("blog.naver.com", "referral", Channel.ORGANIC_SOCIAL),
    "rakuten": ("rakuten", "referral", Channel.ORGANIC_SEARCH),
    "search.google.com": ("search.google.com", "referral", Channel.ORGANIC_SEARCH),
    "play.google.com": ("play.google.com", "referral", Channel.ORGANIC_SEARCH),
    "sites.google.com": ("sites.google.com", "referral", Channel.ORGANIC_SOCIAL),
    "groups.google.com": ("groups.google.com", "referral", Channel.ORGANIC_SOCIAL),
    "business.facebook.com": ("business.facebook.com", "referral", Channel.ORGANIC_SOCIAL),
    # A specific entry beats the broader list above it, with a paid medium too.
    "answers.yahoo.com, cpc": ("answers.yahoo.com", "cpc", Channel.PAID_SOCIAL),
    "shopping.naver.com, cpc": ("shopping.naver.com", "cpc", Channel.PAID_SHOPPING),
    "websearch.rakuten.co.jp, cpc": ("websearch.rakuten.co.jp", "cpc", Channel.PAID_SEARCH),
}


@pytest.mark.parametrize(
    ("source", "medium", "expected"), NAMED_IN_ISSUE_17.values(), ids=NAMED_IN_ISSUE_17.keys()
)
def test_the_sources_named_in_the_issue_classify_as_in_ga4(
    source: str, medium: str, expected: Channel
) -> None:
    assert classify_channel(source, medium, None) is expected


REFERRERS: dict[str, tuple[str, Channel, str]] = {
    "Edge new tab page": ("https://ntp.msn.com/edge/ntp", Channel.ORGANIC_SEARCH, "msn"),
    "msn with www": ("https://www.msn.com/en-us", Channel.ORGANIC_SEARCH, "msn"),
    "Google Play": ("https://play.google.com/store/apps", Channel.ORGANIC_SEARCH, "google"),
    "Search Console": ("https://search.google.com/search-console", Channel.ORGANIC_SEARCH, "google"),
    "Google Sites": ("https://sites.google.com/view/team", Channel.ORGANIC_SOCIAL, "sites.google.com"),
    "a Google Group": ("https://groups.google.com/g/list", Channel.ORGANIC_SOCIAL, "groups.google.com"),
    "a blog under a listed domain": (
        "https://someone.blogspot.com/",
        Channel.ORGANIC_SOCIAL,
        "someone.blogspot.com",
    ),
    "Stack Overflow": ("https://stackoverflow.com/questions/1", Channel.ORGANIC_SOCIAL, "stackoverflow.com"),
    "a Yahoo answer": ("https://answers.yahoo.com/question", Channel.ORGANIC_SOCIAL, "answers.yahoo.com"),
    "Gmail stays a referral": ("https://mail.google.com/mail/u/0", Channel.REFERRAL, "mail.google.com"),
    "Google Docs stays a referral": (
        "https://docs.google.com/document/d/1",
        Channel.REFERRAL,
        "docs.google.com",
    ),
    "Stripe's dashboard is not shopping": (
        "https://dashboard.stripe.com/",
        Channel.REFERRAL,
        "dashboard.stripe.com",
    ),
}


@pytest.mark.parametrize(("referrer", "channel", "source"), REFERRERS.values(), ids=REFERRERS.keys())
def test_referrers_from_googles_list(referrer: str, channel: Channel, source: str) -> None:
    visit = parse_traffic_source("https://example.com/", referrer, SITE)

    assert (visit.channel, visit.source) == (channel, source)


def test_no_packaged_exclusion_names_an_entry_of_googles_list() -> None:
    excluded = json.loads(DATA.joinpath("excluded_hosts.json").read_bytes())["hosts"]
    listed = {source.lower() for source, _ in GOOGLE_ROWS}

    assert sorted(listed.intersection(excluded)) == []


def test_googles_entries_join_the_source_that_covers_them() -> None:
    lists = SourceLists.default()

    assert lists.lookup("m.youtube.com") == {SourceCategory.VIDEO: "youtube"}
    assert lists.lookup("fb") == {SourceCategory.SOCIAL: "facebook"}
    # Google lists both "msn" and "msn.com": the domain is named after the listed brand.
    assert lists.lookup("ntp.msn.com") == {SourceCategory.SEARCH: "msn"}
    assert lists.lookup("search.aol.co.uk") == {SourceCategory.SEARCH: "aol"}
    # Under a brand of another list, an entry is a source of its own.
    assert lists.lookup("answers.yahoo.com") == {SourceCategory.SOCIAL: "answers.yahoo.com"}


def test_an_exclusion_drops_an_entry_but_not_a_more_specific_one() -> None:
    # Given a user who does not want Google Sites as social, nor naver.com as search
    lists = SourceLists.default().extended(excluded_hosts=["sites.google.com", "naver.com"])

    # Then the excluded hosts are referrals
    assert classify_channel("sites.google.com", "referral", None, source_lists=lists) is Channel.REFERRAL
    assert classify_channel("www.naver.com", "referral", None, source_lists=lists) is Channel.REFERRAL
    # And the entries listed below an exclusion still count
    assert classify_channel("blog.naver.com", "referral", None, source_lists=lists) is Channel.ORGANIC_SOCIAL
    assert classify_channel("m.search.naver.com", "cpc", None, source_lists=lists) is Channel.PAID_SEARCH
    # And the packaged lists are unchanged
    assert classify_channel("sites.google.com", "referral", None) is Channel.ORGANIC_SOCIAL


def test_a_users_entry_below_a_listed_domain_is_more_specific() -> None:
    lists = SourceLists.default().extended(video={"youtube-at-linkedin": ["video.linkedin.com"]})

    assert classify_channel("video.linkedin.com", "cpc", None, source_lists=lists) is Channel.PAID_VIDEO
    assert classify_channel("www.linkedin.com", "cpc", None, source_lists=lists) is Channel.PAID_SOCIAL


NEWER_DOWNLOAD = """source,source_category
bit.ly,SOURCE_CATEGORY_SOCIAL
perplexity.ai,SOURCE_CATEGORY_SEARCH
loom.com,SOURCE_CATEGORY_VIDEO
"""


def test_a_newer_download_of_googles_list_extends_the_packaged_lists(tmp_path: Path) -> None:
    # Given Google's list downloaded again and saved as CSV (with the BOM spreadsheet tools write)
    path = tmp_path / "ga4_source_categories.csv"
    path.write_text(NEWER_DOWNLOAD, encoding="utf-8-sig")

    # When
    lists = SourceLists.default().extended_from_google_file(path)

    # Then the new entries count and the packaged ones stay
    assert classify_channel("perplexity.ai", "referral", None, source_lists=lists) is Channel.ORGANIC_SEARCH
    assert classify_channel("www.loom.com", "cpc", None, source_lists=lists) is Channel.PAID_VIDEO
    assert classify_channel("netflix.com", "referral", None, source_lists=lists) is Channel.ORGANIC_VIDEO


def test_a_newer_download_can_replace_the_packaged_copy(tmp_path: Path) -> None:
    # Given
    path = tmp_path / "ga4_source_categories.csv"
    path.write_text(NEWER_DOWNLOAD, encoding="utf-8")

    # When the additions are combined with the new file instead of the packaged copy
    lists = SourceLists.packaged_additions().extended_from_google_file(path)

    # Then entries missing from the new file are gone, closedloop's additions are kept
    assert classify_channel("netflix.com", "referral", None, source_lists=lists) is Channel.REFERRAL
    assert classify_channel("bit.ly", "referral", None, source_lists=lists) is Channel.ORGANIC_SOCIAL
    assert classify_channel("x.com", "referral", None, source_lists=lists) is Channel.ORGANIC_SOCIAL


def test_the_additions_alone_are_not_googles_list() -> None:
    # The additions know facebook but not Google's long tail.
    additions = SourceLists.packaged_additions()

    assert additions.lookup("facebook") == {SourceCategory.SOCIAL: "facebook"}
    assert additions.lookup("stackoverflow.com") == {}


def test_read_google_source_categories() -> None:
    text = (
        "source,source_category\n"
        "\n"
        "Google Shopping,SOURCE_CATEGORY_SHOPPING\n"
        "bit.ly, source_category_social \n"
    )

    assert read_google_source_categories(text) == (
        GoogleSourceCategory("google shopping", SourceCategory.SHOPPING),
        GoogleSourceCategory("bit.ly", SourceCategory.SOCIAL),
    )


def test_read_google_source_categories_without_a_header() -> None:
    assert read_google_source_categories("ted.com,SOURCE_CATEGORY_VIDEO\n") == (
        GoogleSourceCategory("ted.com", SourceCategory.VIDEO),
    )


def test_the_packaged_copy_parses_to_every_row() -> None:
    rows = read_google_source_categories(RAW.decode("utf-8"))

    assert [(row.source, row.category.ga4_name) for row in rows] == [
        (source.lower(), category) for source, category in GOOGLE_ROWS
    ]


BAD_FILES: dict[str, tuple[str, str]] = {
    "unknown category": ("source,source_category\nbit.ly,SOURCE_CATEGORY_NEWS\n", "line 2"),
    "category without the prefix": ("source,source_category\nbit.ly,SOCIAL\n", "line 2"),
    "no category": ("source,source_category\nbit.ly,SOURCE_CATEGORY_SOCIAL\nted.com\n", "line 3"),
    "empty source": ("source,source_category\n ,SOURCE_CATEGORY_SOCIAL\n", "line 2"),
    "not a domain": ("source,source_category\nexa mple.com,SOURCE_CATEGORY_SOCIAL\n", "line 2"),
}


@pytest.mark.parametrize(("text", "where"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_malformed_google_file_is_refused_with_its_line(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        read_google_source_categories(text)


@pytest.mark.parametrize("category", list(SourceCategory))
def test_source_categories_carry_googles_names(category: SourceCategory) -> None:
    assert SourceCategory.from_ga4_name(category.ga4_name) is category
    assert category.ga4_name == f"SOURCE_CATEGORY_{category.value.upper()}"


def test_an_unknown_google_category_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a GA4 source category"):
        SourceCategory.from_ga4_name("SOURCE_CATEGORY_EMAIL")
