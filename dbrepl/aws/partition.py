"""The AWS partition of a region (aws, aws-cn, aws-us-gov, ...), so that every ARN dbrepl
builds names the partition the caller is in, never a partition written into the code."""

from __future__ import annotations

from functools import lru_cache

import botocore.session
from botocore.exceptions import UnknownRegionError

# Used only for a region botocore's endpoint data does not know yet (a region newer than the
# installed botocore): the region name's prefix says its partition.
_PREFIXES = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"), ("us-iso-", "aws-iso"),
             ("eu-isoe-", "aws-iso-e"), ("us-isof-", "aws-iso-f"))


@lru_cache(maxsize=64)
def partition_of(region: str) -> str:
    """The partition of `region`, from botocore's region data (no API call)."""
    try:
        return botocore.session.get_session().get_partition_for_region(region)
    except UnknownRegionError:
        return next((p for prefix, p in _PREFIXES if region.startswith(prefix)), "aws")


@lru_cache(maxsize=16)
def dns_suffix(partition: str) -> str:
    """The partition's DNS suffix (amazonaws.com, amazonaws.com.cn, ...): the tail of the
    service endpoint names that `kms:ViaService` conditions compare against."""
    data = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    return next((p["dnsSuffix"] for p in data["partitions"] if p["partition"] == partition), "amazonaws.com")


def via_service(service: str, region: str) -> str:
    """The `kms:ViaService` value of `service` in `region`, e.g. rds.eu-west-1.amazonaws.com."""
    return f"{service}.{region}.{dns_suffix(partition_of(region))}"
