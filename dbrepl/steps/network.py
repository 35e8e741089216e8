"""network: per environment a VPC, two private subnets, a route table with both subnets
associated and the Aurora security group; in the hub VPC also the function security group,
the VPC endpoints (secretsmanager and ssm interface endpoints with private DNS, an s3
gateway endpoint) and their security group (docs/corrections.md, items 1-3)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dbrepl import names
from dbrepl.aws import ItemFailed, is_code, paginate, tag_dict
from dbrepl.aws.ec2 import (
    GATEWAY_SERVICES,
    INTERFACE_SERVICES,
    Settled,
    authorize_ingress,
    delete_lambda_enis,
    describe_by_names,
    endpoint_service_name,
    endpoint_services,
    ensure_tags,
    flatten_rules,
    revoke_ingress,
    rule_permission,
    subnet_zone,
    tag_specs,
    zones,
)
from dbrepl.engine import Change, Context, Observed, Resource, Step, Unknown, register
from dbrepl.errors import BadInput

DB_SG_DESCRIPTION = "Security group for {env} Aurora cluster - allows MySQL from its own VPC and the sync functions"
FN_SG_DESCRIPTION = "Security group for Lambda functions accessing Aurora clusters"
EP_SG_DESCRIPTION = "Security group for VPC endpoints used by the sync functions"
DEPENDENCY = ("DependencyViolation",)


def rule_key(prefix: str, rule: dict[str, Any], group_names: dict[str, str]) -> str:
    ports = f"{rule.get('FromPort')}-{rule.get('ToPort')}"
    if "group" in rule:
        src = group_names.get(rule["group"], rule["group"])
    else:
        src = rule.get("cidr") or rule.get("prefix_list")
    return f"{prefix}:{rule.get('IpProtocol')}:{ports}:{src}"


def describe_groups(ctx: Context, env: str, group_names: list[str]) -> list[dict]:
    """Security groups by name; shared with the peering step through the run's memo."""
    key = f"sgs:{ctx.sessions.group_key(env)}"

    def load() -> list[dict]:
        return paginate(
            ctx.client("ec2", env), "describe_security_groups", "SecurityGroups",
            Filters=[{"Name": "group-name", "Values": sorted(set(group_names))}],
        )

    return ctx.memo(key, load)


def describe_route_tables(ctx: Context, env: str) -> list[dict]:
    """Our route tables (with routes and associations); shared with the peering step."""
    rt_names = [names.route_table(e, ctx.suffix) for e in ctx.all_envs]
    return ctx.memo(f"rts:{ctx.sessions.group_key(env)}",
                    lambda: describe_by_names(ctx.client("ec2", env), "describe_route_tables", "RouteTables", rt_names))


def same_network_group(ctx: Context, env: str) -> bool:
    """Same account and region as the hub: security groups can reference each other."""
    return ctx.sessions.group_key(env) == ctx.sessions.group_key(ctx.hub)


def hub_subnet_cidrs(ctx: Context) -> list[str]:
    return [s.cidr for s in ctx.spec.environments[ctx.hub].subnets]


def all_group_names(ctx: Context) -> list[str]:
    s = ctx.suffix
    out = [names.db_sg(e, s) for e in ctx.all_envs]
    out += [names.function_sg(s), names.endpoint_sg(ctx.hub, s)]
    return out


