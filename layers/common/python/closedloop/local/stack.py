"""The whole backend on this machine: moto's server (DynamoDB, S3, Secrets Manager) and the gateway.

Functions find moto through the standard ``AWS_ENDPOINT_URL`` variable, exactly as they would find any
endpoint override in AWS; nothing in the product knows it runs locally.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from closedloop.local.gateway import LocalGateway
from closedloop.local.moto_server import MotoServerProcess
from closedloop.store.schema import create_table

__all__ = ["LOCAL_CRM_SECRETS", "LocalStack", "free_port"]

# The CRM credentials of the local stack (moto's Secrets Manager): what the demo's CRMs sign with.
LOCAL_CRM_SECRETS: dict[str, dict[str, str]] = {
    "hubspot": {"client_secret": "local-hubspot-client-secret-0001"},
    "salesforce": {"url_token": "local-salesforce-url-token-0001", "organization_id": "00D5e000000KQ2eEAG"},
    "pipedrive": {"username": "closedloop", "password": "local-pipedrive-password-0001"},
    "generic": {"signing_secret": "local-generic-signing-secret-0001"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    """Start with ``with LocalStack() as stack:``; ``stack.url`` is the API and the demo site's origin."""

    port: int = 0
    table_name: str = "closedloop-local"
    bucket_name: str = "closedloop-analytics-local"
    region: str = "us-east-1"
    extra_env: dict[str, str] = field(default_factory=dict)
    functions_dir: Path | None = None

    def __post_init__(self) -> None:
        self._saved_env: dict[str, str | None] = {}
        self.gateway: LocalGateway | None = None
        self._moto = MotoServerProcess()

    @property
    def moto_url(self) -> str:
        assert self._moto.port, "the stack is not started"
        return self._moto.url

    @property
    def url(self) -> str:
        assert self.gateway is not None, "the stack is not started"
        return self.gateway.url

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def dynamodb(self) -> Any:
        """A DynamoDB client of the local stack's moto server (for tests and the demo)."""
        import boto3

        return boto3.client("dynamodb", region_name=self.region, endpoint_url=self.moto_url)

    def __enter__(self) -> Self:
        self._moto.start()
        try:
            self._start_backend()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_backend(self) -> None:
        # The gateway's port must be known before the functions load: it is the allowed origin.
        gateway_port = self.port or free_port()
        origin = f"http://127.0.0.1:{gateway_port}"
        self._set_env(
            {
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "TABLE_NAME": self.table_name,
                "ALLOWED_ORIGINS": origin,
                "POWERTOOLS_SERVICE_NAME": "closedloop-local",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                **self.extra_env,
            }
        )
        create_table(self.dynamodb(), self.table_name)
        import boto3

        boto3.client("s3", region_name=self.region, endpoint_url=self.moto_url).create_bucket(
            Bucket=self.bucket_name
        )
        secret = boto3.client(
            "secretsmanager", region_name=self.region, endpoint_url=self.moto_url
        ).create_secret(Name=f"{self.table_name}-webhooks", SecretString=json.dumps(LOCAL_CRM_SECRETS))
        self._set_env({"BUCKET_NAME": self.bucket_name, "WEBHOOK_SECRET_ARN": secret["ARN"]})
        self.gateway = LocalGateway(port=gateway_port, functions_dir=self.functions_dir).start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self._moto.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
