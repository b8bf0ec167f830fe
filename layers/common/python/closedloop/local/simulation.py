"""A seeded synthetic company: visitors from a dozen channels and campaigns, their sessions, who fills a
form, and what the CRM then does with each lead.

The ground truth is explicit: each GA4 channel has a known *lift* (:data:`TRUE_LIFT`), the added chance
that a lead exposed to it becomes a deal. Whether a lead gets a deal depends on nothing else, so the demo
(and its test) can check which attribution models recover the channels that really drive revenue.

The journeys are shaped the way B2B journeys look: a visitor discovers the company through a campaign, a
search, a social post or a partner, then comes back *directly* or through a *brand search* before filling
the form. Those closing channels have (almost) no lift of their own: last-touch attribution gives them
the revenue anyway, which is the bias the data-driven models should avoid.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "CHANNEL_MIX",
    "DAY_MS",
    "PAGE_VIEW_GAP_MS",
    "RETURNS",
    "SITE",
    "TRUE_LIFT",
    "Arrival",
    "DealPlan",
    "SimulatedVisitor",
    "ad_spend_rows",
    "plan_deals",
    "simulate_company",
    "true_revenue_share",
]

SITE = "https://www.acme-analytics.test"
DAY_MS = 86_400_000
PAGE_VIEW_GAP_MS = 45_000  # a session's page views are this far apart; the form is posted after the last
BASE_DEAL_CHANCE = 0.03
# The simulated visitors are a sample of the company's traffic, but the ad platforms bill every click.
SPEND_SCALE = 25  # a lead's chance of a deal with no channel's help

# Ground truth, by GA4 channel: the added chance that a lead exposed to the channel becomes a deal.
TRUE_LIFT: dict[str, float] = {
    "Paid Social": 0.30,
    "Referral": 0.24,
    "Email": 0.18,
    "Paid Video": 0.12,
    "Organic Search": 0.08,
    "Affiliates": 0.05,
    "Paid Search": 0.03,
    "Organic Social": 0.03,
    "Organic Video": 0.02,
    "Display": 0.0,
    "Direct": 0.0,
}


@dataclass(frozen=True)
class Arrival:
    """How one session starts: the landing URL (with its tags) and the referrer.

    ``{n}`` in the landing URL is replaced by a unique number (an ad click id).
    """

    name: str
    channel: str  # the GA4 channel the product should classify this arrival into
    landing: str
    referrer: str
    weight: float  # share of discovery sessions that start this way
    cost_per_visit: float = 0.0  # what the ad platform bills per click (0: not paid)

    @property
    def lift(self) -> float:
        """Ground truth: the added chance that a lead exposed to this arrival's channel gets a deal."""
        return TRUE_LIFT[self.channel]

    @property
    def source(self) -> str:
        return _query_value(self.landing, "utm_source") or ""

    @property
    def campaign(self) -> str:
        return _query_value(self.landing, "utm_campaign") or ""


