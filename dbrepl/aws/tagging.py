"""The Resource Groups Tagging API, used only to read tags in one batched call.

It lists keys pending deletion and soft-deleted secrets and misses IAM roles, DB subnet
groups and VPC endpoints, so it never decides existence: each step confirms with the
service's own describe call and only borrows tags from here.
"""

from __future__ import annotations

from dbrepl.aws import paginate, tag_dict
from dbrepl.engine.context import Context


def tagged(ctx: Context, env: str) -> dict[str, dict[str, str]]:
    """ARN -> tags for everything carrying this suffix's tag in env's account and region."""
    key = f"tagged:{ctx.sessions.group_key(env)}"

    def load() -> dict[str, dict[str, str]]:
        items = paginate(
            ctx.client("resourcegroupstaggingapi", env), "get_resources", "ResourceTagMappingList",
            TagFilters=[{"Key": "dbrepl:suffix", "Values": [ctx.suffix]}], ResourcesPerPage=100,
            # Only the services whose own APIs do not return tags cheaply: one page, not three.
            ResourceTypeFilters=["kms", "ssm", "cloudwatch", "logs", "s3", "sns"],
        )
        return {i["ResourceARN"]: tag_dict(i.get("Tags")) for i in items}

    return ctx.memo(key, load)
