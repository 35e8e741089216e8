"""peering: a VPC peering connection per configured pair (dev<->staging and staging<->prod
by default, never dev<->prod), accepted and active, routes to the peer's CIDR on both sides,
and 3306 opened on each non-hub Aurora security group to the sync functions' security group
(it can only reference that group once the peering is active)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbrepl import names
from dbrepl.aws import is_code, paginate, tag_dict
from dbrepl.aws.ec2 import Settled, authorize_ingress, ensure_tags, flatten_rules, revoke_ingress, tag_specs
from dbrepl.engine import Change, Context, Observed, Resource, Step, register
from dbrepl.errors import AwsFailure
from dbrepl.steps.network import (
    all_group_names,
    describe_groups,
    describe_route_tables,
    hub_subnet_cidrs,
    same_network_group,
)

LIVE = ("pending-acceptance", "provisioning", "active", "initiating-request")
# States a peering never leaves for active (EC2 User Guide, "VPC peering connection lifecycle").
PEERING_TERMINAL = ("failed", "rejected", "expired", "deleted", "deleting")


@register
class Peering(Step):
    name = "peering"
    depends_on = ("network",)
    # The peering needs the VPCs; its routes and SG rules the route tables and groups.
    needs = {0: ("network:0",), 1: ("network:1",)}
    permissions = ("ec2:CreateVpcPeeringConnection", "ec2:AcceptVpcPeeringConnection",
                   "ec2:DeleteVpcPeeringConnection", "ec2:DescribeVpcPeeringConnections", "ec2:CreateRoute",
                   "ec2:ReplaceRoute", "ec2:DeleteRoute", "ec2:DescribeRouteTables",
                   "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateTags")

    def desired(self, ctx: Context) -> list[Resource]:
        s, envs = ctx.suffix, ctx.spec.environments
        out = []
        for a, b in ctx.spec.peering:
            pname = names.peering(a, b, s)
            pcx = ctx.id_of(self.name, a, f"peering:{b}")
            out.append(Resource(
                f"peering:{b}", "AWS::EC2::VPCPeeringConnection", a, pname,
                {"VpcId": ctx.id_of("network", a, "vpc"), "PeerVpcId": ctx.id_of("network", b, "vpc"),
                 "Status": "active"},
                ctx.tags(a, self.name, pname), phase=0, replace_on=frozenset({"VpcId", "PeerVpcId"}),
            ))
            for here, there in ((a, b), (b, a)):
                cidr = envs[there].cidr
                out.append(Resource(
                    f"route:{cidr}", "AWS::EC2::Route", here, f"{names.route_table(here, s)} {cidr} via {pname}",
                    {"RouteTableId": ctx.id_of("network", here, "route-table"), "DestinationCidrBlock": cidr,
                     "VpcPeeringConnectionId": pcx},
                    None, phase=1,
                ))
        port = ctx.spec.aurora.port
        for env in ctx.all_envs:
            if env == ctx.hub:
                continue
            base = {"GroupId": ctx.id_of("network", env, "db-sg"), "IpProtocol": "tcp", "FromPort": port,
                    "ToPort": port, "description": "MySQL from the sync functions"}
            if same_network_group(ctx, env):
                out.append(Resource(
                    f"fn-rule:{port}", "AWS::EC2::SecurityGroupIngress", env,
                    f"{names.db_sg(env, s)} tcp/{port} from {names.function_sg(s)}",
                    {**base, "group": ctx.id_of("network", ctx.hub, "fn-sg")}, None, phase=1,
                ))
            else:  # another account or region: SG references do not cross; admit the hub subnets
                for cidr in hub_subnet_cidrs(ctx):
                    out.append(Resource(
                        f"fn-rule:{port}:{cidr}", "AWS::EC2::SecurityGroupIngress", env,
                        f"{names.db_sg(env, s)} tcp/{port} from {cidr} (sync functions' subnet)",
                        {**base, "cidr": cidr}, None, phase=1,
                    ))
        return out

    def discover(self, ctx: Context) -> list[Observed]:
        s = ctx.suffix
        envs = ctx.spec.environments
        pnames = {names.peering(a, b, s): (a, b) for a, b in ctx.spec.peering}
        rt_names = {names.route_table(e, s): e for e in envs}
        hub_sgs = describe_groups(ctx, ctx.hub, all_group_names(ctx))
        fn = next((g for g in hub_sgs if g["GroupName"] == names.function_sg(s)
                   and ctx.owns(tag_dict(g.get("Tags")))), None)

        def group(members: list[str]) -> list[Observed]:
            env0 = members[0]
            ec2 = ctx.client("ec2", env0)
            requesters = [p for p in pnames if pnames[p][0] in members]
            with ThreadPoolExecutor(max_workers=3) as pool:
                f_p = pool.submit(paginate, ec2, "describe_vpc_peering_connections", "VpcPeeringConnections",
                                  Filters=[{"Name": "tag:Name", "Values": requesters}]) if requesters else None
                f_rt = pool.submit(describe_route_tables, ctx, env0)
                f_sg = pool.submit(describe_groups, ctx, env0, all_group_names(ctx))
                pcxs = f_p.result() if f_p else []
                rts, sgs = f_rt.result(), f_sg.result()
            return self._observe(ctx, members, pcxs, rts, sgs, fn, pnames, rt_names)

        return ctx.each_group(group)

    def _observe(self, ctx: Context, members: list[str], pcxs: list[dict], rts: list[dict], sgs: list[dict],
                 fn: dict | None, pnames: dict, rt_names: dict) -> list[Observed]:
        s, envs = ctx.suffix, ctx.spec.environments
        out: list[Observed] = []
        for p in pcxs:
            tags = tag_dict(p.get("Tags"))
            pair = pnames.get(tags.get("Name", ""))  # moto ignores the Name filter's value
            status = p.get("Status", {}).get("Code")
            if pair is None or pair[0] not in members or status not in LIVE or not ctx.owns(tags):
                continue
            a, b = pair
            out.append(Observed(
                f"peering:{b}", "AWS::EC2::VPCPeeringConnection", a, tags["Name"], p["VpcPeeringConnectionId"],
                {"VpcId": p["RequesterVpcInfo"]["VpcId"], "PeerVpcId": p["AccepterVpcInfo"]["VpcId"], "Status": status},
                tags, phase=0,
            ))
        cidrs = {e.cidr for e in envs.values()}
        for rt in rts:
            tags = tag_dict(rt.get("Tags"))
            env = rt_names.get(tags.get("Name", ""))
            if env is None or env not in members or not ctx.owns(tags):
                continue
            for r in rt.get("Routes", []):
                dest = r.get("DestinationCidrBlock")
                if dest not in cidrs or dest == envs[env].cidr:
                    continue
                out.append(Observed(
                    f"route:{dest}", "AWS::EC2::Route", env, f"{tags['Name']} {dest}", None,
                    {"RouteTableId": rt["RouteTableId"], "DestinationCidrBlock": dest,
                     "VpcPeeringConnectionId": r.get("VpcPeeringConnectionId")},
                    None, phase=1,
                ))
        by_name = {g["GroupName"]: g for g in sgs if ctx.owns(tag_dict(g.get("Tags")))}
        port = ctx.spec.aurora.port
        for env in members:
            if env == ctx.hub:
                continue
            g = by_name.get(names.db_sg(env, s))
            if g is None:
                continue
            same = same_network_group(ctx, env)
            for rule in flatten_rules(g.get("IpPermissions", [])):
                if same and fn is not None and rule.get("group") == fn["GroupId"]:
                    key, src = f"fn-rule:{rule.get('FromPort')}", fn["GroupName"]
                elif not same and rule.get("cidr") in hub_subnet_cidrs(ctx) and rule.get("FromPort") == port:
                    key, src = f"fn-rule:{port}:{rule['cidr']}", f"{rule['cidr']} (sync functions' subnet)"
                else:
                    continue
                out.append(Observed(
                    key, "AWS::EC2::SecurityGroupIngress", env,
                    f"{g['GroupName']} tcp/{rule.get('FromPort')} from {src}", None,
                    {"GroupId": g["GroupId"], **rule}, None, attrs={"rule": rule}, phase=1,
                ))
        return out

    def apply(self, ctx: Context, change: Change, want: Resource | None, have: Observed | None) -> Observed | None:
        assert want is not None
        ec2 = Settled(ctx.client("ec2", want.env), ctx.settle)  # ids just made may not be visible yet
        p = want.props
        if want.type == "AWS::EC2::VPCPeeringConnection":
            peer = want.key.split(":", 1)[1]
            pid = have.id if have else None
            if pid is None:
                kw = {}
                if ctx.sessions.group_key(peer) != ctx.sessions.group_key(want.env):
                    # Across accounts or regions: name the accepter; it accepts with its own session.
                    kw = {"PeerOwnerId": ctx.account_id(peer), "PeerRegion": ctx.region(peer)}
                pid = ec2.create_vpc_peering_connection(
                    VpcId=p["VpcId"], PeerVpcId=p["PeerVpcId"],
                    TagSpecifications=tag_specs("vpc-peering-connection", want.tag_dict), **kw,
                )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
            status = have.props.get("Status") if have else None
            if status != "active":
                self._accept(ctx, ec2, Settled(ctx.client("ec2", peer), ctx.settle), pid)
            if have is not None and any((have.tags or {}).get(k) != v for k, v in want.tag_dict.items()):
                ensure_tags(ec2, pid, want.tag_dict)
            return Observed(want.key, want.type, want.env, want.name, pid, dict(p), dict(want.tag_dict))
        if want.type == "AWS::EC2::Route":
            kw = {"RouteTableId": p["RouteTableId"], "DestinationCidrBlock": p["DestinationCidrBlock"],
                  "VpcPeeringConnectionId": p["VpcPeeringConnectionId"]}
            if have is None:
                try:
                    ec2.create_route(**kw)
                except Exception as e:
                    if not is_code(e, ["RouteAlreadyExists"]):
                        raise
                    ec2.replace_route(**kw)
            else:
                ec2.replace_route(**kw)
            return Observed(want.key, want.type, want.env, want.name, None, dict(p), None, phase=1)
        rule = {k: v for k, v in p.items() if k != "GroupId"}
        if have is None:
            authorize_ingress(ec2, p["GroupId"], rule)
        return Observed(want.key, want.type, want.env, want.name, None, dict(p), None, attrs={"rule": rule}, phase=1)

    def _accept(self, ctx: Context, requester: Any, accepter: Any, pid: str) -> None:
        def state(client: Any) -> str:
            try:
                st = client.describe_vpc_peering_connections(VpcPeeringConnectionIds=[pid])[
                    "VpcPeeringConnections"][0]["Status"]
            except Exception as e:  # not yet visible on the accepter's side
                if is_code(e, ["InvalidVpcPeeringConnectionID.NotFound"]):
                    return "initiating-request"
                raise
            code = st.get("Code", "")
            if code in PEERING_TERMINAL:  # it never becomes active from there: stop waiting now
                raise AwsFailure(f"make VPC peering {pid} active",
                                 f"it is {code}: {st.get('Message') or 'no reason given'} (the peering was left "
                                 "as it is: check the two VPCs' CIDRs, accounts and regions, then destroy and "
                                 "apply)")
            return code

        ctx.wait_for(f"peering {pid} to reach the accepter", lambda: state(accepter) != "initiating-request", 600)
        if state(accepter) == "pending-acceptance":
            accepter.accept_vpc_peering_connection(VpcPeeringConnectionId=pid)
        ctx.wait_for(f"peering {pid} to be active", lambda: state(requester) == "active", 600)

    def delete(self, ctx: Context, have: Observed) -> None:
        ec2 = ctx.client("ec2", have.env)
        try:
            if have.type == "AWS::EC2::VPCPeeringConnection":
                ec2.delete_vpc_peering_connection(VpcPeeringConnectionId=have.id)
            elif have.type == "AWS::EC2::Route":
                ec2.delete_route(RouteTableId=have.props["RouteTableId"],
                                 DestinationCidrBlock=have.props["DestinationCidrBlock"])
            else:
                revoke_ingress(ec2, have.props["GroupId"], have.attrs["rule"])
        except Exception as e:
            if not is_code(e, ["InvalidVpcPeeringConnectionID.NotFound", "InvalidRoute.NotFound",
                               "InvalidRouteTableID.NotFound"]):
                raise
