"""GA4 default channel group rules and the source lists they read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from pydantic import ValidationError

from closedloop.channels import (
    CLICK_ID_PLATFORMS,
    Channel,
    SourceCategory,
    SourceListDocument,
    SourceLists,
    classify_channel,
)


class Case(NamedTuple):
    source: str
    medium: str
    campaign: str | None
    click_id_type: str | None
    expected: Channel


CASES: dict[str, Case] = {
    # Direct
    "no referrer and no tags": Case("(direct)", "(none)", None, None, Channel.DIRECT),
    "direct with medium not set": Case("(direct)", "(not set)", None, None, Channel.DIRECT),
    # Cross-network comes before any paid source rule.
    "performance max campaign": Case("google", "cpc", "pmax_cross-network_q4", None, Channel.CROSS_NETWORK),
    "cross-network in mixed case": Case("google", "cpc", "Brand Cross-Network", None, Channel.CROSS_NETWORK),
    # Paid Shopping: a shopping source or a shopping campaign, with a paid medium.
    "shopping site, paid": Case("amazon", "cpc", None, None, Channel.PAID_SHOPPING),
    "shop campaign beats search source": Case("google", "cpc", "summer-shop", None, Channel.PAID_SHOPPING),
    "e-shop counts as shop": Case("bing", "ppc", "eshop launch", None, Channel.PAID_SHOPPING),
    "workshop is not a shop": Case("google", "cpc", "workshop-signups", None, Channel.PAID_SEARCH),
    # Paid Search
    "google cpc": Case("google", "cpc", None, None, Channel.PAID_SEARCH),
    "bing ppc in capitals": Case("Bing", "PPC", None, None, Channel.PAID_SEARCH),
    "search domain, paid prefix": Case("duckduckgo.com", "paidsearch", None, None, Channel.PAID_SEARCH),
    # Paid Social: a cpc medium with a social source is social, not search.
    "cpc with a social source": Case("facebook", "cpc", None, None, Channel.PAID_SOCIAL),
    "social alias, paid_social medium": Case("ig", "paid_social", None, None, Channel.PAID_SOCIAL),
    "social host, retargeting": Case("lnkd.in", "retargeting", None, None, Channel.PAID_SOCIAL),
    # Paid Video
    "youtube cpv": Case("youtube", "cpv", None, None, Channel.PAID_VIDEO),
    # Display: checked before Paid Other, so cpm from an unlisted network is Display.
    "display medium": Case("google", "display", None, None, Channel.DISPLAY),
    "cpm from an unlisted network": Case("adnetwork", "cpm", None, None, Channel.DISPLAY),
    "banner": Case("publisher.example", "banner", None, None, Channel.DISPLAY),
    # Paid Other
    "paid medium, unlisted source": Case("partner-network", "cpc", None, None, Channel.PAID_OTHER),
    # Organic Shopping
    "shopping site referral": Case("ebay.co.uk", "referral", None, None, Channel.ORGANIC_SHOPPING),
    "shop campaign beats email": Case(
        "newsletter", "email", "black-friday-shop", None, Channel.ORGANIC_SHOPPING
    ),
    # Organic Social
    "social referral": Case("l.facebook.com", "referral", None, None, Channel.ORGANIC_SOCIAL),
    "social medium, unlisted source": Case("forum", "social-network", None, None, Channel.ORGANIC_SOCIAL),
    "social source beats email medium": Case("facebook", "email", None, None, Channel.ORGANIC_SOCIAL),
    # Organic Video
    "video referral": Case("m.youtube.com", "referral", None, None, Channel.ORGANIC_VIDEO),
    "video medium": Case("webinar-platform", "recorded-video", None, None, Channel.ORGANIC_VIDEO),
    # Organic Search
    "google alone": Case("google", "organic", None, None, Channel.ORGANIC_SEARCH),
    "country search domain": Case("www.google.co.uk", "referral", None, None, Channel.ORGANIC_SEARCH),
    "organic medium, unlisted engine": Case("tiny-engine", "organic", None, None, Channel.ORGANIC_SEARCH),
    # Referral
    "plain referral": Case("blog.example.org", "referral", None, None, Channel.REFERRAL),
    "webmail host under a search domain": Case("mail.google.com", "referral", None, None, Channel.REFERRAL),
    "link medium": Case("partner", "link", None, None, Channel.REFERRAL),
    "app medium": Case("partner", "app", None, None, Channel.REFERRAL),
    "referral medium beats email source (GA4 order)": Case("email", "referral", None, None, Channel.REFERRAL),
    # Email
    "email medium in mixed case": Case("newsletter", "EMail", None, None, Channel.EMAIL),
    "e-mail spelling": Case("hubspot", "e-mail", None, None, Channel.EMAIL),
    "email source": Case("Email", "newsletter", None, None, Channel.EMAIL),
    # Affiliates, Audio, SMS, Mobile Push Notifications
    "affiliate": Case("partnerstack", "affiliate", None, None, Channel.AFFILIATES),
    "audio": Case("podcast-network", "audio", None, None, Channel.AUDIO),
    "sms medium": Case("twilio", "SMS", None, None, Channel.SMS),
    "sms source": Case("sms", "(not set)", None, None, Channel.SMS),
    "push medium suffix": Case("onesignal", "web-push", None, None, Channel.MOBILE_PUSH_NOTIFICATIONS),
    "notification medium": Case("app", "notification", None, None, Channel.MOBILE_PUSH_NOTIFICATIONS),
    "firebase source": Case("firebase", "(not set)", None, None, Channel.MOBILE_PUSH_NOTIFICATIONS),
    # Where two rules match, the earlier one in GA4's order wins.
    "direct beats cross-network": Case("(direct)", "(none)", "cross-network", None, Channel.DIRECT),
    "cross-network beats paid shopping": Case("amazon", "cpc", "cross-network", None, Channel.CROSS_NETWORK),
    "paid social beats display for cpm": Case("facebook", "cpm", None, None, Channel.PAID_SOCIAL),
    "paid video beats display for cpm": Case("youtube", "cpm", None, None, Channel.PAID_VIDEO),
    "organic shopping beats social medium": Case("ebay", "social", None, None, Channel.ORGANIC_SHOPPING),
    "organic social beats video source": Case("youtube", "social", None, None, Channel.ORGANIC_SOCIAL),
    "organic video beats search source": Case("google", "video", None, None, Channel.ORGANIC_VIDEO),
    "email source beats affiliate medium": Case("email", "affiliate", None, None, Channel.EMAIL),
    "audio medium beats sms source": Case("sms", "audio", None, None, Channel.AUDIO),
    "sms source beats push medium": Case("sms", "push", None, None, Channel.SMS),
    # Unassigned
    "unknown medium": Case("newsletter", "(not set)", None, None, Channel.UNASSIGNED),
    "direct source with a made-up medium": Case("(direct)", "banana", None, None, Channel.UNASSIGNED),
    "not set is not direct": Case("(not set)", "(not set)", None, None, Channel.UNASSIGNED),
    # Click ids fill in what tags left unset; an explicit medium still wins.
    "gclid alone": Case("(direct)", "(none)", None, "gclid", Channel.PAID_SEARCH),
    "google referrer with gclid": Case("google", "(not set)", None, "gclid", Channel.PAID_SEARCH),
    "msclkid alone": Case("(not set)", "(not set)", None, "msclkid", Channel.PAID_SEARCH),
    "ttclid alone": Case("(not set)", "(not set)", None, "ttclid", Channel.PAID_SOCIAL),
    "li_fat_id alone": Case("(not set)", "(not set)", None, "li_fat_id", Channel.PAID_SOCIAL),
    "dclid alone": Case("(not set)", "(not set)", None, "dclid", Channel.DISPLAY),
    "fbclid is not proof of an ad": Case("(not set)", "(not set)", None, "fbclid", Channel.ORGANIC_SOCIAL),
    "gclid pmax campaign": Case("(not set)", "(not set)", "x-cross-network", "gclid", Channel.CROSS_NETWORK),
    "explicit medium beats click id": Case("newsletter", "email", None, "gclid", Channel.EMAIL),
    "unknown click id type is ignored": Case("(direct)", "(none)", None, "xyzclid", Channel.DIRECT),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_classify_channel_follows_ga4_rules(case: Case) -> None:
    # When
    channel = classify_channel(case.source, case.medium, case.campaign, click_id_type=case.click_id_type)

    # Then
    assert channel is case.expected


def test_the_rule_table_covers_every_channel() -> None:
    assert {case.expected for case in CASES.values()} == set(Channel)


SEVERAL_LISTS: dict[str, tuple[str, str, Channel]] = {
    "search and social, paid": ("both.example", "cpc", Channel.PAID_SEARCH),
    "search and social, organic": ("both.example", "referral", Channel.ORGANIC_SOCIAL),
    "search and video, paid": ("searchvideo.example", "cpc", Channel.PAID_SEARCH),
    "search and video, organic": ("searchvideo.example", "referral", Channel.ORGANIC_VIDEO),
    "social and video, paid": ("socialvideo.example", "cpc", Channel.PAID_SOCIAL),
}


@pytest.mark.parametrize(("source", "medium", "expected"), SEVERAL_LISTS.values(), ids=SEVERAL_LISTS.keys())
def test_a_source_on_several_lists_takes_the_first_rule_in_ga4_order(
    source: str, medium: str, expected: Channel
) -> None:
    # Given a user's lists where some sources are on several lists
    lists = SourceLists.default().extended(
        search=["both.example", "searchvideo.example"],
        social=["both.example", "socialvideo.example"],
        video=["searchvideo.example", "socialvideo.example"],
    )

    # When / Then
    assert classify_channel(source, medium, None, source_lists=lists) is expected


def test_channel_values_are_ga4_display_names() -> None:
    assert Channel("Paid Search") is Channel.PAID_SEARCH
    assert Channel.MOBILE_PUSH_NOTIFICATIONS == "Mobile Push Notifications"


def test_every_paid_click_id_makes_an_untagged_visit_paid() -> None:
    for parameter, platform in CLICK_ID_PLATFORMS.items():
        channel = classify_channel("(not set)", "(not set)", None, click_id_type=parameter)
        organic = {Channel.ORGANIC_SOCIAL, Channel.ORGANIC_SEARCH, Channel.REFERRAL}
        assert (channel not in organic) is platform.paid, parameter


LOOKUPS: dict[str, tuple[str, dict[SourceCategory, str]]] = {
    "name": ("google", {SourceCategory.SEARCH: "google"}),
    "alias in capitals": ("FB", {SourceCategory.SOCIAL: "facebook"}),
    "utm alias with a space": ("google ads", {SourceCategory.SEARCH: "google"}),
    "bare domain": ("linkedin.com", {SourceCategory.SOCIAL: "linkedin"}),
    "short-link domain": ("lnkd.in", {SourceCategory.SOCIAL: "linkedin"}),
    "subdomain": ("m.youtube.com", {SourceCategory.VIDEO: "youtube"}),
    "country ending": ("www.google.co.uk", {SourceCategory.SEARCH: "google"}),
    "two-label country ending": ("www.amazon.com.br", {SourceCategory.SHOPPING: "amazon"}),
    "one-label country ending": ("yandex.ru", {SourceCategory.SEARCH: "yandex"}),
    "trailing dot": ("www.bing.com.", {SourceCategory.SEARCH: "bing"}),
    "android package id": ("com.google.android.googlequicksearchbox", {SourceCategory.SEARCH: "google"}),
    "brand under someone else's domain": ("google.evil-site.com", {}),
    "brand under a made-up ending": ("google.xyz.io", {}),
    "brand as a prefix of a label": ("notgoogle.com", {}),
    "excluded webmail": ("mail.google.com", {}),
    "subdomain of an excluded host": ("eu-west-1.console.aws.amazon.com", {}),
    "unlisted": ("example.org", {}),
}


@pytest.mark.parametrize(("source", "expected"), LOOKUPS.values(), ids=LOOKUPS.keys())
def test_source_lists_lookup(source: str, expected: dict[SourceCategory, str]) -> None:
    assert dict(SourceLists.default().lookup(source)) == expected


def test_every_packaged_source_name_finds_itself() -> None:
    # Given the packaged lists as a document
    lists = SourceLists.default()
    document = lists.to_document()

    # Then each listed name (and each of its entries) leads back to that name in its own list,
    # so no entry is shadowed by another source's entry.
    for category in SourceCategory:
        table = getattr(document, category.value)
        assert table, category
        for name, entries in table.items():
            assert lists.lookup(name).get(category) == name, (category, name)
            for entry in entries:
                probe = entry.replace(".*", ".com")
                assert lists.lookup(probe).get(category) == name, (category, name, entry)


def test_default_lists_are_loaded_once() -> None:
    assert SourceLists.default() is SourceLists.default()


def test_extended_with_plain_domains_adds_sources_without_changing_the_original() -> None:
    # Given
    default = SourceLists.default()

    # When
    extended = default.extended(social=["circle.so"], search=["perplexity.ai"])

    # Then
    assert classify_channel("circle.so", "referral", None, source_lists=extended) is Channel.ORGANIC_SOCIAL
    assert (
        classify_channel("perplexity.ai", "referral", None, source_lists=extended) is Channel.ORGANIC_SEARCH
    )
    assert classify_channel("circle.so", "referral", None, source_lists=default) is Channel.REFERRAL
    assert classify_channel("community.circle.so", "cpc", None, source_lists=extended) is Channel.PAID_SOCIAL


def test_extended_with_a_mapping_adds_aliases_to_an_existing_source() -> None:
    extended = SourceLists.default().extended(search={"Google": ["goog", "google.example-intranet.net"]})

    assert extended.lookup("goog") == {SourceCategory.SEARCH: "google"}
    assert extended.lookup("www.google.example-intranet.net") == {SourceCategory.SEARCH: "google"}
    assert extended.lookup("www.google.de") == {SourceCategory.SEARCH: "google"}


def test_extended_with_a_lone_string_adds_one_source() -> None:
    extended = SourceLists.default().extended(social="circle.so", search={"kagi": "kagi.example"})

    assert extended.lookup("circle.so") == {SourceCategory.SOCIAL: "circle.so"}
    assert extended.lookup("kagi.example") == {SourceCategory.SEARCH: "kagi"}
    assert extended.lookup("c") == {}


def test_extended_exclusions_turn_a_listed_host_into_a_referral() -> None:
    extended = SourceLists.default().extended(excluded_hosts=["Community.LinkedIn.com"])

    assert (
        classify_channel("community.linkedin.com", "referral", None, source_lists=extended)
        is Channel.REFERRAL
    )
    assert classify_channel("www.linkedin.com", "referral", None, source_lists=extended) is (
        Channel.ORGANIC_SOCIAL
    )


def test_extended_from_file(tmp_path: Path) -> None:
    # Given
    path = tmp_path / "sources.json"
    path.write_text(
        json.dumps({"video": {"loom": ["loom.com"]}, "excluded_hosts": ["studio.vimeo.com"]}),
        encoding="utf-8",
    )

    # When
    lists = SourceLists.default().extended_from_file(path)

    # Then
    assert lists.lookup("www.loom.com") == {SourceCategory.VIDEO: "loom"}
    assert lists.lookup("studio.vimeo.com") == {}
    assert lists.lookup("vimeo.com") == {SourceCategory.VIDEO: "vimeo"}


BAD_DOCUMENTS: dict[str, object] = {
    "unknown list": {"news": {"hn": ["news.ycombinator.com"]}},
    "space inside a domain": {"social": {"x": ["exa mple.com"]}},
    "wildcard not last": {"search": {"google": ["*.google.com"]}},
    "wildcard under two labels": {"search": {"google": ["search.google.*"]}},
    "empty name": {"search": {" ": ["engine.example"]}},
    "entries not a list": {"search": {"google": "google.com"}},
    "bad excluded host": {"excluded_hosts": ["https://mail.example.com/"]},
}


@pytest.mark.parametrize("document", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_invalid_extension_documents_are_refused(tmp_path: Path, document: object) -> None:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(ValidationError):
        SourceLists.default().extended_from_file(path)


def test_invalid_extension_in_code_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a domain"):
        SourceLists.default().extended(social=["bad domain.com"])


def test_from_document_holds_only_the_document() -> None:
    lists = SourceLists.from_document(SourceListDocument(search={"intranet": ["search.corp.example"]}))

    assert lists.lookup("search.corp.example") == {SourceCategory.SEARCH: "intranet"}
    assert lists.lookup("google") == {}
