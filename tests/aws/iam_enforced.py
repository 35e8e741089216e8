"""moto with IAM enforcement, in process: every call is checked against the calling IAM user's
policies, as AWS does, with moto's gaps closed so that a correct policy passes and a missing
action fails (checked with moto 5.2.x; FACTS.md):

- moto names an action after the request's signing name, so it asks for `tagging:GetResources`
  and `monitoring:PutMetricAlarm` where IAM says `tag:` and `cloudwatch:`: renamed here;
- its SigV4 re-check refuses every Lambda and EventBridge Scheduler REST call
  (SignatureDoesNotMatch even for an allow-all user): skipped for those two only;
- most services tell it no resource (it checks against "*", which no scoped ARN matches): such
  a request is taken to match the statement's resources, so only the action is proven there;
  IAM (roles), S3 (bucket and key) and STS (AssumeRole) name their resource and are checked;
- it treats a statement's `Condition` as failed when it has no request context for the key
  (always, outside AssumeRole): a condition it cannot evaluate is taken as met;
- it reads "?" in a resource as a regular expression: matched with IAM's meaning (one character);
- it checks DeleteObjects (s3:DeleteObject) against the bucket's ARN, where AWS checks each key
  (bucket/key): checked against "bucket/*" here.

What moto enforces at all is listed in ENFORCED (tests/aws/test_permissions.py checks it).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication
from moto.iam import access_control as ac

SIGNING_TO_IAM = {"tagging": "tag", "monitoring": "cloudwatch"}
# Services of the estate whose every call moto checks against the caller's policies.
ENFORCED = ("cloudwatch", "ec2", "iam", "kms", "lambda", "logs", "rds", "s3", "scheduler", "secretsmanager",
            "servicequotas", "sns", "ssm", "sts", "tag")


# Operations whose IAM action is not "<service>:<operation>" (S3's, per the Service
# Authorization Reference).
ACTION_OF = {
    "s3:ListObjectVersions": "s3:ListBucketVersions", "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket", "s3:HeadBucket": "s3:ListBucket",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "s3:DeleteObjects": "s3:DeleteObject", "s3:HeadObject": "s3:GetObject",
}


def iam_action(signing_name: str, op: str) -> str:
    a = f"{SIGNING_TO_IAM.get(signing_name, signing_name)}:{op}"
    return ACTION_OF.get(a, a)


def _iam_match(pattern: str, value: str) -> re.Match[str] | None:
    rx = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.match(f"^{rx}$", value)


@contextlib.contextmanager
def iam_enforced() -> Iterator[None]:
    real_init = ac.IAMRequestBase.__init__
    real_signature = ac.IAMRequestBase.check_signature
    real_matches = ac.IAMPolicyStatement._check_element_matches
    real_conditions = ac.IAMPolicyStatement._check_conditions
    real_s3 = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def init(self: Any, *a: Any, **kw: Any) -> None:
        real_init(self, *a, **kw)
        prefix, op = self._action.split(":", 1)
        self._action = f"{SIGNING_TO_IAM.get(prefix, prefix)}:{op}"

    def signature(self: Any) -> None:
        if self._service not in ("lambda", "scheduler"):
            real_signature(self)

    def matches(self: Any, element: str, value: str) -> bool:
        if element == "Resource" and value == "*":
            return True
        return real_matches(self, element, value)

    def conditions(self: Any, incoming: Any) -> bool:
        return True if not incoming else real_conditions(self, incoming)

    def s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if key_name is None and bucket_name and self.data.get("Action") == "DeleteObject":
            key_name = "*"
        real_s3(self, bucket_name=bucket_name, key_name=key_name)

    with (mock.patch.object(ac.IAMRequestBase, "__init__", init),
          mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_s3_action", s3),
          mock.patch.object(ac.IAMRequestBase, "check_signature", signature),
          mock.patch.object(ac.IAMPolicyStatement, "_check_element_matches", matches),
          mock.patch.object(ac.IAMPolicyStatement, "_check_conditions", conditions),
          mock.patch.object(ac.IAMPolicyStatement, "_match", staticmethod(_iam_match)),
          enable_iam_authentication()):
        yield


def user_with_policy(iam: Any, name: str, document: dict[str, Any]) -> tuple[str, str]:
    """An IAM user holding only `document`, as managed policies each within IAM's size limit (the
    parts `dbrepl permissions --part N` prints, as docs/permissions.md says); its keys."""
    from dbrepl.engine.permissions import split

    iam.create_user(UserName=name)
    for i, part in enumerate(split(document), start=1):
        arn = iam.create_policy(PolicyName=f"{name}-policy-{i}", PolicyDocument=json.dumps(part))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]
