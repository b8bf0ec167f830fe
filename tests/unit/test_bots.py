"""Recognising bots, crawlers and HTTP tools by user agent."""

from __future__ import annotations

import pytest

from closedloop.bots import bot_signature, is_bot

BOTS: dict[str, str | None] = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "googlebot smartphone": (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ),
    "adsense": "Mediapartners-Google",
    "google inspection tool": "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
    "bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "yandex": "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "baidu": "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "duckduckgo": "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "applebot": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"
    ),
    "yahoo": "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
    "ahrefs": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "semrush": "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "majestic": "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "facebook preview": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "twitter preview": "Twitterbot/1.0",
    "linkedin preview": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "slack preview": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "whatsapp preview": "WhatsApp/2.23.20.0",
    "discord preview": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "gptbot": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "chatgpt user": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0",
    "claudebot": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
        "+claudebot@anthropic.com)"
    ),
    "bytespider": (
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
        "(compatible; Bytespider; spider-feedback@bytedance.com)"
    ),
    "common crawl": "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "internet archive": "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
    "uptime robot": "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "pingdom": "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "lighthouse": (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
    ),
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "python requests": "python-requests/2.32.3",
    "python urllib": "Python-urllib/3.12",
    "httpx": "python-httpx/0.27.0",
    "aiohttp": "Python/3.12 aiohttp/3.10.5",
    "go": "Go-http-client/2.0",
    "java": "Java/17.0.2",
    "apache httpclient": "Apache-HttpClient/4.5.14 (Java/17.0.2)",
    "okhttp": "okhttp/4.12.0",
    "node fetch": "node",
    "axios": "axios/1.7.2",
    "postman": "PostmanRuntime/7.39.0",
    "scrapy": "Scrapy/2.11.2 (+https://scrapy.org)",
    "perl": "libwww-perl/6.72",
}

BROWSERS: dict[str, str] = {
    "chrome windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    "safari iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1"
    ),
    "firefox linux": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
    ),
    "samsung internet": (
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
    ),
    "headless chromium of our own browser tests": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.6778.33 Safari/537.36"
    ),
    "facebook in-app browser": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.35.86;FBBV/617405473;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS]"
    ),
    "instagram in-app browser": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
        "Chrome/131.0.6778.39 Mobile Safari/537.36 Instagram 356.0.0.41.101 Android"
    ),
    "linkedin app": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 [LinkedInApp]/9.30.1234"
    ),
    "cubot phone": (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36"
    ),
    "opera": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"
    ),
}


@pytest.mark.parametrize("user_agent", BOTS.values(), ids=BOTS.keys())
def test_bots_and_tools_are_bots(user_agent: str | None) -> None:
    assert is_bot(user_agent) is True


@pytest.mark.parametrize("user_agent", BROWSERS.values(), ids=BROWSERS.keys())
def test_browsers_are_not_bots(user_agent: str) -> None:
    assert is_bot(user_agent) is False
    assert bot_signature(user_agent) is None


@pytest.mark.parametrize(
    ("user_agent", "signature"),
    [
        (BOTS["googlebot"], "Googlebot"),
        (BOTS["bytespider"], "Bytespider"),
        (BOTS["slack preview"], "Slackbot-LinkExpanding"),
        (BOTS["curl"], "curl/8.5.0"),
        (None, "(empty)"),
        ("", "(empty)"),
    ],
)
def test_bot_signature_names_the_bot(user_agent: str | None, signature: str) -> None:
    assert bot_signature(user_agent) == signature


def test_matching_ignores_case() -> None:
    assert is_bot("Mozilla/5.0 (compatible; GOOGLEBOT/2.1)")
    assert is_bot("CURL/7.88.1")
