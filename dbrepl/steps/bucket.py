"""bucket: the migration scripts bucket migration-scripts-<suffix>-<account>: versioning on,
SSE-KMS with the configured environment's key, lifecycle expiring current and noncurrent
versions after 30 days, all public access blocked, and a bucket policy denying every request
made without TLS (`aws:SecureTransport` false). dbrepl owns the bucket policy: statements
added to it by hand are drift, shown by plan and removed by apply."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import ItemFailed, is_code, or_none, tag_list
from dbrepl.aws.policy import normalise_policy
from dbrepl.aws.tagging import tagged
from dbrepl.engine import SHARED, Change, Context, Observed, Resource, Step, register

RULE_ID = "DeleteOldMigrationScripts"
PUBLIC_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True}


def lifecycle(expire: int, noncurrent: int) -> list[dict[str, Any]]:
    return [{"ID": RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
             "Expiration": {"Days": expire}, "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent}}]


def _norm_rules(rules: list[dict]) -> list[dict]:
    out = []
    for r in rules:
        out.append({"ID": r.get("ID"), "Status": r.get("Status"),
                    "Filter": r.get("Filter", {"Prefix": r.get("Prefix", "")}) or {"Prefix": ""},
                    "Expiration": {"Days": r.get("Expiration", {}).get("Days")},
                    "NoncurrentVersionExpiration": {
                        "NoncurrentDays": r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")}})
    return sorted(out, key=lambda r: str(r["ID"]))


def tls_only_policy(partition: str, name: str) -> dict[str, Any]:
    """Deny every request to the bucket and its objects that does not use TLS."""
    arn = f"arn:{partition}:s3:::{name}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def bucket_name(ctx: Context) -> str:
    return names.bucket(ctx.suffix, ctx.account_id(ctx.hub))


@register
class Bucket(Step):
    name = "bucket"
    depends_on = ("kms",)
    shared_only = True
    permissions = ("s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions",
                   "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetBucketVersioning", "s3:PutBucketVersioning",
                   "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                   "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                   "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                   "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:GetBucketPolicy", "s3:PutBucketPolicy",
                   "sts:GetCallerIdentity")

    def desired(self, ctx: Context) -> list[Resource]:
        b = ctx.spec.bucket
        name = bucket_name(ctx)
        return [Resource(
            "bucket", "AWS::S3::Bucket", SHARED, name,
            {"Versioning": "Enabled",
             "Encryption": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ctx.attr("kms", b.kms_env, "key", "arn")},
             "Lifecycle": _norm_rules(lifecycle(b.expire_days, b.noncurrent_expire_days)),
             "PublicAccessBlock": PUBLIC_BLOCK,
             "Policy": normalise_policy(tls_only_policy(ctx.partition(ctx.hub), name))},
            ctx.tags(SHARED, self.name, f"migration-scripts-{ctx.suffix}", environment=SHARED),
        )]

    def discover(self, ctx: Context) -> list[Observed]:
        s3 = ctx.client("s3", ctx.hub)
        name = bucket_name(ctx)
        calls = {
            "versioning": lambda: s3.get_bucket_versioning(Bucket=name),
            "encryption": lambda: or_none(lambda: s3.get_bucket_encryption(Bucket=name),
                                           "ServerSideEncryptionConfigurationNotFoundError"),
            "lifecycle": lambda: or_none(lambda: s3.get_bucket_lifecycle_configuration(Bucket=name),
                                          "NoSuchLifecycleConfiguration"),
            "public": lambda: or_none(lambda: s3.get_public_access_block(Bucket=name),
                                       "NoSuchPublicAccessBlockConfiguration"),
            "policy": lambda: or_none(lambda: s3.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy"),
            # Tags come from the tagging API's one batched call (see dbrepl/aws/tagging.py).
            "tags": lambda: tagged(ctx, ctx.hub).get(f"arn:{ctx.partition(ctx.hub)}:s3:::{name}", {}),
        }
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {k: pool.submit(f) for k, f in calls.items()}
            results: dict[str, Any] = {}
            for k, f in futures.items():
                try:
                    results[k] = f.result()
                except Exception as e:
                    if is_code(e, ["NoSuchBucket", "404", "NotFound"]):
                        return []
                    raise
        tags = results["tags"]
        if not ctx.owns(tags):
            return []
        enc = {}
        if results["encryption"]:
            rule = results["encryption"]["ServerSideEncryptionConfiguration"]["Rules"][0]
            enc = dict(rule.get("ApplyServerSideEncryptionByDefault", {}))
        public = (results["public"] or {}).get("PublicAccessBlockConfiguration", {})
        return [Observed(
            "bucket", "AWS::S3::Bucket", SHARED, name, name,
            {"Versioning": results["versioning"].get("Status", "Disabled"), "Encryption": enc,
             "Lifecycle": _norm_rules((results["lifecycle"] or {}).get("Rules", [])),
             "PublicAccessBlock": {k: bool(public.get(k)) for k in PUBLIC_BLOCK},
             "Policy": normalise_policy(results["policy"]["Policy"]) if results["policy"] else None},
            tags,
        )]

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        s3 = ctx.client("s3", ctx.hub)
        p, name = want.props, want.name
        if have is None:
            kw: dict[str, Any] = {"Bucket": name}
            region = ctx.region(ctx.hub)
            if region != "us-east-1":
                kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                # OperationAborted: a conflicting operation (a recent delete of this name) is in flight.
                ctx.retry(lambda: s3.create_bucket(**kw), codes=("OperationAborted",), deadline=600,
                          what=f"bucket name {name} to be free")
            except Exception as e:
                if not is_code(e, ["BucketAlreadyOwnedByYou"]):
                    raise
            have = Observed("bucket", want.type, SHARED, name, name, {}, {})
        if (have.tags or {}) != {**(have.tags or {}), **want.tag_dict}:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list({**(have.tags or {}), **want.tag_dict})})
        if have.props.get("PublicAccessBlock") != p["PublicAccessBlock"]:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlock"])
        if have.props.get("Versioning") != p["Versioning"]:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": p["Versioning"]})
        if have.props.get("Encryption") != p["Encryption"]:
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": p["Encryption"], "BucketKeyEnabled": True}]})
        if normalise_policy(have.props.get("Policy")) != p["Policy"]:
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps(tls_only_policy(ctx.partition(ctx.hub), name)))
        if have.props.get("Lifecycle") != p["Lifecycle"]:
            b = ctx.spec.bucket
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": lifecycle(b.expire_days, b.noncurrent_expire_days)})
        return Observed("bucket", want.type, SHARED, name, name, dict(p), dict(want.tag_dict))

    def delete(self, ctx: Context, have: Observed) -> None:
        s3 = ctx.client("s3", ctx.hub)
        try:
            empty_bucket(s3, have.name, ctx.settle)
            s3.delete_bucket(Bucket=have.name)
        except Exception as e:
            if not is_code(e, ["NoSuchBucket"]):
                raise


# DeleteObjects' per-key codes: the version is gone already; or the error clears with time (sent
# again). Any other (AccessDenied, ...) fails at once: asking again cannot help.
GONE = ("NoSuchKey", "NoSuchVersion")
TRANSIENT = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "OperationAborted", "RequestTimeout"})


def empty_bucket(s3: Any, name: str, settle: Callable[..., Any] | None = None) -> int:
    """Delete every object version and delete marker (a versioned bucket deletes only empty).

    DeleteObjects answers 200 with per-key `Errors` (InternalError, SlowDown, AccessDenied, ...):
    those keys are sent again through `settle` (the engine's bounded retry), then named in the error."""
    n = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(batch), 1000):
            chunk = batch[i:i + 1000]
            pending = {(o["Key"], o["VersionId"]): o for o in chunk}

            def attempt(pending: dict = pending) -> None:
                if not pending:
                    return
                errors = s3.delete_objects(Bucket=name, Delete={"Objects": list(pending.values()), "Quiet": True}
                                           ).get("Errors") or []
                failed: dict[tuple[str, str], dict] = {}
                for e in errors:
                    if e.get("Code") in GONE:
                        continue
                    # An error without a VersionId leaves every version of its key sent.
                    for k in [k for k in pending if k[0] == e.get("Key") and e.get("VersionId") in (None, k[1])]:
                        failed[k] = e
                for k in list(pending):
                    if k not in failed:
                        del pending[k]
                if failed:
                    shown = "; ".join(f"{k} (version {v}): {e.get('Code')} {e.get('Message', '')}".rstrip()
                                      for (k, v), e in list(failed.items())[:5])
                    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
                    codes = {e.get("Code") for e in failed.values()}
                    raise ItemFailed("DeleteObjects", next(iter(failed.values())).get("Code") or "Errors",
                                     f"{len(failed)} object version(s) of bucket {name} were not deleted: "
                                     f"{shown}{more}; the bucket and these versions were left in place",
                                     transient=codes <= TRANSIENT)

            if settle is None:
                attempt()
            else:
                settle(attempt, f"objects of bucket {name} to be deleted",
                       when=lambda e: isinstance(e, ItemFailed) and e.transient)
            n += len(chunk)
    return n
