"""Marketing channels: the GA4 default channel group rules and the source lists they use.

The lists are Google's own source-category list (packaged) plus closedloop's additions and yours.

>>> from closedloop.channels import Channel, SourceLists, classify_channel
>>> lists = SourceLists.default().extended(social=["circle.so"])
>>> classify_channel("circle.so", "referral", None, source_lists=lists)
<Channel.ORGANIC_SOCIAL: 'Organic Social'>
"""

from closedloop.channels.click_ids import CLICK_ID_PLATFORMS, ClickIdPlatform
from closedloop.channels.rules import Channel, classify_channel
from closedloop.channels.sources import (
    GoogleSourceCategory,
    SourceCategory,
    SourceListDocument,
    SourceLists,
    read_google_source_categories,
)

__all__ = [
    "CLICK_ID_PLATFORMS",
    "Channel",
    "ClickIdPlatform",
    "GoogleSourceCategory",
    "SourceCategory",
    "SourceListDocument",
    "SourceLists",
    "classify_channel",
    "read_google_source_categories",
]
