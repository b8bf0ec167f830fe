"""``make demo``: a synthetic company's visitors and leads through the real HTTP endpoints, then a report.

Everything runs on 127.0.0.1: moto's server stands in for DynamoDB, the local gateway for API Gateway,
and the functions are the ones deployed to Lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from closedloop.clock import now_ms
from closedloop.local.simulation import SITE, SimulatedVisitor, simulate_company
from closedloop.local.stack import LocalStack
from closedloop.store import DynamoStore

OUT = Path("out")
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def _post(url: str, body: dict, content_type: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the local gateway on 127.0.0.1
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": content_type, "User-Agent": BROWSER_UA, "Origin": SITE},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
        return json.loads(reply.read())


def _progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stderr.write(f"\r  simulating [{'#' * filled}{'.' * (width - filled)}] {done}/{total} visitors, {rate:.0f}/s")
    sys.stderr.flush()


def play_visitor(api: str, visitor: SimulatedVisitor, sequence: list[int]) -> None:
    """Each session is one beacon batch, as the tracker sends it; a converting visitor then posts a form."""
    for device, start, arrival, pages in visitor.sessions:
        sequence[0] += 1
        session_id = f"s{visitor.number:06d}x{sequence[0]:08d}"
        landing = arrival.landing.replace("{n}", str(sequence[0]))
        urls = [landing] + [SITE + path for path in pages]
        events = []
        for index, url in enumerate(urls):
            events.append({
                "type": "page_view",
                "event_id": f"e{sequence[0]:08d}n{index:02d}x{visitor.number:06d}",
                "visitor_id": visitor.visitor_ids[device],
                "session_id": session_id,
                "url": url,
                "referrer": arrival.referrer if index == 0 else urls[index - 1],
                "ts": start + index * 45_000,
            })
        _post(f"{api}/collect", {"sent_at": now_ms(), "events": events}, "text/plain;charset=UTF-8")
    if visitor.email:
        last_device = visitor.sessions[-1][0]
        _post(f"{api}/identify", {
            "email": visitor.email, "visitor_id": visitor.visitor_ids[last_device], "company": visitor.company,
            "form_id": "contact-sales", "page_url": f"{SITE}/contact",
        }, "application/json")
        for device_id in visitor.visitor_ids:  # the other device, if any, is identified too (a login)
            if device_id != visitor.visitor_ids[last_device]:
                _post(f"{api}/identify", {"email": visitor.email, "visitor_id": device_id, "form_id": "login"},
                      "application/json")


def report(store: DynamoStore, days: int) -> str:
    today = datetime.now(UTC).date()
    touches = Counter()
    for offset in range(days + 1):
        for touch in store.touches_on_day((today - timedelta(days=offset)).isoformat()):
            touches[touch.channel] += 1
    leads = Counter(
        (lead.original_source.channel if lead.original_source else "(no web touch)")
        for lead in store.leads_updated_on(today.isoformat())
    )
    lines = [f"{'channel':<18}{'touches':>9}{'leads (original source)':>26}{'leads per 100 touches':>24}"]
    for channel, count in touches.most_common():
        lines.append(f"{channel:<18}{count:>9}{leads[channel]:>26}{100 * leads[channel] / count:>24.1f}")
    lines.append(f"{'total':<18}{sum(touches.values()):>9}{sum(leads.values()):>26}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=400)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.monotonic()
    with LocalStack() as stack:
        print(f"local stack up on {stack.url} (moto on {stack.moto_url})")
        visitors = list(simulate_company(visitors=args.visitors, days=args.days, now_ms=now_ms(), seed=args.seed))
        sequence = [0]
        OUT.mkdir(exist_ok=True)
        # What the functions print (JSON logs, EMF metrics) goes where Lambda would send it: a log file.
        with (OUT / "function-logs.jsonl").open("w") as logs, contextlib.redirect_stdout(logs):
            for done, visitor in enumerate(visitors, start=1):
                play_visitor(stack.url, visitor, sequence)
                if done % 10 == 0 or done == len(visitors):
                    _progress(done, len(visitors), started)
                    # moto keeps every item as Python objects in this process: without this, each full
                    # garbage collection walks all of them (the run, and the exit, get slower and slower).
                    gc.freeze()
        sys.stderr.write("\n")
        store = DynamoStore(stack.table_name, client=stack.dynamodb())
        print()
        print(report(store, args.days))
    print(f"\ndone in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
