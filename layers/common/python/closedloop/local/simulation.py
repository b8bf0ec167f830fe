"""A seeded synthetic company: visitors from a dozen channels, their sessions, and who fills a form.

The ground truth is explicit: each channel has a known lift on the chance that a visitor converts, so
the demo (and its test) can check what the product recovers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["CHANNEL_MIX", "Arrival", "SimulatedVisitor", "simulate_company"]

SITE = "https://www.acme-analytics.test"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Arrival:
    """How one session starts: the landing URL (with its tags) and the referrer."""

    name: str
    landing: str
    referrer: str
    weight: float  # share of sessions that start this way
    lift: float  # ground truth: added chance that a visitor exposed to it converts


CHANNEL_MIX: tuple[Arrival, ...] = (
    Arrival("google ads brand", f"{SITE}/?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=G{{n}}",
            "https://www.google.com/", 0.12, 0.10),
    Arrival("google ads generic", f"{SITE}/pricing?utm_source=google&utm_medium=cpc&utm_campaign=generic&gclid=G{{n}}",
            "https://www.google.com/", 0.10, 0.04),
    Arrival("organic search", f"{SITE}/blog/attribution-guide", "https://www.google.com/", 0.16, 0.03),
    Arrival("bing organic", f"{SITE}/blog/attribution-guide", "https://www.bing.com/", 0.03, 0.03),
    Arrival("linkedin ads", f"{SITE}/?utm_source=linkedin&utm_medium=paid_social&utm_campaign=abm-q4&li_fat_id=L{{n}}",
            "https://www.linkedin.com/", 0.10, 0.08),
    Arrival("linkedin organic", f"{SITE}/blog/pipeline", "https://www.linkedin.com/", 0.05, 0.01),
    Arrival("newsletter", f"{SITE}/?utm_source=newsletter&utm_medium=email&utm_campaign=november-digest", "",
            0.08, 0.06),
    Arrival("partner blog", f"{SITE}/", "https://blog.partner-example.org/best-tools", 0.05, 0.05),
    Arrival("youtube", f"{SITE}/", "https://www.youtube.com/", 0.04, 0.01),
    Arrival("display retargeting", f"{SITE}/?utm_source=dv360&utm_medium=display&utm_campaign=retargeting",
            "", 0.07, 0.00),
    Arrival("affiliate", f"{SITE}/pricing?utm_source=reviewsite&utm_medium=affiliate&utm_campaign=top10", "",
            0.04, 0.02),
    Arrival("direct", f"{SITE}/", "", 0.16, 0.00),
)
PAGES = ("/", "/pricing", "/product", "/customers", "/blog/pipeline", "/contact")


@dataclass
class SimulatedVisitor:
    number: int
    visitor_ids: list[str]  # one per device
    sessions: list[tuple[int, int, Arrival, list[str]]] = field(default_factory=list)  # (device, start, arrival, pages)
    email: str | None = None
    company: str = ""


def _id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=22))


def simulate_company(*, visitors: int, days: int, now_ms: int, seed: int = 7) -> Iterator[SimulatedVisitor]:
    """Yield visitors with their sessions over the last ``days`` days; some convert into leads."""
    rng = random.Random(seed)
    weights = [a.weight for a in CHANNEL_MIX]
    for number in range(visitors):
        devices = [_id(rng, "v")] + ([_id(rng, "m")] if rng.random() < 0.15 else [])
        visitor = SimulatedVisitor(number, devices, company=rng.choice(["Northwind", "Globex", "Initech", "Umbrella",
                                                                         "Hooli", "Stark", "Wayne", "Acme Retail"]))
        start = now_ms - rng.randint(2, days) * DAY_MS + rng.randint(0, DAY_MS // 2)
        chance = 0.02
        for session in range(rng.choices([1, 2, 3, 4], weights=[45, 30, 15, 10])[0]):
            arrival = rng.choices(CHANNEL_MIX, weights)[0]
            device = 0 if len(devices) == 1 or session == 0 else rng.randrange(len(devices))
            pages = [rng.choice(PAGES) for _ in range(rng.randint(0, 3))]
            visitor.sessions.append((device, start, arrival, pages))
            chance += arrival.lift
            start += rng.randint(DAY_MS // 12, 3 * DAY_MS)
            if start > now_ms - 60_000:
                break
        if rng.random() < chance:
            visitor.email = f"person{number}@{visitor.company.lower().replace(' ', '')}.example"
        yield visitor
