"""The one way the package makes a boto3 client: imported on first use, with the same retries.

boto3 costs about 140 ms to import, so the clients are made when a request first needs one, not at
cold start. Standard retry mode backs off on throttling; past its attempts the caller's error becomes
a retryable 503 (or the job's failure), never a silent loss. Endpoints come from the standard
``AWS_ENDPOINT_URL*`` variables (the local stack's moto server) like any AWS SDK setting.
"""

from __future__ import annotations

from typing import Any

__all__ = ["client"]


def client(service: str) -> Any:
    """A boto3 client for ``service`` with bounded timeouts and standard retries."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=5)
    return boto3.client(service, config=config)  # type: ignore[call-overload]
