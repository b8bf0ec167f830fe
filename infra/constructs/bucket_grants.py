"""Grants on the analytics bucket by key prefix, and cdk-nag's acknowledgment of each prefix's wildcard.

S3 addresses objects by key, so ``<prefix>*`` is the narrowest grant there is; cdk-nag's AwsSolutions-IAM5
flags every such wildcard, and each is acknowledged here with the reason the caller gives.
``s3:ListBucket`` is granted only for the same prefixes: without it S3 answers a read of a missing key
with 403, not 404, so a reader lists before it reads (``closedloop.lake``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

__all__ = ["OBJECT_ACTIONS", "grant_prefixes", "logical_id"]

# closedloop.lake replaces an object with one PutObject (never multipart) or deletes it.
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")


def grant_prefixes(
    scope: IConstruct,
    function: lambda_.IFunction,
    bucket: s3.IBucket,
    *,
    read_write: Sequence[str],
    read_only: Sequence[str] = (),
    reason: str,
) -> None:
    """Let ``function`` read, write and delete under ``read_write``, read under ``read_only``, and list
    only those prefixes (each ending with ``/``)."""
    patterns = [f"{prefix}*" for prefix in (*read_write, *read_only)]
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": patterns}},
        )
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=list(OBJECT_ACTIONS), resources=[bucket.arn_for_objects(f"{p}*") for p in read_write]
        )
    )
    if read_only:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{p}*") for p in read_only]
            )
        )
    bucket_id = logical_id(bucket)
    for pattern in patterns:
        Validations.of(scope).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{pattern}]",
                reason=f"Objects under {pattern}: {reason}",
            )
        )


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2's resource, as cdk-nag names it in a finding."""
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise TypeError(f"{construct.node.path} is not defined in this app (imported?)")
    return Stack.of(resource).get_logical_id(resource)
