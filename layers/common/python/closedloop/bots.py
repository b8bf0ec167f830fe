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
    # Generic self-descriptions used by most crawlers: Googlebot, bingbot, Applebot, DuckDuckBot,
    # YandexBot, LinkedInBot, Twitterbot, Slackbot-LinkExpanding, Discordbot, Pinterestbot, GPTBot,
    # ClaudeBot, PerplexityBot, CCBot, Amazonbot, AhrefsBot, SemrushBot, MJ12bot, UptimeRobot, ...
    # (?<!cu) keeps the CUBOT phone brand out.
    r"(?<!cu)bot\b",
    r"bot[_-]",
    r"spider",  # Baiduspider, Bytespider, Sogou web spider
    r"crawl",
    r"scraper",
    r"slurp",  # Yahoo
    r"archiver",  # ia_archiver
    # Fetchers whose names do not say "bot".
    r"mediapartners-google",
    r"apis-google",
    r"google-inspectiontool",
    r"googleother",
    r"feedfetcher-google",
    r"google-read-aloud",
    r"bingpreview",
    r"yandex(?:images|metrika|mobilebot)",
    r"yeti/",  # Naver
    # Link previews.
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
    # AI assistants fetching on a user's behalf.
    r"chatgpt-user",
    r"claude-user",
    r"claude-web",
    r"anthropic-ai",
    r"perplexity-user",
    r"cohere-ai",
    # SEO tools, monitoring and performance auditing.
    r"ahrefs",
    r"semrush",
    r"dataforseo",
    r"serpstat",
    r"screaming frog",
    r"sitebulb",
    r"pingdom",
    r"statuscake",
    r"site24x7",
    r"newrelicpinger",
    r"datadog",
    r"lighthouse",  # Chrome-Lighthouse, PageSpeed Insights
    r"gtmetrix",
    r"\bptst/",  # WebPageTest
    r"phantomjs",
    r"prerender",
    r"headless(?!chrome)",
    # HTTP clients and command-line tools.
    r"\bcurl/",
    r"\bwget",
    r"python-requests",
    r"python-urllib",
    r"python-httpx",
    r"aiohttp",
    r"go-http-client",
    r"\bjava/",
    r"java-http-client",
    r"apache-httpclient",
    r"okhttp",
    r"libwww-perl",
    r"node-fetch",
    r"^node$",
    r"axios/",
    r"undici",
    r"scrapy",
    r"postmanruntime",
    r"insomnia/",
    r"httpie",
    r"guzzlehttp",
    r"^ruby\b",
    r"faraday",
    r"dart:io",
    r"\bdeno/",
)
"""Lower-case regular expressions, searched in the lower-cased user agent; any match means a bot."""

# One alternation over the lower-cased text: about 4x faster than the same pattern with re.IGNORECASE.
_BOT = re.compile("|".join(f"(?:{pattern})" for pattern in BOT_PATTERNS))
_TOKEN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


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
        The product token that matched (e.g. ``"Googlebot"``, ``"curl/8.5.0"``), ``"(empty)"`` for a
        missing or blank user agent, ``None`` when no pattern matches.
    """
    if user_agent is None or not user_agent.strip():
        return "(empty)"
    match = _BOT.search(user_agent.lower())
    if match is None:
        return None
    # Widen the match to its whole product token ("bot" -> "Googlebot") so logs name the bot.
    start, end = match.start(), match.end()
    while start > 0 and user_agent[start - 1] in _TOKEN_CHARACTERS:
        start -= 1
    while end < len(user_agent) and user_agent[end] in _TOKEN_CHARACTERS:
        end += 1
    return user_agent[start:end].strip(" /") or match.group(0)


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
    >>> is_bot("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0 Safari/537.36")
    False
    """
    return bot_signature(user_agent) is not None