def _query_value(url: str, name: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def _tagged(path: str, source: str, medium: str, campaign: str, click: str = "") -> str:
    url = f"{SITE}{path}?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
    return url + (f"&{click}={click[0].upper()}{{n}}" if click else "")


# Discovery: how visitors first find the company (and sometimes come back through another campaign).
CHANNEL_MIX: tuple[Arrival, ...] = (
    Arrival(
        "google ads generic",
        "Paid Search",
        _tagged("/pricing", "google", "cpc", "generic-attribution", "gclid"),
        "https://www.google.com/",
        0.09,
        6.0,
    ),
    Arrival(
        "bing ads generic",
        "Paid Search",
        _tagged("/pricing", "bing", "cpc", "generic-bing", "msclkid"),
        "https://www.bing.com/",
        0.03,
        4.0,
    ),
    Arrival(
        "google organic", "Organic Search", f"{SITE}/blog/attribution-guide", "https://www.google.com/", 0.13
    ),
    Arrival(
        "duckduckgo organic",
        "Organic Search",
        f"{SITE}/blog/attribution-guide",
        "https://duckduckgo.com/",
        0.03,
    ),
    Arrival(
        "linkedin ads",
        "Paid Social",
        _tagged("/", "linkedin", "paid_social", "abm-q4", "li_fat_id"),
        "https://www.linkedin.com/",
        0.08,
        12.0,
    ),
    Arrival(
        "facebook ads",
        "Paid Social",
        _tagged("/", "facebook", "paid_social", "lookalike-saas", "fbclid"),
        "https://m.facebook.com/",
        0.05,
        3.0,
    ),
    Arrival("linkedin organic", "Organic Social", f"{SITE}/blog/pipeline", "https://www.linkedin.com/", 0.07),
    Arrival("x organic", "Organic Social", f"{SITE}/blog/pipeline", "https://t.co/", 0.03),
    Arrival("newsletter", "Email", _tagged("/", "newsletter", "email", "november-digest"), "", 0.07),
    Arrival(
        "nurture emails", "Email", _tagged("/customers", "hubspot", "email", "nurture-webinar"), "", 0.04
    ),
    Arrival("partner blog", "Referral", f"{SITE}/", "https://blog.partner-example.org/best-tools", 0.06),
    Arrival("youtube organic", "Organic Video", f"{SITE}/", "https://www.youtube.com/", 0.05),
    Arrival(
        "youtube ads",
        "Paid Video",
        _tagged("/product", "youtube", "cpv", "explainer-video"),
        "https://www.youtube.com/",
        0.05,
        0.9,
    ),
    Arrival("display retargeting", "Display", _tagged("/", "dv360", "display", "retargeting"), "", 0.09, 1.5),
    Arrival(
        "affiliate reviews",
        "Affiliates",
        _tagged("/pricing", "reviewsite", "affiliate", "top10"),
        "",
        0.04,
        2.5,
    ),
)
# Coming back: typing the address, or searching for the brand (a paid brand ad is clicked).
RETURNS: tuple[Arrival, ...] = (
    Arrival("direct", "Direct", f"{SITE}/", "", 0.6),
    Arrival(
        "google ads brand",
        "Paid Search",
        _tagged("/", "google", "cpc", "brand", "gclid"),
        "https://www.google.com/",
        0.4,
        1.8,
    ),
)
PAGES = ("/", "/pricing", "/product", "/customers", "/blog/pipeline", "/integrations", "/security")
COMPANIES = (
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Acme Retail",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Massive Dynamic",
)
CRMS = ("hubspot", "salesforce", "pipedrive", "generic")


@dataclass
class SimulatedVisitor:
    number: int
    visitor_ids: list[str]  # one per device
    sessions: list[tuple[int, int, Arrival, list[str]]] = field(
        default_factory=list
    )  # (device, start, arrival, pages)
    email: str | None = None
    company: str = ""

    @property
    def channels(self) -> set[str]:
        """The GA4 channels this visitor was exposed to (its true treatment)."""
        return {arrival.channel for _, _, arrival, _ in self.sessions}

    @property
    def form_filled_at(self) -> int:
        """When the visitor posted the form (ms, simulated time): after the last session's last page view."""
        _, start, _, pages = self.sessions[-1]
        return start + (len(pages) + 1) * PAGE_VIEW_GAP_MS

    @property
    def deal_chance(self) -> float:
        """Ground truth: the chance this visitor, once a lead, becomes a deal."""
        return min(0.95, BASE_DEAL_CHANCE + sum(TRUE_LIFT[c] for c in self.channels))


def _id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(
        rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=22)
    )


