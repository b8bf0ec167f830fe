"""The webhook secret: one JSON document (Secrets Manager, ``WEBHOOK_SECRET_ARN``) with one key per CRM.

Example (every section is optional; a CRM without one answers 404)::

    {
      "hubspot": {"client_secret": "...", "private_app_token": "pat-..."},
      "salesforce": {"url_token": "...", "organization_id": "00D...",
                     "contact_email_field": "Contact_Email__c"},
      "pipedrive": {"username": "...", "password": "...", "api_token": "...", "company_domain": "acme"},
      "generic": {"signing_secret": "..."}
    }

Secrets are ``SecretStr``: they never appear in a repr, a log line or a traceback. The non-secret
options (stage rules, default currency, field names) live in the same section so the admin configures
each CRM in one place.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from closedloop.crm.errors import CrmNotConfiguredError, UnknownCrmError
from closedloop.crm.models import CrmName, StageRules
from closedloop.crm.money import normalise_currency

__all__ = [
    "CrmConfig",
    "CrmSecrets",
    "GenericConfig",
    "HubSpotConfig",
    "HubSpotWriteback",
    "PipedriveConfig",
    "PipedriveWriteback",
    "SalesforceConfig",
    "SalesforceWriteback",
    "parse_crm_name",
]

_SALESFORCE_ORG_ID = re.compile(r"^00D[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?$")
_COMPANY_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_API_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

_PIPEDRIVE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_SALESFORCE_VERSION = re.compile(r"^v\d{2,3}\.0$")

Timeout = Annotated[
    float,
    Field(gt=0, le=8, description="Seconds per CRM API call; Pipedrive gives the whole delivery 10 s."),
]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


class _CrmSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    won_stages: Annotated[
        frozenset[str], Field(description="Stages that mean won, added to the CRM's defaults.")
    ] = frozenset()
    lost_stages: Annotated[
        frozenset[str], Field(description="Stages that mean lost, added to the CRM's defaults.")
    ] = frozenset()

    crm: ClassVar[CrmName]

    @model_validator(mode="after")
    def _rules_are_consistent(self) -> Self:
        _ = self.stage_rules  # built now, so a stage both won and lost fails at cold start
        return self

    @property
    def stage_rules(self) -> StageRules:
        """The CRM's default stage rules plus the configured won and lost stages."""
        defaults = StageRules.for_crm(self.crm)
        return StageRules(
            won_stages=defaults.won_stages | self.won_stages,
            lost_stages=defaults.lost_stages | self.lost_stages,
        )


def _field_mapping(mapping: dict[str, str], pattern: re.Pattern[str], what: str) -> dict[str, str]:
    from closedloop.writeback.fields import FIELD_NAMES

    unknown = sorted(set(mapping) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"unknown Closedloop fields {unknown}; known: {', '.join(FIELD_NAMES)}")
    for target in mapping.values():
        if not pattern.fullmatch(target):
            raise ValueError(f"not a {what}: {target!r}")
    return mapping


