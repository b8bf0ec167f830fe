"""Deploy-time settings, read from cdk.json's context (override with ``cdk deploy -c key=value``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class DeploySettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    allowed_origins: Annotated[list[str], Field(alias="allowedOrigins", min_length=1)]
    own_domains: Annotated[list[str], Field(alias="ownDomains")] = []
    retention_days: Annotated[int, Field(alias="retentionDays", ge=0)] = 395
    throttle_rate: Annotated[int, Field(alias="throttleRatePerSecond", gt=0)] = 200
    throttle_burst: Annotated[int, Field(alias="throttleBurst", gt=0)] = 400
    log_retention_days: Annotated[int, Field(alias="logRetentionDays", gt=0)] = 30
    production: Annotated[bool, Field(alias="production")] = False
    schedule: Annotated[str, Field(alias="attributeSchedule")] = "rate(1 hour)"
    lookback_days: Annotated[int, Field(alias="lookbackDays", gt=0)] = 90
    base_currency: Annotated[str, Field(alias="baseCurrency", pattern=r"^[A-Z]{3}$")] = "USD"

    @classmethod
    def from_context(cls, get: object) -> DeploySettings:
        """``get`` is ``node.try_get_context``."""
        values = {}
        for field in cls.model_fields.values():
            alias = field.alias
            value = get(alias) if callable(get) and alias else None
            if value is not None:
                if (
                    isinstance(value, str)
                    and field.annotation is not str
                    and alias in {"allowedOrigins", "ownDomains"}
                ):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                values[alias] = value
        return cls.model_validate(values)
