"""Settings of each function, validated once at cold start: the only reader of the environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from closedloop.analytics.job import JobSettings

__all__ = [
    "ApiSettings",
    "AttributeSettings",
    "CollectSettings",
    "ErasureSettings",
    "IdentifySettings",
    "LakeExportSettings",
    "PublishSettings",
    "Settings",
    "WebhookSettings",
    "WritebackSettings",
]


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseModel):
    """What every function needs: where the data lives."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: Annotated[str, Field(min_length=3, max_length=255)]
    service_name: str = "closedloop"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Read the settings from environment variables named like the fields (upper case)."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = "POWERTOOLS_SERVICE_NAME" if name == "service_name" else name.upper()
            if key in environ:
                values[name] = environ[key]
        return cls.model_validate(values)


class ApiSettings(Settings):
    """Settings of the functions behind the HTTP API."""

    # Browser origins allowed to call the API (CORS) and to be redirected to after a form post.
    allowed_origins: Annotated[tuple[str, ...], Field(default=())]
    # The site's own hosts: a referrer on one of them (or a subdomain) is a self-referral.
    # Defaults to the hosts of the allowed origins.
    own_domains: Annotated[tuple[str, ...], Field(default=())]

    _split_origins = field_validator("allowed_origins", "own_domains", mode="before")(_split_list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
        return tuple(origin.rstrip("/") for origin in origins)

    @property
    def site_domains(self) -> frozenset[str]:
        """The hosts whose referrers are self-referrals."""
        hosts = {d.lower().lstrip(".") for d in self.own_domains}
        if not hosts:
            hosts = {urlsplit(o).hostname or "" for o in self.allowed_origins if o != "*"}
        hosts.discard("")
        hosts = {h.removeprefix("www.") for h in hosts}
        return frozenset(hosts)


class CollectSettings(ApiSettings):
    """Settings of the collect function."""

    # Page views and touches expire after this many days (DynamoDB TTL); 0 keeps them forever.
    retention_days: Annotated[int, Field(ge=0, le=3650)] = 395
    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = 65_536
    # Drop the events of browsers that send Global Privacy Control (``Sec-GPC: 1``), as t.js does by
    # default: a site whose snippet says ``data-honor-gpc="false"`` sets this to false too.
    honor_gpc: bool = True
    # Events dated further back are refused (closedloop.sessions.MAX_EVENT_AGE_MS); the local demo,
    # which replays weeks of simulated history, raises it.
    max_event_age_hours: Annotated[int, Field(ge=1, le=24 * 400)] = 72


class IdentifySettings(ApiSettings):
    """Settings of the identify function."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = 65_536
    # Link no visitor to the lead of a form posted with ``Sec-GPC: 1`` (the lead is still saved), as
    # the collect function stores none of its events: keep both in step with the snippet's data-honor-gpc.
    honor_gpc: bool = True


class WebhookSettings(ApiSettings):
    """Settings of the CRM webhook function."""

    # The Secrets Manager secret holding the CRM credentials (one JSON key per CRM).
    webhook_secret_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    # How long a warm function keeps the secret before reading it again, seconds.
    webhook_secret_max_age: Annotated[int, Field(ge=0, le=3600)] = 300
    # HubSpot batches at most 100 events and Salesforce 100 notifications: 1 MiB is far above both.
    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = 1_048_576


class ErasureSettings(Settings):
    """Settings of the erase function."""

    bucket_name: Annotated[str, Field(min_length=3, max_length=63)]


class AttributeSettings(Settings):
    """Settings of the attribute job."""

    bucket_name: Annotated[str, Field(min_length=3, max_length=63)]
    lookback_days: Annotated[float, Field(gt=0, le=3650)] = 90
    base_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    # JSON object: units of the base currency per unit of each currency, e.g. {"EUR": "1.08"}.
    currency_rates: Annotated[dict[str, Decimal], Field(default_factory=dict)]
    retention_days: Annotated[int, Field(ge=0, le=3650)] = 395  # 0: kept forever (a full run: ten years)
    # The data-driven models learn from the journeys that ended in this many days before the run.
    training_days: Annotated[float, Field(gt=0, le=3650)] = 365

    @field_validator("currency_rates", mode="before")
    @classmethod
    def _rates_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    def job_settings(self) -> JobSettings:
        from closedloop.analytics.job import JobSettings

        return JobSettings(
            lookback_days=self.lookback_days,
            base_currency=self.base_currency,
            rates={k.upper(): Decimal(v) for k, v in self.currency_rates.items()},
            training_days=self.training_days,
        )


class LakeExportSettings(Settings):
    """Settings of the lake export (the table's stream -> raw change logs under ``raw/``)."""

    bucket_name: Annotated[str, Field(min_length=3, max_length=63)]


class PublishSettings(Settings):
    """Settings of the publish function (table changes -> events and write-back messages)."""

    # The EventBridge bus for domain events; unset: no event is published.
    event_bus_name: Annotated[str | None, Field(min_length=1, max_length=1600)] = None
    # The write-back queue for "lead changed" messages; unset: nothing is written back to the CRMs.
    writeback_queue_url: Annotated[str | None, Field(min_length=1, max_length=2048)] = None
    # The rule-based model that credits a won deal in its deal.won event.
    attribution_model: Annotated[str, Field(pattern=r"^[a-z_]+$")] = "w_shaped"
    lookback_days: Annotated[float, Field(gt=0, le=3650)] = 90

    @field_validator("attribution_model")
    @classmethod
    def _rule_based(cls, value: str) -> str:
        from closedloop.attribution.options import RULE_BASED_MODELS

        if value not in {str(model) for model in RULE_BASED_MODELS}:
            raise ValueError(f"not a rule-based attribution model: {value!r}")
        return value


class WritebackSettings(Settings):
    """Settings of the CRM write-back worker."""

    # The CRM secret (the same one the webhook reads; write-back settings are in each CRM's section).
    webhook_secret_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    webhook_secret_max_age: Annotated[int, Field(ge=0, le=3600)] = 300
    # The queue the worker reads: a failed message's back-off is set as its visibility timeout.
    writeback_queue_url: Annotated[str, Field(min_length=1, max_length=2048)]
    # Receives of a message whose lead has no record in a CRM yet before giving up (until its next change).
    missing_record_retries: Annotated[int, Field(ge=1, le=10)] = 3
    # Back-off of a message whose CRM call failed without a Retry-After: base * 2^(receives-1), capped.
    retry_base_seconds: Annotated[int, Field(ge=1, le=900)] = 30
    retry_max_seconds: Annotated[int, Field(ge=1, le=43_200)] = 900
