"""``make serve``: the local stack and the demo site, until Ctrl-C.

Open the printed URL, browse, fill the contact form, and watch the visitor's touches in the terminal.
"""

from __future__ import annotations

import argparse
import time

from closedloop.local.stack import LocalStack


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
        print("Ctrl-C stops it; nothing is kept.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")


if __name__ == "__main__":
    main()
