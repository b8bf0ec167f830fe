"""Marketing channels: the GA4 default channel group rules and the source lists they use.

>>> from closedloop.channels import Channel, SourceLists, classify_channel
>>> lists = SourceLists.default().extended(social=["circle.so"])
>>> classify_channel("circle.so", "referral", None, source_lists=lists)
<Channel.ORGANIC_SOCIAL: 'Organic Social'>
"""

from closedloop.channels.click_ids import CLICK_ID_PLATFORMS, ClickIdPlatform
from closedloop.channels.rules import Channel, classify_channel
from closedloop.channels.sources import SourceCategory, SourceListDocument, SourceLists

__all__ = [
    "CLICK_ID_PLATFORMS",
    "Channel",
    "ClickIdPlatform",
    "SourceCategory",
    "SourceListDocument",
    "SourceLists",
    "classify_channel",
]
