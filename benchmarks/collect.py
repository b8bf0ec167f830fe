"""Collect function: cold import time, and our own warm overhead per event.

DynamoDB is answered by an in-process stub (no network, no moto), so what is timed is Closedloop's
code and Powertools: parsing, validation, traffic source, sessionisation, serialisation.

    .venv/bin/python benchmarks/collect.py [--events 5000]

Targets (issue 2): cold import under 300 ms; warm overhead under 1 ms per event at p50.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common" / "python")]

ENV = {
    "TABLE_NAME": "bench",
    "ALLOWED_ORIGINS": "https://www.acme.test",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "AWS_DEFAULT_REGION": "us-east-1",
}
IMPORT_SNIPPET = """
import time, importlib.util, sys
sys.path[:0] = [{root!r}, {layer!r}]
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("collect_handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter() - start
# The first request also pays what the handler imports lazily (boto3 for the store).
from tests.support import api_event
from closedloop.local.gateway import LambdaContextStub
sys.path.insert(0, {bench!r})
from collect import StubDynamoDB
module.store._client = StubDynamoDB()
import json, io, contextlib
body = {{"event_id": "evt-00000001", "visitor_id": "v1siTorAAAAAAAAAAAAAAA", "url": "https://www.acme.test/"}}
with contextlib.redirect_stdout(io.StringIO()):
    module.handler(api_event("POST", "/collect", body=body), LambdaContextStub(function_name="bench"))
print(imported, time.perf_counter() - start)
"""


class StubDynamoDB:
    """Answers like DynamoDB would for new visitors and new events, instantly."""

    def __init__(self) -> None:
        self.writes = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {}

    def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.writes += 1
        return {}


def cold_start_seconds(runs: int) -> list[tuple[float, float]]:
    env = {**os.environ, **ENV}
    snippet = IMPORT_SNIPPET.format(
        root=str(ROOT),
        layer=str(ROOT / "layers/common/python"),
        path=str(ROOT / "functions/collect/handler.py"),
        bench=str(ROOT / "benchmarks"),
    )
    times: list[tuple[float, float]] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True
        )
        imported, first_request = out.stdout.split()
        times.append((float(imported), float(first_request)))
    return times


def warm_event_seconds(events: int, batch: int) -> list[float]:
    os.environ.update(ENV)
    from closedloop.local.gateway import LambdaContextStub, load_function
    from tests.support import api_event

    module = load_function("collect")
    module.store._client = StubDynamoDB()
    context = LambdaContextStub(function_name="bench")
    url = "https://www.acme.test/pricing?utm_source=linkedin&utm_medium=paid_social&utm_campaign=q4&li_fat_id=abc"
    per_event = []
    for _ in range(events // batch):
        body = {
            "sent_at": int(time.time() * 1000),
            "events": [
                {
                    "event_id": uuid.uuid4().hex,
                    "visitor_id": uuid.uuid4().hex,
                    "url": url,
                    "referrer": "https://www.linkedin.com/",
                    "title": "Pricing",
                    "ts": int(time.time() * 1000),
                }
                for _ in range(batch)
            ],
        }
        event = api_event("POST", "/collect", body=json.dumps(body), content_type="text/plain;charset=UTF-8")
        # The metrics (EMF lines on stdout, as in Lambda) are written, and timed, but not shown.
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            reply = module.handler(event, context)
            elapsed = time.perf_counter() - start
        assert reply["statusCode"] == 200, reply
        per_event.append(elapsed / batch)
    return per_event


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--import-runs", type=int, default=7)
    args = parser.parse_args()

    cold = cold_start_seconds(args.import_runs)
    imports = [c[0] for c in cold]
    first = [c[1] for c in cold]
    print(
        f"cold import of functions/collect/handler.py: median {statistics.median(imports) * 1000:.0f} ms, "
        f"min {min(imports) * 1000:.0f} ms over {len(imports)} fresh interpreters (target < 300 ms)"
    )
    print(
        f"cold import + first request (boto3 is imported lazily by the store): "
        f"median {statistics.median(first) * 1000:.0f} ms"
    )
    for batch in (1, 50):
        warm = warm_event_seconds(args.events, batch)
        warm = warm[len(warm) // 10 :]  # drop the warm-up tenth
        print(
            f"warm overhead per event, {batch:>2} event(s) per request: "
            f"p50 {percentile(warm, 0.5) * 1e3:.3f} ms, "
            f"p99 {percentile(warm, 0.99) * 1e3:.3f} ms over {len(warm) * batch} events (target p50 < 1 ms)"
        )
    print(
        "peer: Snowplow's collector is a JVM service that only enqueues raw events (no sessionisation or "
        "channel rules in the request path), so no like-for-like figure is printed for it."
    )


if __name__ == "__main__":
    main()