class _Writeback(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: Annotated[bool, Field(description="Write the lead's source fields to this CRM.")] = True


class HubSpotWriteback(_Writeback):
    """``hubspot.writeback``: source fields as ``closedloop_*`` contact (and deal) properties. The
    private app needs the scopes ``crm.objects.contacts.write``, ``crm.schemas.contacts.write`` (and the
    same for deals)."""

    contacts: Annotated[bool, Field(description="Write onto the contact with the lead's e-mail.")] = True
    deals: Annotated[bool, Field(description="Write onto the deals whose first contact is the lead.")] = True
    property_group: Annotated[str, Field(description="Group the properties are created in.")] = "closedloop"
    create_properties: Annotated[
        bool, Field(description="Create missing properties (and the group); else they must exist.")
    ] = True

    @field_validator("property_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not _HUBSPOT_NAME.fullmatch(value):
            raise ValueError(f"not a HubSpot internal name (lower case, digits, _): {value!r}")
        return value


class PipedriveWriteback(_Writeback):
    """``pipedrive.writeback``: source fields into custom fields the admin created, by their keys."""

    person_fields: Annotated[
        dict[str, str], Field(description="Closedloop field -> the person custom field's key.")
    ] = {}
    deal_fields: Annotated[
        dict[str, str], Field(description="Closedloop field -> the deal custom field's key.")
    ] = {}

    @field_validator("person_fields", "deal_fields")
    @classmethod
    def _keys(cls, mapping: dict[str, str]) -> dict[str, str]:
        return _field_mapping(mapping, _PIPEDRIVE_KEY, "Pipedrive custom field key")


class SalesforceWriteback(_Writeback):
    """``salesforce.writeback``: source fields into Lead / Contact fields the admin mapped, through a
    connected app's OAuth 2.0 client credentials flow."""

    instance_url: Annotated[
        str, Field(description="The org's My Domain URL, https://acme.my.salesforce.com.")
    ]
    client_id: Annotated[SecretStr, Field(min_length=1, description="The connected app's consumer key.")]
    client_secret: Annotated[
        SecretStr, Field(min_length=1, description="The connected app's consumer secret.")
    ]
    api_version: Annotated[str, Field(description="REST API version, e.g. v62.0.")] = "v62.0"
    objects: Annotated[
        tuple[Literal["Contact", "Lead"], ...],
        Field(min_length=1, description="Where to look the e-mail up, in order; the first match is written."),
    ] = ("Contact", "Lead")
    fields: Annotated[
        dict[str, str], Field(description="Closedloop field -> API name on Lead and Contact.")
    ] = {}
    opportunity_fields: Annotated[
        dict[str, str], Field(description="Closedloop field -> API name on Opportunity.")
    ] = {}
    api_timeout_seconds: Timeout = 5.0

    _url = field_validator("instance_url")(_http_url)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _SALESFORCE_VERSION.fullmatch(value):
            raise ValueError(f"not a Salesforce API version (v62.0): {value!r}")
        return value

    @field_validator("fields", "opportunity_fields")
    @classmethod
    def _names(cls, mapping: dict[str, str]) -> dict[str, str]:
        return _field_mapping(mapping, _API_FIELD, "Salesforce field API name")


class HubSpotConfig(_CrmSection):
    """The ``hubspot`` section: the app's client secret (it signs the webhooks) and a private-app token
    (scope ``crm.objects.deals.read`` and ``crm.objects.contacts.read``) to look deals up."""

    crm: ClassVar[CrmName] = CrmName.HUBSPOT

    client_secret: Annotated[SecretStr, Field(min_length=1)]
    private_app_token: SecretStr | None = None
    api_base_url: Annotated[str, Field(description="HubSpot's API; tests point it at 127.0.0.1.")] = (
        "https://api.hubapi.com"
    )
    api_timeout_seconds: Timeout = 3.0
    webhook_url: Annotated[
        str | None,
        Field(
            description="The target URL exactly as entered in HubSpot. When set, signatures are checked "
            "against it rather than the URL the request arrived at (behind a CDN or a proxy)."
        ),
    ] = None
    accept_legacy_signatures: Annotated[
        bool, Field(description="Accept v1/v2 signatures when a delivery has no v3 signature.")
    ] = True
    default_currency: Annotated[
        str | None, Field(description="The account's currency, for deals without deal_currency_code.")
    ] = None
    writeback: Annotated[
        HubSpotWriteback | None,
        Field(description="Write lead sources onto contacts (docs/crm-writeback.md)."),
    ] = None

    _url = field_validator("api_base_url")(_http_url)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value  # kept exactly: HubSpot signs it character for character

    _currency = field_validator("default_currency")(normalise_currency)


class SalesforceConfig(_CrmSection):
    """The ``salesforce`` section: the token in the outbound message's URL and the org that may send."""

    crm: ClassVar[CrmName] = CrmName.SALESFORCE

    url_token: Annotated[SecretStr, Field(min_length=16)]
    organization_id: Annotated[str, Field(description="The 15- or 18-character org id, 00D...")]
    contact_email_field: Annotated[
        str,
        Field(description="API name of the Opportunity field holding the contact's e-mail (a formula)."),
    ] = "Contact_Email__c"
    pipeline_field: Annotated[
        str | None, Field(description="API name of a field that names the pipeline (e.g. a record type).")
    ] = None
    default_currency: Annotated[
        str | None, Field(description="The org's currency, when CurrencyIsoCode is not in the message.")
    ] = None
    writeback: Annotated[
        SalesforceWriteback | None, Field(description="Write lead sources (docs/crm-writeback.md).")
    ] = None

    _currency = field_validator("default_currency")(normalise_currency)

    @field_validator("organization_id")
    @classmethod
    def _org_id(cls, value: str) -> str:
        if not _SALESFORCE_ORG_ID.fullmatch(value.strip()):
            raise ValueError("organization_id must be a Salesforce org id (00D + 12 or 15 characters)")
        return value.strip()

    @field_validator("contact_email_field", "pipeline_field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        if value is not None and not _API_FIELD.fullmatch(value):
            raise ValueError(f"not a Salesforce field API name: {value!r}")
        return value


class PipedriveConfig(_CrmSection):
    """The ``pipedrive`` section: the HTTP Basic credentials typed into Pipedrive's webhook form, and an
    API token to look persons' e-mails up."""

    crm: ClassVar[CrmName] = CrmName.PIPEDRIVE

    username: Annotated[SecretStr, Field(min_length=1)]
    password: Annotated[SecretStr, Field(min_length=8)]
    api_token: SecretStr | None = None
    company_domain: Annotated[str | None, Field(description="The `acme` of acme.pipedrive.com.")] = None
    api_base_url: Annotated[
        str | None, Field(description="Overrides https://{company_domain}.pipedrive.com/api/v2.")
    ] = None
    api_timeout_seconds: Timeout = 3.0
    writeback: Annotated[
        PipedriveWriteback | None, Field(description="Write lead sources (docs/crm-writeback.md).")
    ] = None

    @field_validator("company_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value.strip().lower().removesuffix(".pipedrive.com")
        if not _COMPANY_DOMAIN.fullmatch(cleaned):
            raise ValueError(f"not a Pipedrive company domain: {value!r}")
        return cleaned

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @property
    def resolved_api_base_url(self) -> str | None:
        """The API base URL: the override, else the company domain's v2 API, else ``None``."""
        if self.api_base_url:
            return self.api_base_url
        if self.company_domain:
            return f"https://{self.company_domain}.pipedrive.com/api/v2"
        return None


class GenericConfig(_CrmSection):
    """The ``generic`` section: the secret senders sign ``X-Closedloop-Signature`` with."""

    crm: ClassVar[CrmName] = CrmName.GENERIC

    signing_secret: Annotated[SecretStr, Field(min_length=16)]


type CrmConfig = HubSpotConfig | SalesforceConfig | PipedriveConfig | GenericConfig


class CrmSecrets(BaseModel):
    """The whole webhook secret, validated once at cold start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hubspot: HubSpotConfig | None = None
    salesforce: SalesforceConfig | None = None
    pipedrive: PipedriveConfig | None = None
    generic: GenericConfig | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not any((self.hubspot, self.salesforce, self.pipedrive, self.generic)):
            raise ValueError(f"configure at least one CRM: {', '.join(c.value for c in CrmName)}")
        return self

    def section(self, crm: str | CrmName) -> CrmConfig:
        """Return the configuration of one CRM.

        Parameters
        ----------
        crm
            The ``{crm}`` path parameter, any case.

        Returns
        -------
        HubSpotConfig or SalesforceConfig or PipedriveConfig or GenericConfig
            That CRM's section.

        Raises
        ------
        UnknownCrmError
            When Closedloop has no adapter of that name.
        CrmNotConfiguredError
            When the secret has no section for it.
        """
        name = parse_crm_name(crm)
        sections: dict[CrmName, CrmConfig | None] = {
            CrmName.HUBSPOT: self.hubspot,
            CrmName.SALESFORCE: self.salesforce,
            CrmName.PIPEDRIVE: self.pipedrive,
            CrmName.GENERIC: self.generic,
        }
        section = sections[name]
        if section is None:
            raise CrmNotConfiguredError(f"{name.value} is not configured in the webhook secret")
        return section


def parse_crm_name(crm: str | CrmName) -> CrmName:
    """Return the CRM named by a ``{crm}`` path parameter.

    Raises
    ------
    UnknownCrmError
        When there is no adapter of that name; the message lists the known ones.
    """
    try:
        return CrmName(crm.strip().lower() if isinstance(crm, str) else crm)
    except ValueError:
        known = ", ".join(c.value for c in CrmName)
        raise UnknownCrmError(f"unknown CRM; Closedloop has webhooks for: {known}") from None