@register
class Network(Step):
    name = "network"
    permissions = (
        "ec2:CreateVpc", "ec2:DeleteVpc", "ec2:DescribeVpcs", "ec2:ModifyVpcAttribute", "ec2:DescribeVpcAttribute",
        "ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:DescribeSubnets", "ec2:DescribeAvailabilityZones",
        "ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:DescribeRouteTables", "ec2:AssociateRouteTable",
        "ec2:DisassociateRouteTable", "ec2:ReplaceRouteTableAssociation",
        "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
        "ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints", "ec2:DescribeVpcEndpoints",
        "ec2:DescribeVpcEndpointServices",  # the endpoints' service names, as the region lists them
        "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:CreateTags",
    )

    # ------------------------------------------------------------------ desired
    def desired(self, ctx: Context) -> list[Resource]:
        out: list[Resource] = []
        for env in ctx.spec.environments:
            out += self._environment(ctx, env)
        out += self._hub_groups(ctx)
        out += self._endpoints(ctx)
        return out

    def _environment(self, ctx: Context, env: str) -> list[Resource]:
        """An environment's VPC, route table, subnets (each associated) and Aurora security group."""
        s, spec = ctx.suffix, ctx.spec.environments[env]
        vpc_id = ctx.id_of(self.name, env, "vpc")
        out = [Resource(
            "vpc", "AWS::EC2::VPC", env, names.vpc(env, s),
            {"CidrBlock": spec.cidr, "EnableDnsSupport": True, "EnableDnsHostnames": True},
            ctx.tags(env, self.name, names.vpc(env, s)), phase=0, replace_on=frozenset({"CidrBlock"}),
        )]
        rt = names.route_table(env, s)
        out.append(Resource(
            "route-table", "AWS::EC2::RouteTable", env, rt, {"VpcId": vpc_id},
            ctx.tags(env, self.name, rt), phase=1, replace_on=frozenset({"VpcId"}),
        ))
        out += self._subnets(ctx, env, vpc_id, rt)
        out += self._db_group(ctx, env, vpc_id)
        return out

    def _subnets(self, ctx: Context, env: str, vpc_id: Any, rt: str) -> list[Resource]:
        """Each subnet of the spec, and its association with the environment's route table."""
        out = []
        subnets = ctx.spec.environments[env].subnets
        where = [subnet_zone(ctx, env, i) for i in range(len(subnets))]
        if len(set(where)) < 2:
            raise BadInput(f"environments.{env}.subnets all land in {where[0]}: az_id and az_index name the same "
                           "availability zone; Aurora needs two, so pick another AZ for one subnet")
        for i, sub in enumerate(subnets, start=1):
            sn = names.subnet(env, i, ctx.suffix)
            out.append(Resource(
                f"subnet-{i}", "AWS::EC2::Subnet", env, sn,
                {"CidrBlock": sub.cidr, "AvailabilityZone": where[i - 1], "VpcId": vpc_id},
                ctx.tags(env, self.name, sn), phase=1,
                replace_on=frozenset({"CidrBlock", "AvailabilityZone", "VpcId"}),
            ))
            out.append(Resource(
                f"assoc-{i}", "AWS::EC2::SubnetRouteTableAssociation", env, f"{sn} -> {rt}",
                {"SubnetId": ctx.id_of(self.name, env, f"subnet-{i}"),
                 "RouteTableId": ctx.id_of(self.name, env, "route-table")},
                None, phase=2,
            ))
        return out

    def _db_group(self, ctx: Context, env: str, vpc_id: Any) -> list[Resource]:
        """The Aurora security group: MySQL from its own VPC, and in the hub from the functions."""
        sg = names.db_sg(env, ctx.suffix)
        port, hub = ctx.spec.aurora.port, ctx.hub
        group = Resource(
            "db-sg", "AWS::EC2::SecurityGroup", env, sg,
            {"GroupName": sg, "GroupDescription": DB_SG_DESCRIPTION.format(env=env), "VpcId": vpc_id},
            ctx.tags(env, self.name, sg), phase=1,
            replace_on=frozenset({"GroupName", "GroupDescription", "VpcId"}),
        )
        rules = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                  "cidr": ctx.spec.environments[env].cidr, "description": f"MySQL from {env} VPC"}]
        if env == hub:
            rules.append({"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                          "group": ctx.id_of(self.name, hub, "fn-sg"),
                          "description": "MySQL from the sync functions"})
        return [group, *self._rules(ctx, env, "db-sg", sg, rules)]

    def _hub_groups(self, ctx: Context) -> list[Resource]:
        """In the hub VPC: the functions' security group and the endpoints' (HTTPS from the functions)."""
        s, hub = ctx.suffix, ctx.hub
        fn = names.function_sg(s)
        hub_vpc = ctx.id_of(self.name, hub, "vpc")
        out = [Resource(
            "fn-sg", "AWS::EC2::SecurityGroup", hub, fn,
            {"GroupName": fn, "GroupDescription": FN_SG_DESCRIPTION, "VpcId": hub_vpc},
            ctx.tags(hub, self.name, fn), phase=1, replace_on=frozenset({"GroupName", "GroupDescription", "VpcId"}),
        )]
        ep = names.endpoint_sg(hub, s)
        out.append(Resource(
            "endpoint-sg", "AWS::EC2::SecurityGroup", hub, ep,
            {"GroupName": ep, "GroupDescription": EP_SG_DESCRIPTION, "VpcId": hub_vpc},
            ctx.tags(hub, self.name, ep), phase=1, replace_on=frozenset({"GroupName", "GroupDescription", "VpcId"}),
        ))
        out += self._rules(ctx, hub, "endpoint-sg", ep, [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "group": ctx.id_of(self.name, hub, "fn-sg"),
             "description": "HTTPS from the sync functions"},
        ])
        return out

    def _endpoints(self, ctx: Context) -> list[Resource]:
        """In the hub VPC: interface endpoints in its subnets (private DNS), gateway ones on its route table."""
        s, hub = ctx.suffix, ctx.hub
        hub_vpc = ctx.id_of(self.name, hub, "vpc")
        region = ctx.region(hub)
        subnets = sorted_ids([ctx.id_of(self.name, hub, f"subnet-{i}")
                              for i in range(1, len(ctx.spec.environments[hub].subnets) + 1)])
        details = endpoint_services(ctx, hub)

        def service_name(svc: str, kind: str) -> str:
            # As the region lists it (not every partition's is com.amazonaws.<region>.<svc>); one
            # not listed gets the usual name, and preflight's availability-zones check says so.
            return endpoint_service_name(details, region, svc, kind) or f"com.amazonaws.{region}.{svc}"

        out = []
        for svc in INTERFACE_SERVICES:
            n = names.endpoint(hub, svc, s)
            out.append(Resource(
                f"vpce-{svc}", "AWS::EC2::VPCEndpoint", hub, n,
                {"VpcEndpointType": "Interface", "ServiceName": service_name(svc, "Interface"), "VpcId": hub_vpc,
                 "SubnetIds": subnets, "SecurityGroupIds": [ctx.id_of(self.name, hub, "endpoint-sg")],
                 "PrivateDnsEnabled": True},
                ctx.tags(hub, self.name, n), phase=2,
                replace_on=frozenset({"VpcEndpointType", "ServiceName", "VpcId"}),
            ))
        for svc in GATEWAY_SERVICES:
            n = names.endpoint(hub, svc, s)
            out.append(Resource(
                f"vpce-{svc}", "AWS::EC2::VPCEndpoint", hub, n,
                {"VpcEndpointType": "Gateway", "ServiceName": service_name(svc, "Gateway"), "VpcId": hub_vpc,
                 "RouteTableIds": [ctx.id_of(self.name, hub, "route-table")]},
                ctx.tags(hub, self.name, n), phase=2,
                replace_on=frozenset({"VpcEndpointType", "ServiceName", "VpcId"}),
            ))
        return out

    def _rules(self, ctx: Context, env: str, sg_key: str, sg_name: str, rules: list[dict]) -> list[Resource]:
        out = []
        gnames = {ctx.id_of(self.name, ctx.hub, "fn-sg"): "fn-sg"}
        for r in rules:
            if "group" in r and isinstance(r["group"], Unknown):
                key = f"{sg_key}-in:{r['IpProtocol']}:{r['FromPort']}-{r['ToPort']}:fn-sg"
            else:
                key = rule_key(f"{sg_key}-in", r, gnames)
            src = r.get("cidr") or names.function_sg(ctx.suffix)
            out.append(Resource(
                key, "AWS::EC2::SecurityGroupIngress", env, f"{sg_name} {r['IpProtocol']}/{r['FromPort']} from {src}",
                {"GroupId": ctx.id_of(self.name, env, sg_key), **r},
                None, phase=2,
            ))
        return out

    # ------------------------------------------------------------------ discover
    def discover(self, ctx: Context) -> list[Observed]:
        return ctx.each_group(lambda envs: self._discover_group(ctx, envs, ctx.suffix, ctx.hub))

    def _discover_group(self, ctx: Context, envs: list[str], s: str, hub: str) -> list[Observed]:
        wanted = _Names.of(ctx, envs, s, hub)
        found = _describe(ctx, envs[0], wanted)
        out, vpc_ids = _observe_vpcs(found.vpcs, found.vpc_attrs, wanted.vpcs)
        subnets, subnet_keys = _observe_subnets(found.subnets, wanted.subnets)
        out += subnets
        out += _observe_route_tables(found.route_tables, wanted.route_tables, subnet_keys, s)
        out += _observe_groups(ctx, envs, found.groups, set(vpc_ids.values()), s, hub)
        out += _observe_endpoints(found.endpoints, wanted.endpoints, hub)
        return out

    # ------------------------------------------------------------------ apply
    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        ec2 = Settled(ctx.client("ec2", want.env), ctx.settle)  # ids just made may not be visible yet
        kind = want.key.split(":")[0].rsplit("-", 1)[0] if want.key.startswith(("subnet-", "assoc-")) else want.key
        p = want.props
        if want.type == "AWS::EC2::SecurityGroupIngress":
            return self._apply_rule(ctx, ec2, want, have)
        if kind == "vpc":
            vid = have.id if have else None
            current = have.props if have else NEW_VPC_DNS
            if vid is None:
                vpc = ec2.create_vpc(CidrBlock=p["CidrBlock"], TagSpecifications=tag_specs("vpc", want.tag_dict))["Vpc"]
                new_id: str = vpc["VpcId"]
                vid = new_id
                if vpc.get("State") != "available":
                    ctx.wait_for(f"VPC {want.name}", lambda: _vpc_state(ec2, new_id) == "available",
                                 ctx.timing.aurora_timeout_minutes * 60)
            # In this order: DNS hostnames cannot be turned on while DNS support is off.
            for attr in ("EnableDnsSupport", "EnableDnsHostnames"):
                if current.get(attr) != p[attr]:
                    ec2.modify_vpc_attribute(VpcId=vid, **{attr: {"Value": p[attr]}})
        elif kind == "subnet":
            vid = have.id if have else None
            if vid is None:
                vid = ec2.create_subnet(VpcId=p["VpcId"], CidrBlock=p["CidrBlock"],
                                        AvailabilityZone=p["AvailabilityZone"],
                                        TagSpecifications=tag_specs("subnet", want.tag_dict))["Subnet"]["SubnetId"]
        elif kind == "route-table":
            vid = have.id if have else None
            if vid is None:
                vid = ec2.create_route_table(VpcId=p["VpcId"],
                                             TagSpecifications=tag_specs("route-table", want.tag_dict))[
                    "RouteTable"]["RouteTableId"]
        elif kind == "assoc":
            vid = self._associate(ec2, p["SubnetId"], p["RouteTableId"])
            return Observed(want.key, want.type, want.env, want.name, vid, dict(p), None, phase=want.phase)
        elif kind in ("db-sg", "fn-sg", "endpoint-sg"):
            vid = have.id if have else None
            if vid is None:
                vid = self._create_sg(ec2, want)
        elif kind.startswith("vpce-"):
            vid = self._apply_endpoint(ec2, want, have)
        else:  # pragma: no cover - a desired resource without a handler is a programming error
            raise NotImplementedError(want.key)
        if have is not None and want.tags and any((have.tags or {}).get(k) != v for k, v in want.tags.items()):
            ensure_tags(ec2, vid, want.tags)
        return Observed(want.key, want.type, want.env, want.name, vid, dict(p), dict(want.tags or {}), phase=want.phase)

    def _create_sg(self, ec2: Any, want: Resource) -> str:
        p = want.props
        try:
            return ec2.create_security_group(
                GroupName=p["GroupName"], Description=p["GroupDescription"], VpcId=p["VpcId"],
                TagSpecifications=tag_specs("security-group", want.tag_dict),
            )["GroupId"]
        except Exception as e:
            if not is_code(e, ["InvalidGroup.Duplicate"]):
                raise
            g = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [p["GroupName"]]},
                                                      {"Name": "vpc-id", "Values": [p["VpcId"]]}])["SecurityGroups"]
            return g[0]["GroupId"]

    def _apply_rule(self, ctx: Context, ec2: Any, want: Resource, have: Observed | None) -> Observed:
        rule = dict(want.props)
        gid = rule.pop("GroupId")
        if have is None:
            authorize_ingress(ec2, gid, rule)
        else:  # only the description can differ: the rest is the key
            ec2.update_security_group_rule_descriptions_ingress(GroupId=gid, IpPermissions=[rule_permission(rule)])
        return Observed(want.key, want.type, want.env, want.name, None, dict(want.props), None,
                        attrs={"rule": rule}, phase=want.phase)

    def _associate(self, ec2: Any, subnet_id: str, rt_id: str) -> str:
        try:
            return ec2.associate_route_table(SubnetId=subnet_id, RouteTableId=rt_id)["AssociationId"]
        except Exception as e:
            if not is_code(e, ["Resource.AlreadyAssociated"]):
                raise
        # The subnet sits in another table: move it to ours.
        rts = ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
        for rt in rts:
            for a in rt.get("Associations", []):
                if a.get("SubnetId") == subnet_id:
                    if rt["RouteTableId"] == rt_id:
                        return a["RouteTableAssociationId"]
                    return ec2.replace_route_table_association(
                        AssociationId=a["RouteTableAssociationId"], RouteTableId=rt_id)["NewAssociationId"]
        raise RuntimeError(f"subnet {subnet_id} is associated elsewhere but its association was not found")

    def _apply_endpoint(self, ec2: Any, want: Resource, have: Observed | None) -> str:
        p = want.props
        if have is None:
            kw: dict[str, Any] = {"VpcEndpointType": p["VpcEndpointType"], "VpcId": p["VpcId"],
                                  "ServiceName": p["ServiceName"],
                                  "TagSpecifications": tag_specs("vpc-endpoint", want.tag_dict)}
            if p["VpcEndpointType"] == "Interface":
                kw.update(SubnetIds=p["SubnetIds"], SecurityGroupIds=p["SecurityGroupIds"],
                          PrivateDnsEnabled=p["PrivateDnsEnabled"])
            else:
                kw.update(RouteTableIds=p["RouteTableIds"])
            return ec2.create_vpc_endpoint(**kw)["VpcEndpoint"]["VpcEndpointId"]
        kw = {"VpcEndpointId": have.id}
        for field, add, remove in (("SubnetIds", "AddSubnetIds", "RemoveSubnetIds"),
                                   ("SecurityGroupIds", "AddSecurityGroupIds", "RemoveSecurityGroupIds"),
                                   ("RouteTableIds", "AddRouteTableIds", "RemoveRouteTableIds")):
            if field in p:
                want_set, have_set = set(p[field]), set(have.props.get(field, []))
                if want_set - have_set:
                    kw[add] = sorted(want_set - have_set)
                if have_set - want_set:
                    kw[remove] = sorted(have_set - want_set)
        if "PrivateDnsEnabled" in p and have.props.get("PrivateDnsEnabled") != p["PrivateDnsEnabled"]:
            kw["PrivateDnsEnabled"] = p["PrivateDnsEnabled"]
        if len(kw) > 1:
            ec2.modify_vpc_endpoint(**kw)
        return have.found_id

    # ------------------------------------------------------------------ delete
    def delete(self, ctx: Context, have: Observed) -> None:
        ec2 = ctx.client("ec2", have.env)
        t = have.type
        gone = ["InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidRouteTableID.NotFound",
                "InvalidGroup.NotFound", "InvalidAssociationID.NotFound", "InvalidVpcEndpointId.NotFound"]
        vpc_id = ctx.id_of(self.name, have.env, "vpc")

        def release() -> None:
            if isinstance(vpc_id, str):
                delete_lambda_enis(ec2, vpc_id)

        deadline = ctx.timing.eni_release_timeout_minutes * 60
        try:
            if t == "AWS::EC2::SecurityGroupIngress":
                revoke_ingress(ec2, have.props["GroupId"], have.attrs["rule"])
            elif t == "AWS::EC2::SubnetRouteTableAssociation":
                ec2.disassociate_route_table(AssociationId=have.id)
            elif t == "AWS::EC2::VPCEndpoint":
                ctx.settle(lambda: delete_endpoint(ec2, have.found_id, have.name),
                           f"VPC endpoint {have.name} to be deleted", when=lambda e: isinstance(e, ItemFailed))
            elif t == "AWS::EC2::SecurityGroup":
                ctx.retry(lambda: ec2.delete_security_group(GroupId=have.id), codes=DEPENDENCY, deadline=deadline,
                          what=f"security group {have.name} to be released", before_retry=release)
            elif t == "AWS::EC2::Subnet":
                ctx.retry(lambda: ec2.delete_subnet(SubnetId=have.id), codes=DEPENDENCY, deadline=deadline,
                          what=f"subnet {have.name} to be released", before_retry=release)
            elif t == "AWS::EC2::RouteTable":
                ctx.retry(lambda: ec2.delete_route_table(RouteTableId=have.id), codes=DEPENDENCY,
                          deadline=deadline, what=f"route table {have.name} to be released")
            elif t == "AWS::EC2::VPC":
                ctx.retry(lambda: ec2.delete_vpc(VpcId=have.id), codes=DEPENDENCY, deadline=deadline,
                          what=f"VPC {have.name} to be empty", before_retry=release)
        except Exception as e:
            if not is_code(e, gone):
                raise


