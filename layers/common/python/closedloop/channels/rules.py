"""The GA4 default channel group rules, applied to a visit's source, medium and campaign."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from closedloop.channels.click_ids import CLICK_ID_PLATFORMS
from closedloop.channels.sources import SourceCategory, SourceLists

__all__ = [
    "Channel",
    "classify_channel",
]


class Channel(StrEnum):
    """A GA4 default channel group; the value is GA4's display name."""

    DIRECT = "Direct"
    CROSS_NETWORK = "Cross-network"
    PAID_SHOPPING = "Paid Shopping"
    PAID_SEARCH = "Paid Search"
    PAID_SOCIAL = "Paid Social"
    PAID_VIDEO = "Paid Video"
    DISPLAY = "Display"
    PAID_OTHER = "Paid Other"
    ORGANIC_SHOPPING = "Organic Shopping"
    ORGANIC_SOCIAL = "Organic Social"
    ORGANIC_VIDEO = "Organic Video"
    ORGANIC_SEARCH = "Organic Search"
    REFERRAL = "Referral"
    EMAIL = "Email"
    AFFILIATES = "Affiliates"
    AUDIO = "Audio"
    SMS = "SMS"
    MOBILE_PUSH_NOTIFICATIONS = "Mobile Push Notifications"
    UNASSIGNED = "Unassigned"


# Value sets from GA4's definitions (compared after lower-casing and trimming).
_DIRECT_SOURCES = frozenset({"(direct)", ""})
_UNSET_SOURCES = frozenset({"(direct)", "(not set)", ""})
_UNSET_MEDIA = frozenset({"(none)", "(not set)", ""})
_DISPLAY_MEDIA = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIA = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_REFERRAL_MEDIA = frozenset({"referral", "app", "link"})
_EMAIL_VALUES = frozenset({"email", "e-mail", "e_mail", "e mail"})
# GA4: campaign matches ^(.*(([^a-df-z]|^)shop|shopping).*)$ ("e-shop" and "shop_" yes, "workshop" no).
_SHOPPING_CAMPAIGN = re.compile(r"(?:[^a-df-z]|^)shop|shopping")


def _is_paid_medium(medium: str) -> bool:
    # GA4: medium matches ^(.*cp.*|ppc|retargeting|paid.*)$ -- plain string tests are cheaper.
    return "cp" in medium or medium in ("ppc", "retargeting") or medium.startswith("paid")


class _Visit(NamedTuple):
    source: str
    medium: str
    campaign: str
    paid: bool
    search: bool
    social: bool
    video: bool
    shopping: bool
    shopping_campaign: bool


# GA4 evaluates the channels in this order and the first match wins; the order is part of the definition
# (e.g. a social source with a paid medium is Paid Social before Display or Paid Other is considered).
_RULES: tuple[tuple[Channel, Callable[[_Visit], bool]], ...] = (
    (Channel.DIRECT, lambda v: v.source in _DIRECT_SOURCES and v.medium in _UNSET_MEDIA),
    (Channel.CROSS_NETWORK, lambda v: "cross-network" in v.campaign),
    (Channel.PAID_SHOPPING, lambda v: (v.shopping or v.shopping_campaign) and v.paid),
    (Channel.PAID_SEARCH, lambda v: v.search and v.paid),
    (Channel.PAID_SOCIAL, lambda v: v.social and v.paid),
    (Channel.PAID_VIDEO, lambda v: v.video and v.paid),
    (Channel.DISPLAY, lambda v: v.medium in _DISPLAY_MEDIA),
    (Channel.PAID_OTHER, lambda v: v.paid),
    (Channel.ORGANIC_SHOPPING, lambda v: v.shopping or v.shopping_campaign),
    (Channel.ORGANIC_SOCIAL, lambda v: v.social or v.medium in _SOCIAL_MEDIA),
    (Channel.ORGANIC_VIDEO, lambda v: v.video or "video" in v.medium),
    (Channel.ORGANIC_SEARCH, lambda v: v.search or v.medium == "organic"),
    (Channel.REFERRAL, lambda v: v.medium in _REFERRAL_MEDIA),
    (Channel.EMAIL, lambda v: v.source in _EMAIL_VALUES or v.medium in _EMAIL_VALUES),
    (Channel.AFFILIATES, lambda v: v.medium == "affiliate"),
    (Channel.AUDIO, lambda v: v.medium == "audio"),
    (Channel.SMS, lambda v: v.source == "sms" or v.medium == "sms"),
    (
        Channel.MOBILE_PUSH_NOTIFICATIONS,
        lambda v: (
            v.medium.endswith("push")
            or "mobile" in v.medium
            or "notification" in v.medium
            or v.source == "firebase"
        ),
    ),
)


def classify_channel(
    source: str,
    medium: str,
    campaign: str | None,
    *,
    click_id_type: str | None = None,
    source_lists: SourceLists | None = None,
) -> Channel:
    """Classify a visit into its GA4 default channel group.

    The rules and their order are GA4's (see ``docs/channels.md``); values are compared case-
    insensitively and trimmed. A click id fills in what tags left unset: with ``click_id_type="gclid"``
    and medium ``"(none)"``/``"(not set)"``, the medium counts as ``"cpc"`` (and an unset source as
    ``"google"``), so auto-tagged ad clicks are paid. An explicit medium always wins over a click id.

    Parameters
    ----------
    source
        The visit's source: ``utm_source``, a click-id platform, a referrer (``"google"``,
        ``"linkedin.com"``), or ``"(direct)"``.
    medium
        The visit's medium: ``utm_medium``, ``"cpc"``, ``"organic"``, ``"referral"``, ``"(none)"``, ...
    campaign
        ``utm_campaign``, if any; GA4 reads it for Cross-network and shopping campaigns.
    click_id_type
        The click-id parameter the landing URL carried (``"gclid"``, ``"msclkid"``, ...), if any.
    source_lists
        The search/social/video/shopping lists; the packaged defaults when omitted.

    Returns
    -------
    Channel
        The first channel whose rule matches, or ``Channel.UNASSIGNED``.

    Examples
    --------
    >>> classify_channel("facebook", "cpc", None)
    <Channel.PAID_SOCIAL: 'Paid Social'>
    >>> classify_channel("(direct)", "(none)", None)
    <Channel.DIRECT: 'Direct'>
    """
    return _classify(
        source.strip().lower(),
        medium.strip().lower(),
        (campaign or "").strip().lower(),
        click_id_type,
        source_lists if source_lists is not None else SourceLists.default(),
    )


@functools.lru_cache(maxsize=4096)
def _classify(
    source: str, medium: str, campaign: str, click_id_type: str | None, source_lists: SourceLists
) -> Channel:
    platform = CLICK_ID_PLATFORMS.get(click_id_type) if click_id_type else None
    if platform is not None:
        if medium in _UNSET_MEDIA:
            medium = platform.medium
        if source in _UNSET_SOURCES:
            source = platform.source
    lists = source_lists.lookup(source) if source not in _UNSET_SOURCES else {}
    visit = _Visit(
        source=source,
        medium=medium,
        campaign=campaign,
        paid=_is_paid_medium(medium),
        search=SourceCategory.SEARCH in lists,
        social=SourceCategory.SOCIAL in lists,
        video=SourceCategory.VIDEO in lists,
        shopping=SourceCategory.SHOPPING in lists,
        shopping_campaign=_SHOPPING_CAMPAIGN.search(campaign) is not None,
    )
    for channel, matches in _RULES:
        if matches(visit):
            return channel
    return Channel.UNASSIGNED
