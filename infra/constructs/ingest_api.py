"""The public HTTP API: routes from ``closedloop.routes``, stage throttling, access logs without IPs."""

from __future__ import annotations

import json

import jsii
from aws_cdk import (
    CfnOutput,
    RemovalPolicy,
)
from aws_cdk import (
    aws_apigateway as apigw,
)
from aws_cdk import (
    aws_apigatewayv2 as apigwv2,
)
from aws_cdk import (
    aws_apigatewayv2_integrations as integrations,
)
from aws_cdk import (
    aws_certificatemanager as acm,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_logs as logs,
)
from constructs import Construct

from closedloop.crm.models import CrmName
from closedloop.routes import ROUTES
from closedloop.tracker import tracker_snippet

# Access logs say what happened, never who: no source IP, no user agent, no query string.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """JSON access logs into ``log_group`` (IAccessLogSettings is an interface, not a struct, in jsii)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))


class IngestApiConstruct(Construct):
    """HTTP API (payload 2.0). CORS is answered by the functions, so it is configured in one place."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: dict[str, lambda_.IFunction],
        throttle_rate: int,
        throttle_burst: int,
        log_retention: logs.RetentionDays,
        custom_domain: str | None = None,
        certificate_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self, "HttpApi", create_default_stage=False, description="Closedloop ingest"
        )
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=throttle_rate, burst_limit=throttle_burst),
            access_log_settings=_AccessLogSettings(access_logs),
        )
        integration_of = {
            name: integrations.HttpLambdaIntegration(f"{name.capitalize()}Integration", fn)
            for name, fn in functions.items()
        }
        preflight_paths: dict[str, str] = {}
        for route in ROUTES:
            if route.function not in functions:
                continue
            self.api.add_routes(
                path=route.path,
                methods=[apigwv2.HttpMethod(route.method)],
                integration=integration_of[route.function],
            )
            if route.method == "POST":
                preflight_paths[route.path] = route.function
        for path, function in preflight_paths.items():
            self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.OPTIONS], integration=integration_of[function]
            )

        _output(self, "ApiUrl", value=self.url, description="Base URL of the Closedloop API")
        self.public_url = self.url
        if custom_domain and certificate_arn:
            self.public_url = self._custom_domain(custom_domain, certificate_arn)
        self._outputs_for_the_user()

    def _custom_domain(self, name: str, certificate_arn: str) -> str:
        """``https://<name>`` for the stage, with the ACM certificate (in the stack's region)."""
        domain = apigwv2.DomainName(
            self,
            "CustomDomain",
            domain_name=name,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn),
            security_policy=apigwv2.SecurityPolicy.TLS_1_2,
        )
        apigwv2.ApiMapping(self, "CustomDomainMapping", api=self.api, domain_name=domain, stage=self.stage)
        _output(
            self,
            "CustomDomainTarget",
            value=domain.regional_domain_name,
            description=f"Point {name} here: a CNAME, or a Route 53 alias record (docs/deploy.md)",
        )
        return f"https://{name}"

    def _outputs_for_the_user(self) -> None:
        """What the web team and the RevOps admin paste next: the tracker snippet, each CRM's URL."""
        _output(
            self,
            "TrackerSnippet",
            value=tracker_snippet(self.public_url),
            description="Paste into the <head> of every page; options in docs/tracker.md",
        )
        for crm in CrmName:
            url = f"{self.public_url}/webhooks/{crm.value}"
            note = ""
            if crm is CrmName.SALESFORCE:
                url += "?token=<url_token>"
                note = "; replace <url_token> with salesforce.url_token from the webhook secret"
            _output(
                self,
                f"WebhookUrl{crm.value.capitalize()}",
                value=url,
                description=f"The {crm.value} webhook URL to paste in the CRM (docs/crm-setup.md){note}",
            )

    @property
    def url(self) -> str:
        return self.stage.url.rstrip("/") if self.stage.url else self.api.api_endpoint


def _output(scope: Construct, key: str, *, value: str, description: str) -> CfnOutput:
    """A stack output under exactly ``key`` (no hash suffix), as docs/deploy.md names it."""
    output = CfnOutput(scope, key, value=value, description=description)
    output.override_logical_id(key)
    return output
