"""Deploy-time settings, read from cdk.json's context (override with ``cdk deploy -c key=value``)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DOMAIN = r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$"
# A regional API's custom domain needs an ACM certificate in the stack's own region.
CERTIFICATE_ARN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$"


class ContextSettings(BaseModel):
    """Settings read from CDK context by their aliases (``from_context(node.try_get_context)``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @classmethod
    def from_context(cls, get: object) -> Self:
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


class RetentionSettings(ContextSettings):
    """``retentionDays`` alone, validated as :class:`DeploySettings` does, for a construct without them."""

    # Page views and touches expire after this many days: DynamoDB TTL, and S3 lifecycle for the
    # ``touches`` Parquet; 0 keeps them.
    retention_days: Annotated[int, Field(alias="retentionDays", ge=0)] = 395


class DeploySettings(RetentionSettings):
    allowed_origins: Annotated[list[str], Field(alias="allowedOrigins", min_length=1)]
    own_domains: Annotated[list[str], Field(alias="ownDomains")] = []
    throttle_rate: Annotated[int, Field(alias="throttleRatePerSecond", gt=0)] = 200
    throttle_burst: Annotated[int, Field(alias="throttleBurst", gt=0)] = 400
    log_retention_days: Annotated[int, Field(alias="logRetentionDays", gt=0)] = 30
    production: Annotated[bool, Field(alias="production")] = False
    schedule: Annotated[str, Field(alias="attributeSchedule")] = "rate(1 hour)"
    lookback_days: Annotated[int, Field(alias="lookbackDays", gt=0)] = 90
    base_currency: Annotated[str, Field(alias="baseCurrency", pattern=r"^[A-Z]{3}$")] = "USD"
    # Global Privacy Control on the server (collect stores nothing, identify links no visitor), as
    # t.js's data-honor-gpc: a site whose snippet says "false" sets this to false too.
    honor_gpc: Annotated[bool, Field(alias="honorGpc")] = True
    # Operations and the public address; empty in cdk.json means "not set".
    alarm_email: Annotated[str | None, Field(alias="alarmEmail", pattern=EMAIL)] = None
    custom_domain: Annotated[str | None, Field(alias="customDomain", pattern=DOMAIN)] = None
    certificate_arn: Annotated[str | None, Field(alias="certificateArn", pattern=CERTIFICATE_ARN)] = None

    @field_validator("alarm_email", "custom_domain", "certificate_arn", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _domain_needs_its_certificate(self) -> DeploySettings:
        if (self.custom_domain is None) != (self.certificate_arn is None):
            raise ValueError("customDomain and certificateArn go together: set both or neither")
        return self