def delete_endpoint(ec2: Any, endpoint_id: str, name: str) -> None:
    """DeleteVpcEndpoints answers 200 even when it did not delete: the failure is an item of
    `Unsuccessful`. Raised as ItemFailed (retried by the caller); not found counts as deleted."""
    for item in ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id]).get("Unsuccessful") or []:
        err = item.get("Error") or {}
        code = err.get("Code") or "Unsuccessful"
        if code in ("InvalidVpcEndpointId.NotFound", "InvalidVpcEndpoint.NotFound"):
            continue
        raise ItemFailed("DeleteVpcEndpoints", code,
                         f"VPC endpoint {name} ({item.get('ResourceId') or endpoint_id}) was not deleted: "
                         f"{err.get('Message') or 'no reason given'}")


def _peering_owned(ctx: Context, env: str, rule: dict, fn_id: str | None) -> bool:
    if same_network_group(ctx, env):
        return bool(fn_id) and rule.get("group") == fn_id
    # Across accounts or regions the functions are admitted by the hub subnets' CIDRs.
    return rule.get("cidr") in hub_subnet_cidrs(ctx) and rule.get("FromPort") == ctx.spec.aurora.port


def sorted_ids(ids: list[Any]) -> list[Any]:
    """Ids sorted, as the describe calls' answers are compared; left as they are while one is Unknown."""
    return ids if any(not isinstance(i, str) for i in ids) else sorted(ids)


