"""EC2 calls the steps share: batched describes by Name tag, tag specs, rule shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbrepl.aws import is_code, paginate, tag_dict, tag_list
from dbrepl.errors import BadInput

if TYPE_CHECKING:
    from dbrepl.engine.context import Context

LAMBDA_ENI_PREFIX = "AWS Lambda VPC ENI"
# The hub VPC's endpoints (docs/corrections.md, item 3): the functions reach these services without a NAT.
INTERFACE_SERVICES = ("secretsmanager", "ssm")
GATEWAY_SERVICES = ("s3",)


def zones(ctx: Context, env: str) -> list[tuple[str, str]]:
    """The region's available AZs as (name, AZ ID), by name. Names map to physical zones
    differently in each account; IDs (use1-az1) are the same everywhere."""
    def load() -> list[tuple[str, str]]:
        found = ctx.client("ec2", env).describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
        )["AvailabilityZones"]
        return sorted((z["ZoneName"], z.get("ZoneId", "")) for z in found)

    return ctx.memo(f"azs:{ctx.sessions.group_key(env)}", load)


def endpoint_services(ctx: Context, env: str) -> list[dict[str, Any]]:
    """DescribeVpcEndpointServices' ServiceDetails for env's region, all pages, read once per run
    (preflight and the network step share it)."""
    def load() -> list[dict[str, Any]]:
        ec2, out, token = ctx.client("ec2", env), [], None
        while True:
            page = ec2.describe_vpc_endpoint_services(**({"NextToken": token} if token else {}))
            out += page.get("ServiceDetails", [])
            token = page.get("NextToken")
            if not token:
                return out

    return ctx.memo(f"endpoint-services:{ctx.sessions.group_key(env)}", load)


def endpoint_service_name(details: list[dict[str, Any]], region: str, svc: str, kind: str) -> str | None:
    """The name AWS gives service `svc`'s endpoint of type `kind` (Interface, Gateway) in `region`,
    as DescribeVpcEndpointServices lists it: `com.amazonaws.<region>.<svc>` in most partitions, but
    not in all (China's `cn.com.amazonaws.<region>.<svc>`). None: not listed."""
    found = sorted(d["ServiceName"] for d in details
                   if d.get("ServiceName", "").endswith(f".{region}.{svc}") and d.get("Owner", "amazon") == "amazon"
                   and any(t.get("ServiceType") == kind for t in d.get("ServiceType", [])))
    conventional = f"com.amazonaws.{region}.{svc}"
    return conventional if conventional in found else (found[0] if found else None)


def subnet_zone(ctx: Context, env: str, i: int) -> str:
    """The AZ name of the environment's subnet i (from 0): by `az_id` when the spec names one,
    else the `az_index`-th of the region's AZ names."""
    sub = ctx.spec.environments[env].subnets[i]
    have = zones(ctx, env)
    if sub.az_id is not None:
        for name, zone_id in have:
            if zone_id == sub.az_id:
                return name
        raise BadInput(
            f"environments.{env}.subnets[{i}].az_id {sub.az_id}: not an available AZ of {ctx.region(env)}; "
            f"its AZ IDs are {', '.join(z for _, z in have)}"
        )
    assert sub.az_index is not None  # the spec gives each subnet exactly one of az_id and az_index
    if sub.az_index >= len(have):
        raise BadInput(
            f"environments.{env}.subnets[{i}].az_index {sub.az_index}: the region has only "
            f"{len(have)} availability zones"
        )
    return have[sub.az_index][0]


class Settled:
    """An EC2 client for apply: a changing call that fails with `*.NotFound` is retried through
    `settle(fn, what)` (the engine's bounded retry), because EC2 is eventually consistent: an id
    one call just returned (a VPC, subnet, route table, group) can be unknown to the next call for
    a few seconds. Reads and deletes go straight through: a describe's NotFound is the caller's
    to judge, and a delete's means the resource is gone."""

    _DIRECT = ("describe_", "delete_", "disassociate_", "revoke_", "get_", "can_paginate")

    def __init__(self, client: Any, settle: Callable[[Callable[[], Any], str], Any]) -> None:
        self._client = client
        self._settle = settle

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith(self._DIRECT) or not callable(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            ids = ", ".join(str(v) for k, v in sorted(kw.items()) if k.endswith(("Id", "Ids", "Resources")))
            return self._settle(lambda: attr(*args, **kw), f"EC2 to know {ids or name}")

        return call


def tag_specs(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    """Tags go in the create call itself, so a crash right after leaves a findable resource."""
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def describe_by_names(ec2: Any, op: str, result_key: str, names: list[str], **extra: Any) -> list[dict]:
    """One batched describe for every resource whose Name tag is one of `names`."""
    if not names:
        return []
    filters = [{"Name": "tag:Name", "Values": sorted(set(names))}]
    found = paginate(ec2, op, result_key, Filters=filters, **extra)
    wanted = set(names)
    # moto (and, for some filters, AWS) can return more than asked: check client-side.
    return [r for r in found if tag_dict(r.get("Tags")).get("Name") in wanted]


def ensure_tags(ec2: Any, resource_id: str, tags: dict[str, str]) -> None:
    ec2.create_tags(Resources=[resource_id], Tags=tag_list(tags))


def flatten_rules(perms: list[dict]) -> list[dict[str, Any]]:
    """One entry per (protocol, ports, source): the unit dbrepl adds and removes."""
    out = []
    for p in perms:
        base = {"IpProtocol": p.get("IpProtocol"), "FromPort": p.get("FromPort"), "ToPort": p.get("ToPort")}
        for r in p.get("IpRanges", []):
            out.append({**base, "cidr": r["CidrIp"], "description": r.get("Description", "")})
        for r in p.get("Ipv6Ranges", []):
            out.append({**base, "cidr": r["CidrIpv6"], "description": r.get("Description", "")})
        for r in p.get("UserIdGroupPairs", []):
            out.append({**base, "group": r["GroupId"], "description": r.get("Description", "")})
        for r in p.get("PrefixListIds", []):
            out.append({**base, "prefix_list": r["PrefixListId"], "description": r.get("Description", "")})
    return out


def rule_permission(rule: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {"IpProtocol": rule["IpProtocol"]}
    if rule.get("FromPort") is not None:
        p["FromPort"] = rule["FromPort"]
        p["ToPort"] = rule["ToPort"]
    desc = {"Description": rule["description"]} if rule.get("description") else {}
    if "cidr" in rule:
        key = "Ipv6Ranges" if ":" in rule["cidr"] else "IpRanges"
        p[key] = [{("CidrIpv6" if ":" in rule["cidr"] else "CidrIp"): rule["cidr"], **desc}]
    elif "group" in rule:
        p["UserIdGroupPairs"] = [{"GroupId": rule["group"], **desc}]
    elif "prefix_list" in rule:
        p["PrefixListIds"] = [{"PrefixListId": rule["prefix_list"], **desc}]
    return p


def authorize_ingress(ec2: Any, group_id: str, rule: dict[str, Any]) -> None:
    try:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[rule_permission(rule)])
    except Exception as e:
        if not is_code(e, ["InvalidPermission.Duplicate"]):
            raise


def revoke_ingress(ec2: Any, group_id: str, rule: dict[str, Any]) -> None:
    try:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[rule_permission(rule)])
    except Exception as e:
        if not is_code(e, ["InvalidPermission.NotFound", "InvalidGroup.NotFound"]):
            raise


def delete_lambda_enis(ec2: Any, vpc_id: str) -> int:
    """Delete detached ENIs Lambda left in a VPC (they block SG and subnet deletion)."""
    enis = paginate(
        ec2, "describe_network_interfaces", "NetworkInterfaces",
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "status", "Values": ["available"]}],
    )
    n = 0
    for eni in enis:
        if not eni.get("Description", "").startswith(LAMBDA_ENI_PREFIX):
            continue
        try:
            ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
            n += 1
        except Exception as e:
            if not is_code(e, ["InvalidNetworkInterfaceID.NotFound", "InvalidNetworkInterface.InUse"]):
                raise
    return n
