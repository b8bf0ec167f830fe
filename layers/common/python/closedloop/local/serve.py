"""``make serve``: the local stack and the demo site, until Ctrl-C, printing touches and leads as they land.

Open the printed URL, browse (try the tagged link), fill the contact form, and watch the visitor's
touches and then the lead appear in the terminal.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from closedloop.clock import day_of, now_ms
from closedloop.local.stack import LocalStack
from closedloop.store import DynamoStore


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")


def watch(store: DynamoStore, *, interval: float = 1.5) -> None:
    """Print every new touch and every new or updated lead of today, until interrupted."""
    seen_touches: set[str] = set()
    seen_leads: dict[str, int] = {}
    while True:
        today = day_of(now_ms())
        for touch in store.touches_on_day(today):
            if touch.touch_id not in seen_touches:
                seen_touches.add(touch.touch_id)
                campaign = f" / {touch.campaign}" if touch.campaign else ""
                print(
                    f"{_clock(touch.occurred_at)}  touch  visitor {touch.visitor_id[:10]}…  "
                    f"{touch.channel}: {touch.source} / {touch.medium}{campaign}  {touch.landing_path}"
                )
        for lead in store.leads_updated_on(today):
            if seen_leads.get(lead.lead_id) != lead.version:
                seen_leads[lead.lead_id] = lead.version
                origin = lead.original_source.channel if lead.original_source else "(no web touch)"
                links = store.links_of_lead(lead.lead_id)
                print(
                    f"{_clock(lead.updated_at)}  lead   {lead.lead_id[:14]}…  original source: {origin}  "
                    f"devices: {len(links)}  submissions: {lead.submissions}"
                )
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with LocalStack(port=args.port) as stack:
        print(f"Closedloop local stack on {stack.url}")
        print(
            f"  demo site:  {stack.url}/site/index.html"
            "?utm_source=newsletter&utm_medium=email&utm_campaign=launch"
        )
        print(
            f"  API:        {stack.url}/openapi.json"
            f"   (DynamoDB, S3 and Secrets Manager: moto on {stack.moto_url})"
        )
        print("Touches and leads appear below as they land. Ctrl-C stops it; nothing is kept.\n")
        try:
            watch(DynamoStore(stack.table_name, client=stack.dynamodb()))
        except KeyboardInterrupt:
            print("stopped")


if __name__ == "__main__":
    main()
