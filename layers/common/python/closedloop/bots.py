"""Known bots, crawlers and HTTP tools, recognised by their user agent.

The tracker runs in a browser, so page views from anything else are noise in attribution: search and
SEO crawlers, link-preview fetchers, AI crawlers, uptime monitors, performance auditors and HTTP
libraries. Decisions:

- A missing or empty user agent is a bot: every browser sends one.
- ``curl``, ``Wget``, ``python-requests`` and other HTTP tools are bots, even when a person runs them by
  hand to test the endpoint: such hits are tests, not visits.
- ``HeadlessChrome`` is *not* a bot: the product's own browser tests drive the demo site with headless
  Chromium and must be counted. Lighthouse (PageSpeed Insights) and WebPageTest are bots: they identify
  themselves with their own tokens.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "BOT_PATTERNS",
    "bot_signature",
    "is_bot",
]

BOT_PATTERNS: tuple[str, ...] = (
    # Generic self-descriptions used by most crawlers ("...bot/2.1", "...spider", "...crawler").
    # (?<!cu) keeps the CUBOT phone brand; (?<![a-z]) keeps "robot" words out of the "bot" group.
    r"(?<!cu)bot\b",
    r"bot[/_-]",
    r"spider",
    r"crawl",
    r"scraper",
    r"slurp",
    r"archiver",
    # Search engines and their special-purpose fetchers.
    r"googlebot",
    r"adsbot-google",
    r"mediapartners-google",
    r"apis-google",
    r"google-inspectiontool",
    r"googleother",
    r"feedfetcher-google",
    r"google-read-aloud",
    r"storebot-google",
    r"google web preview",
    r"bingpreview",
    r"yandex(?:bot|images|metrika|mobilebot)",
    r"baiduspider",
    r"sogou",
    r"seznambot",
    r"yeti/",
    # Link previews and social fetchers.
    r"facebookexternalhit",
    r"facebookcatalog",
    r"meta-externalagent",
    r"whatsapp/",
    r"skypeuripreview",
    r"microsoftpreview",
    r"embedly",
    r"iframely",
    r"vkshare",
    r"snap url preview",
    r"mastodon/",
    r"bluesky cardyb",
    # AI crawlers and assistants fetching on a user's behalf.
    r"gptbot",
    r"chatgpt-user",
    r"oai-searchbot",
    r"claudebot",
    r"claude-user",
    r"claude-web",
    r"anthropic-ai",
    r"perplexitybot",
    r"perplexity-user",
    r"ccbot",
    r"bytespider",
    r"amazonbot",
    r"cohere-ai",
    r"diffbot",
    # SEO tools.
    r"ahrefs",
    r"semrush",
    r"mj12bot",
    r"dotbot",
    r"blexbot",
    r"dataforseo",
    r"serpstat",
    r"screaming frog",
    r"sitebulb",
    # Monitoring and performance auditing.
    r"uptimerobot",
    r"pingdom",
    r"statuscake",
    r"site24x7",
    r"newrelicpinger",
    r"datadog",
    r"chrome-lighthouse",
    r"lighthouse",
    r"gtmetrix",
    r"\bptst/",
    r"phantomjs",
    r"prerender",
    # HTTP clients and tools.
    r"^curl/",
    r"\bcurl/",
    r"\bwget",
    r"python-requests",
    r"python-urllib",
    r"python-httpx",
    r"aiohttp",
    r"\bhttpx/",
    r"go-http-client",
    r"java/",
    r"java-http-client",
    r"apache-httpclient",
    r"okhttp",
    r"libwww-perl",
    r"node-fetch",
    r"axios/",
    r"undici",
    r"scrapy",
    r"postmanruntime",
    r"insomnia/",
    r"httpie",
    r"guzzlehttp",
    r"ruby\b",
    r"faraday",
    r"dart:io",
    r"\bdeno/",
    r"headless(?!chrome)",
)
"""Case-insensitive regular expressions; a user agent matching any of them is a bot."""

_BOT = re.compile("|".join(f"(?:{pattern})" for pattern in BOT_PATTERNS), re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def bot_signature(user_agent: str | None) -> str | None:
    """Return the part of a user agent that marks it as a bot, or ``None`` for a browser.

    Parameters
    ----------
    user_agent
        The ``User-Agent`` header.

    Returns
    -------
    str | None
        The matched text (e.g. ``"Googlebot"``, ``"curl/"``), ``"(empty)"`` for a missing or blank user
        agent, ``None`` when no pattern matches.
    """
    if user_agent is None or not user_agent.strip():
        return "(empty)"
    match = _BOT.search(user_agent)
    return match.group(0) if match else None


def is_bot(user_agent: str | None) -> bool:
    """Whether a request comes from a bot, crawler or HTTP tool rather than a browser.

    Parameters
    ----------
    user_agent
        The ``User-Agent`` header; missing or blank counts as a bot.

    Returns
    -------
    bool
        True for known bots and tools (including ``curl``); False for browsers, headless Chromium
        (``HeadlessChrome``) included.

    Examples
    --------
    >>> is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    True
    >>> is_bot("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36")
    False
    """
    return bot_signature(user_agent) is not None
