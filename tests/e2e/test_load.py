"""A bounded load test on 127.0.0.1: concurrent clients post page views to the local gateway; every event
the API accepted is stored, counted in (the replies) and out (the table).

Bounded twice: a fixed number of events, and a time limit after which the clients stop by themselves.
Some requests are sent twice (a tracker's retry) and must be stored once. Throughput is printed; it
measures this machine's local stack (one function instance per route, moto), not AWS.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from closedloop.local.stack import LocalStack
from tests.support import BROWSER_UA

CLIENTS = 8
EVENTS = 2_000
VISITORS_PER_CLIENT = 10
RETRY_EVERY = 20  # every 20th request is sent again, as a tracker retries an unanswered beacon
TIME_LIMIT_S = 90.0


def client(index: int, base_url: str, deadline: float) -> Counter[str]:
    """Send this client's share of the events, one per request; count what the API says it did."""
    counts: Counter[str] = Counter()
    session = requests.Session()
    session.headers["User-Agent"] = BROWSER_UA  # requests' own agent is a bot: dropped, not stored
    share = EVENTS // CLIENTS
    for n in range(share):
        if time.monotonic() > deadline:
            counts["unsent"] += share - n
            break
        visitor = f"Load{index:02d}Visitor{n % VISITORS_PER_CLIENT:02d}AAAAAAAAAA"
        event = {
            "event_id": f"load-{index:02d}-{n:05d}",
            "visitor_id": visitor,
            "url": f"https://www.acme.test/p/{n % 7}?utm_source=load&utm_medium=test&utm_campaign=c{n % 3}",
            "sent_at": int(time.time() * 1000),
        }
        for _attempt in range(2 if n % RETRY_EVERY == 0 else 1):
            reply = session.post(f"{base_url}/collect", json=event, timeout=10)
            counts[f"status {reply.status_code}"] += 1
            if reply.status_code == 200:
                body = reply.json()
                counts["accepted"] += body["accepted"]
                counts["duplicates"] += body["duplicates"]
    return counts


def stored_events(local_stack: LocalStack) -> set[str]:
    dynamodb = local_stack.dynamodb()
    found: set[str] = set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=local_stack.table_name,
        FilterExpression="begins_with(pk, :v) AND begins_with(sk, :e)",
        ExpressionAttributeValues={":v": {"S": "V#Load"}, ":e": {"S": "E#"}},
        ProjectionExpression="sk",
    ):
        found |= {item["sk"]["S"].removeprefix("E#") for item in page["Items"]}
    return found


@pytest.mark.slow
def test_every_accepted_event_is_stored_once_under_concurrent_load(local_stack: LocalStack) -> None:
    # Given 8 clients and 2,000 page views (5% of them sent twice)
    deadline = time.monotonic() + TIME_LIMIT_S
    started = time.perf_counter()

    # When they all post at once
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        totals: Counter[str] = sum(
            pool.map(lambda i: client(i, local_stack.url, deadline), range(CLIENTS)), Counter()
        )
    elapsed = time.perf_counter() - started

    # Then every event was answered, accepted once, and stored once: counted in and out
    requests_sent = sum(v for k, v in totals.items() if k.startswith("status"))
    print(
        f"\nload: {EVENTS} events, {requests_sent} requests from {CLIENTS} clients in {elapsed:.1f} s: "
        f"{requests_sent / elapsed:.0f} requests/s; {dict(totals)}"
    )
    assert totals["unsent"] == 0, f"the time limit of {TIME_LIMIT_S} s stopped the clients"
    assert totals["status 200"] == requests_sent, totals
    assert totals["accepted"] == EVENTS
    assert totals["duplicates"] == CLIENTS * len(range(0, EVENTS // CLIENTS, RETRY_EVERY))
    assert len(stored_events(local_stack)) == totals["accepted"]


def test_the_load_clients_stop_by_themselves_at_the_time_limit(local_stack: LocalStack) -> None:
    # A deadline already past: each client sends nothing and says how much it left unsent.
    counts: Any = client(0, local_stack.url, deadline=time.monotonic() - 1)
    assert counts == Counter({"unsent": EVENTS // CLIENTS})
