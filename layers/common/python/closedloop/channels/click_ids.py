"""Ad click ids: the query parameters ad platforms append to landing-page URLs, and what they mean."""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "CLICK_ID_PLATFORMS",
    "ClickIdPlatform",
]


class ClickIdPlatform(NamedTuple):
    """The ad platform behind a click-id parameter.

    Attributes
    ----------
    parameter
        The query parameter, e.g. ``"gclid"``.
    source, medium
        The source and medium a visit gets from this click id when it has no UTM tags.
    paid
        Whether the id proves an ad click. ``fbclid`` does not: Meta appends it to every outbound link,
        organic posts included.
    """

    parameter: str
    source: str
    medium: str
    paid: bool = True


# Ordered by precedence: when a URL carries several ids, the first one listed here names the visit.
# gad_source is last because it is a flag Google Ads adds next to its ids ("1", "2", ...), not an id.
CLICK_ID_PLATFORMS = MappingProxyType(
    {
        platform.parameter: platform
        for platform in (
            ClickIdPlatform("gclid", "google", "cpc"),
            ClickIdPlatform("gbraid", "google", "cpc"),
            ClickIdPlatform("wbraid", "google", "cpc"),
            # Display & Video 360 / Campaign Manager 360 clicks are display ads, not search.
            ClickIdPlatform("dclid", "google", "display"),
            ClickIdPlatform("msclkid", "bing", "cpc"),
            ClickIdPlatform("li_fat_id", "linkedin", "cpc"),
            ClickIdPlatform("ttclid", "tiktok", "cpc"),
            ClickIdPlatform("twclid", "twitter", "cpc"),
            ClickIdPlatform("rdt_cid", "reddit", "cpc"),
            ClickIdPlatform("sccid", "snapchat", "cpc"),
            ClickIdPlatform("epik", "pinterest", "cpc"),
            ClickIdPlatform("fbclid", "facebook", "social", paid=False),
            ClickIdPlatform("gad_source", "google", "cpc"),
        )
    }
)
"""Click-id parameter -> platform, in precedence order."""
