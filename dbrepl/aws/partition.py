"""The AWS partition of a region (aws, aws-cn, aws-us-gov, ...), so that every ARN dbrepl
builds names the partition the caller is in, never a partition written into the code."""

from __future__ import annotations

from functools import lru_cache

from botocore.exceptions import UnknownRegionError
from botocore.loaders import create_loader
from botocore.regions import EndpointResolver

# Used only for a region botocore's endpoint data does not know yet (a region newer than the
# installed botocore): the region name's prefix says its partition.
_PREFIXES = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"), ("us-iso-", "aws-iso"),
             ("eu-isoe-", "aws-iso-e"), ("us-isof-", "aws-iso-f"))


@lru_cache(maxsize=1)
def _endpoints() -> dict:
    """botocore's endpoint data, read without a session: no profile or config file of the
    user's is consulted (a session would fail on an AWS_PROFILE the sandbox replaces)."""
    return create_loader().load_data("endpoints")


@lru_cache(maxsize=64)
def partition_of(region: str) -> str:
    """The partition of `region`, from botocore's region data (no API call)."""
    try:
        return EndpointResolver(_endpoints()).get_partition_for_region(region)
    except UnknownRegionError:
        return next((p for prefix, p in _PREFIXES if region.startswith(prefix)), "aws")


@lru_cache(maxsize=16)
def dns_suffix(partition: str) -> str:
    """The partition's DNS suffix (amazonaws.com, amazonaws.com.cn, ...): the tail of the
    service endpoint names that `kms:ViaService` conditions compare against."""
    return next((p["dnsSuffix"] for p in _endpoints()["partitions"] if p["partition"] == partition), "amazonaws.com")


def via_service(service: str, region: str) -> str:
    """The `kms:ViaService` value of `service` in `region`, e.g. rds.eu-west-1.amazonaws.com."""
    return f"{service}.{region}.{dns_suffix(partition_of(region))}"