# What a new (non-default) VPC has: DNS support on, DNS hostnames off (EC2 User Guide, "DNS
# attributes for your VPC"); only what differs is modified after CreateVpc.
NEW_VPC_DNS = {"EnableDnsSupport": True, "EnableDnsHostnames": False}


def _vpc_state(ec2: Any, vpc_id: str) -> str:
    try:
        return ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["State"]
    except Exception as e:
        if is_code(e, ["InvalidVpcID.NotFound"]):
            return "pending"  # eventual consistency right after create
        raise


def _pick(items: list[dict], ctx: Context) -> list[dict]:
    """One resource per Name: prefer ours by tags; skip what another suffix claims."""
    chosen: dict[str, dict] = {}
    for it in items:
        tags = tag_dict(it.get("Tags"))
        if not ctx.owns(tags):
            continue
        nm = tags["Name"]
        prev = chosen.get(nm)
        if prev is None or (tags.get("dbrepl:suffix") == ctx.suffix
                            and tag_dict(prev.get("Tags")).get("dbrepl:suffix") != ctx.suffix):
            chosen[nm] = it
    return list(chosen.values())


# ---------------------------------------------------------------------- discover, by part

@dataclass
class _Names:
    """The physical names a group of environments (one account and region) should have."""

    vpcs: dict[str, str]  # name -> env
    subnets: dict[str, tuple[str, int]]  # name -> (env, index)
    route_tables: dict[str, str]  # name -> env
    endpoints: dict[str, str]  # name -> service; only in the hub's group

    @classmethod
    def of(cls, ctx: Context, envs: list[str], s: str, hub: str) -> _Names:
        return cls(
            vpcs={names.vpc(e, s): e for e in envs},
            subnets={names.subnet(e, i, s): (e, i) for e in envs
                     for i in range(1, len(ctx.spec.environments[e].subnets) + 1)},
            route_tables={names.route_table(e, s): e for e in envs},
            endpoints={names.endpoint(hub, svc, s): svc for svc in INTERFACE_SERVICES + GATEWAY_SERVICES}
            if hub in envs else {},
        )