def simulate_company(*, visitors: int, days: int, now_ms: int, seed: int = 7) -> Iterator[SimulatedVisitor]:
    """Yield visitors with their sessions over the last ``days`` days; some fill the contact form.

    Whether a visitor fills a form depends on how often it came back, not on where from: the channels'
    effect is on what happens to the lead afterwards (:func:`plan_deals`).
    """
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation
    weights = [a.weight for a in CHANNEL_MIX]
    return_weights = [a.weight for a in RETURNS]
    for number in range(visitors):
        devices = [_id(rng, "v")] + ([_id(rng, "m")] if rng.random() < 0.15 else [])
        company = rng.choice(COMPANIES)
        visitor = SimulatedVisitor(number, devices, company=company)
        start = now_ms - rng.randint(2, max(days, 3)) * DAY_MS + rng.randint(0, DAY_MS // 2)
        planned = rng.choices([1, 2, 3, 4, 5], weights=[30, 30, 20, 13, 7])[0]
        for session in range(planned):
            if session == 0 or rng.random() < 0.4:
                arrival = rng.choices(CHANNEL_MIX, weights)[0]
            else:
                arrival = rng.choices(RETURNS, return_weights)[0]
            device = 0 if len(devices) == 1 or session == 0 else rng.randrange(len(devices))
            pages = [rng.choice(PAGES) for _ in range(rng.randint(0, 3))]
            visitor.sessions.append((device, start, arrival, pages))
            start += rng.randint(DAY_MS // 12, 3 * DAY_MS)
            if start > now_ms - 3_600_000:
                break
        if rng.random() < 0.30 + 0.08 * (len(visitor.sessions) - 1):
            visitor.email = f"person{number}@{company.lower().replace(' ', '')}.example"
            if visitor.sessions[-1][2] not in RETURNS and rng.random() < 0.6 and start < now_ms - 3_600_000:
                # Most come back to fill the form: they type the address or search for the brand.
                arrival = rng.choices(RETURNS, return_weights)[0]
                visitor.sessions.append(
                    (rng.randrange(len(devices)), start, arrival, ["/pricing", "/contact"])
                )
        yield visitor


@dataclass(frozen=True)
class DealPlan:
    """What the CRM does with one lead's deal: created, moved a stage, then won, lost, or still open."""

    deal_id: str
    crm: str
    email: str
    amount: int
    outcome: str  # "won", "lost" or "open"
    channels: frozenset[str]  # the lead's true exposure (for the ground truth)


def plan_deals(leads: list[SimulatedVisitor], *, seed: int = 7) -> list[DealPlan]:
    """Decide from the ground truth which leads become deals, in which CRM, for how much, and how they end."""
    rng = random.Random(seed * 7919 + 1)  # noqa: S311 - a seeded simulation
    plans = []
    for visitor in leads:
        assert visitor.email is not None
        if rng.random() >= visitor.deal_chance:
            continue
        crm = rng.choices(CRMS, weights=[35, 25, 20, 20])[0]
        amount = rng.choices(
            [4_800, 9_600, 12_000, 18_000, 24_000, 36_000, 60_000], [18, 22, 20, 15, 12, 8, 5]
        )[0]
        outcome = rng.choices(["won", "lost", "open"], weights=[60, 20, 20])[0]
        plans.append(
            DealPlan(
                f"{crm[:2].upper()}-{10_000 + visitor.number}",
                crm,
                visitor.email,
                amount,
                outcome,
                frozenset(visitor.channels),
            )
        )
    return plans


def true_revenue_share(leads: list[SimulatedVisitor]) -> dict[str, float]:
    """Each channel's share of the revenue it causes, by construction of the simulation.

    A channel adds its lift to the deal chance of every lead exposed to it, and won deals' amounts do not
    depend on the channel, so the revenue a channel causes is proportional to the sum of its lift over the
    leads exposed to it (the expected removal effect). The base chance is caused by no channel.
    """
    caused: dict[str, float] = defaultdict(float)
    for visitor in leads:
        for channel in visitor.channels:
            caused[channel] += TRUE_LIFT[channel]
    total = sum(caused.values()) or 1.0
    return {channel: value / total for channel, value in sorted(caused.items())}


def ad_spend_rows(visitors: list[SimulatedVisitor], *, seed: int = 7) -> list[dict[str, str]]:
    """The ad platforms' daily cost reports: paid visits x cost per click, with some noise.

    Columns ``date, channel, source, campaign, cost, currency`` (the job's ``spend/`` CSV).
    """
    rng = random.Random(seed * 31 + 5)  # noqa: S311 - a seeded simulation
    clicks: Counter[tuple[str, Arrival]] = Counter()
    for visitor in visitors:
        for _, start, arrival, _ in visitor.sessions:
            if arrival.cost_per_visit:
                clicks[(datetime.fromtimestamp(start / 1000, tz=UTC).date().isoformat(), arrival)] += 1
    rows = []
    for (day, arrival), count in sorted(clicks.items(), key=lambda item: (item[0][0], item[0][1].name)):
        cost = count * SPEND_SCALE * arrival.cost_per_visit * rng.uniform(0.8, 1.25)
        rows.append(
            {
                "date": day,
                "channel": arrival.channel,
                "source": arrival.source,
                "campaign": arrival.campaign,
                "cost": f"{cost:.2f}",
                "currency": "USD",
            }
        )
    return rows
