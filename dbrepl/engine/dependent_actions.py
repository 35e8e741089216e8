"""What AWS checks besides the action of a call: the "Dependent actions" of the Service
Authorization Reference (SAR), and the extra permissions a service's API Reference or guide names
for a call as dbrepl makes it. IAM checks them although dbrepl never calls them itself (a secret
replica under a customer key ends `Failed` without `kms:Encrypt` on that key; an interface
endpoint with private DNS is refused without `route53:AssociateVPCWithHostedZone`).

One table, `DEPENDENT_ACTIONS`: for each action dbrepl calls, every dependent the reference lists,
with where it says so, and either granted (merged into the derived policy, scoped as the
dependent action's own service is scoped in dbrepl.engine.permissions) or `not_needed` with why
dbrepl's call never triggers it (a parameter dbrepl does not send). tests/test_permissions_policy.py
checks the table against the reference's entries for every action of the policy
(tests/sar_dependent_actions.json), that every granted dependent is in the derived policy, that
no entry is stale, and that docs/permissions.md shows this table (`markdown_table`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

SAR = "Service Authorization Reference"


class Dependent(NamedTuple):
    action: str
    source: str  # where AWS says the call needs it
    not_needed: str = ""  # why dbrepl's call never needs it; "" when granted


def _sar(service: str, action: str, note: str = "") -> str:
    return f"{SAR}, {service}, {action}: dependent action" + (f" ({note})" if note else "")


_EC2 = "Amazon EC2"
_RDS = "Amazon RDS"
_TAGS = "tags given in the create call (TagSpecifications)"
_RDS_TAGS = "tags given in the call (Tags)"
_RDS_ROLE = "only with MonitoringRoleArn or a directory's DomainIAMRoleName: dbrepl passes no role"
_RDS_SECRET = ("only with ManageMasterUserPassword (RDS makes its own secret): dbrepl gives the password "
               "from its own secret")
_RDS_ROTATE = "only with RotateMasterUserPassword: dbrepl does not let RDS manage the password"
_RDS_TENANT = "RDS for Oracle multitenant only"
# RDS encrypts the cluster's storage with the environment's customer managed key (KmsKeyId).
_RDS_KMS = ("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey")
_LAMBDA_VPC = ("AWS Lambda Developer Guide, Giving Lambda functions access to a VPC: user permissions "
               "to configure a function's VPC (CreateFunction, UpdateFunctionConfiguration)")
_SM_KMS = "AWS Secrets Manager API Reference, {op}: Required permissions, with a key other than aws/secretsmanager"


def _rds_kms(op: str, resource: str) -> tuple[Dependent, ...]:
    return tuple(Dependent(a, _sar(_RDS, op, f"{resource} encrypted with the environment's key")) for a in _RDS_KMS)


DEPENDENT_ACTIONS: dict[str, tuple[Dependent, ...]] = {
    # ---------------------------------------------------------------- EC2
    "ec2:CreateVpc": (Dependent("ec2:CreateTags", _sar(_EC2, "CreateVpc", _TAGS)),),
    "ec2:CreateSubnet": (Dependent("ec2:CreateTags", _sar(_EC2, "CreateSubnet", _TAGS)),),
    "ec2:CreateRouteTable": (Dependent("ec2:CreateTags", _sar(_EC2, "CreateRouteTable", _TAGS)),),
    "ec2:CreateSecurityGroup": (Dependent("ec2:CreateTags", _sar(_EC2, "CreateSecurityGroup", _TAGS)),),
    "ec2:AuthorizeSecurityGroupIngress": (
        Dependent("ec2:CreateTags", _sar(_EC2, "AuthorizeSecurityGroupIngress", "tags on the new rules"),
                  "only with TagSpecifications: dbrepl tags no security group rule"),),
    "ec2:CreateVpcEndpoint": (
        Dependent("ec2:CreateTags", _sar(_EC2, "CreateVpcEndpoint", _TAGS)),
        Dependent("ec2:DescribeSecurityGroups", _sar(_EC2, "CreateVpcEndpoint")),
        Dependent("ec2:DescribeSubnets", _sar(_EC2, "CreateVpcEndpoint")),
        Dependent("ec2:DescribeVpcs", _sar(_EC2, "CreateVpcEndpoint")),
        Dependent("route53:AssociateVPCWithHostedZone",
                  _sar(_EC2, "CreateVpcEndpoint", "an interface endpoint with PrivateDnsEnabled associates the "
                                                  "VPC with the service's private hosted zone")),),
    "ec2:CreateVpcPeeringConnection": (
        Dependent("ec2:CreateTags", _sar(_EC2, "CreateVpcPeeringConnection", _TAGS)),),
    # ---------------------------------------------------------------- KMS
    "kms:CreateKey": (
        Dependent("kms:PutKeyPolicy", _sar("AWS KMS", "CreateKey", "the key policy given in the call")),
        Dependent("kms:TagResource", _sar("AWS KMS", "CreateKey", "tags given in the call")),
        Dependent("iam:CreateServiceLinkedRole", _sar("AWS KMS", "CreateKey"),
                  "multi-Region keys only (KMS's service-linked role): dbrepl's keys are single-Region"),),
    # ---------------------------------------------------------------- Lambda
    "lambda:CreateFunction": (
        Dependent("iam:PassRole", _sar("AWS Lambda", "CreateFunction", "the execution role")),
        Dependent("lambda:PassCapacityProvider", _sar("AWS Lambda", "CreateFunction"),
                  "only for functions on a capacity provider: dbrepl's run on Lambda's own"),
        Dependent("lambda:TagResource", "AWS Lambda Developer Guide, Using tags on Lambda functions: "
                                        "lambda:TagResource to tag a function on create"),
        Dependent("ec2:DescribeSecurityGroups", _LAMBDA_VPC),
        Dependent("ec2:DescribeSubnets", _LAMBDA_VPC),
        Dependent("ec2:DescribeVpcs", _LAMBDA_VPC),),
    "lambda:UpdateFunctionConfiguration": (
        Dependent("iam:PassRole", "AWS Lambda Developer Guide, Lambda API permissions reference: "
                                  "UpdateFunctionConfiguration with a Role (dbrepl sends the whole configuration)"),
        Dependent("ec2:DescribeSecurityGroups", _LAMBDA_VPC),
        Dependent("ec2:DescribeSubnets", _LAMBDA_VPC),
        Dependent("ec2:DescribeVpcs", _LAMBDA_VPC),),
    "lambda:GetFunction": (
        Dependent("lambda:ListTags", "AWS Lambda Developer Guide, Using tags on Lambda functions: for tagged "
                                     "functions lambda:ListTags is necessary for GetFunction (else no Tags)"),),
    # ---------------------------------------------------------------- RDS
    "rds:CreateDBCluster": (
        *_rds_kms("CreateDBCluster", "storage"),
        Dependent("rds:AddTagsToResource", _sar(_RDS, "CreateDBCluster", _RDS_TAGS)),
        Dependent("rds:CreateDBInstance", _sar(_RDS, "CreateDBCluster", "Multi-AZ DB clusters make their instances")),
        Dependent("iam:PassRole", _sar(_RDS, "CreateDBCluster"), _RDS_ROLE),
        Dependent("secretsmanager:CreateSecret", _sar(_RDS, "CreateDBCluster"), _RDS_SECRET),
        Dependent("secretsmanager:TagResource", _sar(_RDS, "CreateDBCluster"), _RDS_SECRET),),
    "rds:CreateDBInstance": (
        *_rds_kms("CreateDBInstance", "an instance of a cluster"),
        Dependent("rds:AddTagsToResource", _sar(_RDS, "CreateDBInstance", _RDS_TAGS)),
        Dependent("iam:PassRole", _sar(_RDS, "CreateDBInstance"), _RDS_ROLE),
        Dependent("rds:CreateTenantDatabase", _sar(_RDS, "CreateDBInstance"), _RDS_TENANT),
        Dependent("secretsmanager:CreateSecret", _sar(_RDS, "CreateDBInstance"), _RDS_SECRET),
        Dependent("secretsmanager:TagResource", _sar(_RDS, "CreateDBInstance"), _RDS_SECRET),),
    "rds:RestoreDBClusterFromSnapshot": (
        Dependent("rds:AddTagsToResource", _sar(_RDS, "RestoreDBClusterFromSnapshot", _RDS_TAGS)),
        Dependent("rds:CreateDBInstance", _sar(_RDS, "RestoreDBClusterFromSnapshot",
                                               "Multi-AZ DB clusters make their instances")),
        Dependent("iam:PassRole", _sar(_RDS, "RestoreDBClusterFromSnapshot"), _RDS_ROLE),
        # Not in the SAR's column, but the restored cluster is encrypted with the environment's key
        # (KmsKeyId) as a created one is, and RDS asks the same of the caller for it.
        *(Dependent(x, "AWS documentation, Amazon RDS User Guide, Restoring from a DB cluster snapshot: a "
                       "KmsKeyId needs the same key permissions as CreateDBCluster with that key") for x in _RDS_KMS),),
    "rds:ModifyDBCluster": (
        *_rds_kms("ModifyDBCluster", "storage"),
        Dependent("rds:ModifyDBInstance", _sar(_RDS, "ModifyDBCluster", "changes applied to the members")),
        Dependent("iam:PassRole", _sar(_RDS, "ModifyDBCluster"), _RDS_ROLE),
        Dependent("secretsmanager:CreateSecret", _sar(_RDS, "ModifyDBCluster"), _RDS_SECRET),
        Dependent("secretsmanager:RotateSecret", _sar(_RDS, "ModifyDBCluster"), _RDS_ROTATE),
        Dependent("secretsmanager:TagResource", _sar(_RDS, "ModifyDBCluster"), _RDS_SECRET),),
    "rds:ModifyDBInstance": (
        *_rds_kms("ModifyDBInstance", "an instance of a cluster"),
        Dependent("rds:AddTagsToResource", _sar(_RDS, "ModifyDBInstance")),
        Dependent("iam:PassRole", _sar(_RDS, "ModifyDBInstance"), _RDS_ROLE),
        Dependent("rds:CreateTenantDatabase", _sar(_RDS, "ModifyDBInstance"), _RDS_TENANT),
        Dependent("secretsmanager:CreateSecret", _sar(_RDS, "ModifyDBInstance"), _RDS_SECRET),
        Dependent("secretsmanager:RotateSecret", _sar(_RDS, "ModifyDBInstance"), _RDS_ROTATE),
        Dependent("secretsmanager:TagResource", _sar(_RDS, "ModifyDBInstance"), _RDS_SECRET),),
    "rds:DeleteDBCluster": (
        Dependent("rds:CreateDBClusterSnapshot", _sar(_RDS, "DeleteDBCluster", "the final snapshot")),
        Dependent("rds:AddTagsToResource", _sar(_RDS, "DeleteDBCluster", "the final snapshot's tags")),
        Dependent("rds:DeleteDBInstance", _sar(_RDS, "DeleteDBCluster")),),
    "rds:DeleteDBInstance": (
        Dependent("rds:AddTagsToResource", _sar(_RDS, "DeleteDBInstance")),
        Dependent("rds:CreateDBSnapshot", _sar(_RDS, "DeleteDBInstance"),
                  "an Aurora instance has no final snapshot of its own (the cluster's is taken)"),
        Dependent("rds:DeleteTenantDatabase", _sar(_RDS, "DeleteDBInstance"), _RDS_TENANT),),
    "rds:CreateDBSubnetGroup": (Dependent("rds:AddTagsToResource", _sar(_RDS, "CreateDBSubnetGroup", _RDS_TAGS)),),
    "rds:CreateDBClusterParameterGroup": (
        Dependent("rds:AddTagsToResource", _sar(_RDS, "CreateDBClusterParameterGroup", _RDS_TAGS)),),
    "rds:CreateDBClusterSnapshot": (
        Dependent("rds:AddTagsToResource", _sar(_RDS, "CreateDBClusterSnapshot", _RDS_TAGS)),),
    # ---------------------------------------------------------------- Secrets Manager
    "secretsmanager:CreateSecret": (
        Dependent("kms:GenerateDataKey", _SM_KMS.format(op="CreateSecret")),
        Dependent("kms:Decrypt", _SM_KMS.format(op="CreateSecret")),
        Dependent("secretsmanager:ReplicateSecretToRegions",
                  f"{SAR}, AWS Secrets Manager, API operations: CreateSecret with AddReplicaRegions"),
        Dependent("secretsmanager:TagResource",
                  f"{SAR}, AWS Secrets Manager, API operations: CreateSecret with Tags"),),
    "secretsmanager:ReplicateSecretToRegions": (
        Dependent("kms:Decrypt", _SM_KMS.format(op="ReplicateSecretToRegions") + ": the primary's key"),
        Dependent("kms:GenerateDataKey", _SM_KMS.format(op="ReplicateSecretToRegions") + ": the replica's key"),
        Dependent("kms:Encrypt", _SM_KMS.format(op="ReplicateSecretToRegions")
                  + ": the replica's key (without it the replica ends Failed)"),),
    "secretsmanager:UpdateSecret": (
        Dependent("kms:GenerateDataKey", _SM_KMS.format(op="UpdateSecret")),
        Dependent("kms:Encrypt", _SM_KMS.format(op="UpdateSecret") + ": the new key re-encrypts the versions"),
        Dependent("kms:Decrypt", _SM_KMS.format(op="UpdateSecret")),),
    "secretsmanager:GetSecretValue": (Dependent("kms:Decrypt", _SM_KMS.format(op="GetSecretValue")),),
    # ---------------------------------------------------------------- Route 53 (a dependent's dependent)
    "route53:AssociateVPCWithHostedZone": (
        Dependent("ec2:DescribeVpcs", _sar("Amazon Route 53", "AssociateVPCWithHostedZone")),),
    # ---------------------------------------------------------------- Scheduler, SNS, Service Quotas
    "scheduler:CreateSchedule": (
        Dependent("iam:PassRole", _sar("Amazon EventBridge Scheduler", "CreateSchedule", "the schedule's role")),),
    "scheduler:UpdateSchedule": (
        Dependent("iam:PassRole", _sar("Amazon EventBridge Scheduler", "UpdateSchedule", "the schedule's role")),),
    "scheduler:DeleteScheduleGroup": (
        Dependent("scheduler:DeleteSchedule", _sar("Amazon EventBridge Scheduler", "DeleteScheduleGroup",
                                                   "the schedules in the group")),),
    "sns:CreateTopic": (
        Dependent("iam:PassRole", _sar("Amazon SNS", "CreateTopic"),
                  "only with delivery-status logging roles among the attributes: dbrepl sets KmsMasterKeyId only"),),
    "sns:SetTopicAttributes": (
        Dependent("iam:PassRole", _sar("Amazon SNS", "SetTopicAttributes"),
                  "only for delivery-status logging roles: dbrepl sets KmsMasterKeyId only"),),
    "servicequotas:GetServiceQuota": tuple(
        Dependent(a, _sar("Service Quotas", "GetServiceQuota"),
                  "for those services' quotas: dbrepl reads the VPC quota (vpc/L-F678F1CE) only")
        for a in ("autoscaling:DescribeAccountLimits", "cloudformation:DescribeAccountLimits",
                  "dynamodb:DescribeLimits", "elasticloadbalancing:DescribeAccountLimits", "iam:GetAccountSummary",
                  "kinesis:DescribeLimits", "rds:DescribeAccountAttributes", "route53:GetAccountLimit")),
}

# Why "*" (or the scope chosen) for a dependent of another service than the caller's steps use.
DEPENDENT_SCOPES = {
    "route53:AssociateVPCWithHostedZone": "the endpoint service's private hosted zone is AWS's own and its id is "
                                          "not known beforehand (route 53 ARNs carry no account or region)",
}


def granted_dependents(actions: Iterable[str]) -> dict[str, list[str]]:
    """Every dependent `actions` need, transitively (a dependent's own dependents too), that is not
    among `actions`: dependent -> the actions that need it."""
    out: dict[str, list[str]] = {}
    have = set(actions)
    todo = sorted(have)
    seen = set(todo)
    while todo:
        act = todo.pop()
        for dep in DEPENDENT_ACTIONS.get(act, ()):
            if dep.not_needed:
                continue
            if dep.action not in have:
                out.setdefault(dep.action, [])
                if act not in out[dep.action]:
                    out[dep.action].append(act)
            if dep.action not in seen:
                seen.add(dep.action)
                todo.append(dep.action)
    return {k: sorted(v) for k, v in sorted(out.items())}


def markdown_table() -> str:
    """The table as docs/permissions.md shows it (a test keeps the two the same)."""
    rows = ["| Action dbrepl calls | Dependent action | Granted | Source |", "|---|---|---|---|"]
    for act in sorted(DEPENDENT_ACTIONS):
        for dep in DEPENDENT_ACTIONS[act]:
            granted = "yes" if not dep.not_needed else f"no: {dep.not_needed}"
            rows.append(f"| `{act}` | `{dep.action}` | {granted} | {dep.source} |")
    return "\n".join(rows)