@dataclass
class _Found:
    """What the describe calls returned (ours only, one per name), before it becomes `Observed`."""

    vpcs: list[dict]
    vpc_attrs: dict[tuple[str, str], dict]  # (vpc id, attribute) -> DescribeVpcAttribute answer
    subnets: list[dict]
    route_tables: list[dict]
    groups: list[dict]
    endpoints: list[dict]


def _describe(ctx: Context, env0: str, wanted: _Names) -> _Found:
    """The group's describe calls side by side, then the VPCs' DNS attributes."""
    ec2 = ctx.client("ec2", env0)
    with ThreadPoolExecutor(max_workers=6) as pool:
        f_vpcs = pool.submit(describe_by_names, ec2, "describe_vpcs", "Vpcs", list(wanted.vpcs))
        f_subnets = pool.submit(describe_by_names, ec2, "describe_subnets", "Subnets", list(wanted.subnets))
        f_rts = pool.submit(describe_route_tables, ctx, env0)
        f_sgs = pool.submit(describe_groups, ctx, env0, all_group_names(ctx))
        f_eps = pool.submit(describe_by_names, ec2, "describe_vpc_endpoints", "VpcEndpoints", list(wanted.endpoints))
        f_azs = pool.submit(zones, ctx, env0)
        vpcs = _pick(f_vpcs.result(), ctx)
        subnets = _pick(f_subnets.result(), ctx)
        rts = _pick(f_rts.result(), ctx)
        sgs = f_sgs.result()
        eps = _pick([e for e in f_eps.result() if e.get("State", "").lower() not in ("deleted", "deleting")], ctx)
        f_azs.result()
        attr_futures = {
            (v["VpcId"], attr): pool.submit(ec2.describe_vpc_attribute, VpcId=v["VpcId"], Attribute=attr)
            for v in vpcs for attr in ("enableDnsSupport", "enableDnsHostnames")
        }
        attrs = {k: f.result() for k, f in attr_futures.items()}
    return _Found(vpcs, attrs, subnets, rts, sgs, eps)


def _observe_vpcs(vpcs: list[dict], attrs: dict[tuple[str, str], dict],
                  vpc_names: dict[str, str]) -> tuple[list[Observed], dict[str, str]]:
    """The VPCs, and env -> VPC id."""
    out: list[Observed] = []
    vpc_ids: dict[str, str] = {}
    for v in vpcs:
        nm = tag_dict(v.get("Tags"))["Name"]
        env = vpc_names[nm]
        vpc_ids[env] = v["VpcId"]
        out.append(Observed(
            "vpc", "AWS::EC2::VPC", env, nm, v["VpcId"],
            {"CidrBlock": v["CidrBlock"],
             "EnableDnsSupport": attrs[(v["VpcId"], "enableDnsSupport")]["EnableDnsSupport"]["Value"],
             "EnableDnsHostnames": attrs[(v["VpcId"], "enableDnsHostnames")]["EnableDnsHostnames"]["Value"]},
            tag_dict(v.get("Tags")), phase=0,
        ))
    return out, vpc_ids


def _observe_subnets(subnets: list[dict], subnet_names: dict[str, tuple[str, int]],
                     ) -> tuple[list[Observed], dict[str, tuple[str, int]]]:
    """The subnets, and subnet id -> (env, index)."""
    out: list[Observed] = []
    subnet_keys: dict[str, tuple[str, int]] = {}
    for sn in subnets:
        nm = tag_dict(sn.get("Tags"))["Name"]
        env, i = subnet_names[nm]
        subnet_keys[sn["SubnetId"]] = (env, i)
        out.append(Observed(
            f"subnet-{i}", "AWS::EC2::Subnet", env, nm, sn["SubnetId"],
            {"CidrBlock": sn["CidrBlock"], "AvailabilityZone": sn["AvailabilityZone"], "VpcId": sn["VpcId"]},
            tag_dict(sn.get("Tags")), phase=1,
        ))
    return out, subnet_keys


def _observe_route_tables(rts: list[dict], rt_names: dict[str, str], subnet_keys: dict[str, tuple[str, int]],
                          s: str) -> list[Observed]:
    """Each route table, followed by its live associations with our subnets."""
    out: list[Observed] = []
    for rt in rts:
        nm = tag_dict(rt.get("Tags"))["Name"]
        env = rt_names[nm]
        out.append(Observed(
            "route-table", "AWS::EC2::RouteTable", env, nm, rt["RouteTableId"], {"VpcId": rt["VpcId"]},
            tag_dict(rt.get("Tags")), attrs={"routes": rt.get("Routes", [])}, phase=1,
        ))
        for a in rt.get("Associations", []):
            sid = a.get("SubnetId")
            if a.get("Main") or sid not in subnet_keys or a.get("AssociationState", {}).get("State") in (
                "disassociated", "disassociating"
            ):
                continue
            aenv, i = subnet_keys[sid]
            out.append(Observed(
                f"assoc-{i}", "AWS::EC2::SubnetRouteTableAssociation", aenv,
                f"{names.subnet(aenv, i, s)} -> {nm}", a["RouteTableAssociationId"],
                {"SubnetId": sid, "RouteTableId": rt["RouteTableId"]}, None, phase=2,
            ))
    return out


def _observe_groups(ctx: Context, envs: list[str], sgs: list[dict], our_vpcs: set[str], s: str,
                    hub: str) -> list[Observed]:
    """Each security group, followed by its ingress rules (except those the peering step owns)."""
    # Only groups inside our VPCs count (names are unique per VPC only).
    by_name = {g["GroupName"]: g for g in sgs if g.get("VpcId") in our_vpcs and ctx.owns(tag_dict(g.get("Tags")))}
    fn_id = by_name.get(names.function_sg(s), {}).get("GroupId")
    gnames = {fn_id: "fn-sg"} if fn_id else {}
    sg_defs = [(e, "db-sg", names.db_sg(e, s)) for e in envs]
    if hub in envs:
        sg_defs += [(hub, "fn-sg", names.function_sg(s)), (hub, "endpoint-sg", names.endpoint_sg(hub, s))]
    out: list[Observed] = []
    for env, key, gname in sg_defs:
        g = by_name.get(gname)
        if g is None:
            continue
        out.append(Observed(
            key, "AWS::EC2::SecurityGroup", env, gname, g["GroupId"],
            {"GroupName": g["GroupName"], "GroupDescription": g["Description"], "VpcId": g["VpcId"]},
            tag_dict(g.get("Tags")), phase=1,
        ))
        if key == "fn-sg":
            continue  # egress only (AWS default: all outbound), as in the seed
        for rule in flatten_rules(g.get("IpPermissions", [])):
            if key == "db-sg" and env != hub and _peering_owned(ctx, env, rule, fn_id):
                continue  # owned by the peering step: it needs the peering active first
            rk = rule_key(f"{key}-in", rule, gnames)
            src = rule.get("cidr") or (names.function_sg(s) if fn_id and rule.get("group") == fn_id
                                       else rule.get("group"))
            props = {"GroupId": g["GroupId"], **rule}
            out.append(Observed(
                rk, "AWS::EC2::SecurityGroupIngress", env,
                f"{gname} {rule['IpProtocol']}/{rule.get('FromPort')} from {src}", None, props, None,
                attrs={"rule": rule}, phase=2,
            ))
    return out


def _observe_endpoints(eps: list[dict], ep_names: dict[str, str], hub: str) -> list[Observed]:
    """The hub's VPC endpoints, with the props of their type (interface or gateway)."""
    out: list[Observed] = []
    for e in eps:
        nm = tag_dict(e.get("Tags"))["Name"]
        svc = ep_names[nm]
        props: dict[str, Any] = {"VpcEndpointType": e["VpcEndpointType"], "ServiceName": e["ServiceName"],
                                 "VpcId": e["VpcId"]}
        if e["VpcEndpointType"] == "Interface":
            props["SubnetIds"] = sorted(e.get("SubnetIds", []))
            props["SecurityGroupIds"] = sorted(g["GroupId"] for g in e.get("Groups", []))
            props["PrivateDnsEnabled"] = bool(e.get("PrivateDnsEnabled"))
        else:
            props["RouteTableIds"] = sorted(e.get("RouteTableIds", []))
        out.append(Observed(f"vpce-{svc}", "AWS::EC2::VPCEndpoint", hub, nm, e["VpcEndpointId"], props,
                            tag_dict(e.get("Tags")), phase=2))
    return out
