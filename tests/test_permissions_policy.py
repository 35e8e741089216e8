"""The deployer's policy as a document (issue 11, point 4), without AWS: every action named,
resources scoped by suffix, account and region, "*" only with a reason, one policy per principal
for cross-account specs, and `dbrepl permissions` printing it. The proof against moto's IAM
enforcement is tests/aws/test_permissions.py (slow)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dbrepl.app.estate import Target
from dbrepl.app.permissions import deployer_policies
from dbrepl.engine.dependent_actions import DEPENDENT_ACTIONS, SAR, granted_dependents, markdown_table
from dbrepl.engine.permissions import (
    ENGINE_PERMISSIONS,
    UNSCOPED_WHY,
    Principal,
    derive,
    partition_of,
    policy_size,
    split,
)
from dbrepl.engine.registry import STEPS
from tests.aws.harness import ROOT, fast_spec

ACCOUNT = "123456789012"
REGION = "us-east-1"


def spec():
    return fast_spec().model_copy(update={"region": REGION})


def policy(suffix: str, s=None) -> dict:
    return deployer_policies(Target(s or spec(), suffix), account=ACCOUNT)[0].document


def actions_of(doc: dict) -> set[str]:
    return {a for st in doc["Statement"] for a in st["Action"]}


def test_every_action_is_named_and_the_document_is_valid_iam_json():
    doc = policy("pshape")
    assert doc["Version"] == "2012-10-17"
    assert json.loads(json.dumps(doc)) == doc
    sids = [st["Sid"] for st in doc["Statement"]]
    assert len(sids) == len(set(sids)) and all(s.isalnum() for s in sids)
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and st["Action"] == sorted(st["Action"])
        for a in st["Action"]:
            service, op = a.split(":")
            assert "*" not in a and "?" not in a and op[0].isupper(), a
    # Every step's declared action, and the engine's own, are in it, and what AWS checks besides.
    declared = {a for cls in STEPS.values() for a in cls.permissions} | set(ENGINE_PERMISSIONS)
    assert declared | set(granted_dependents(declared)) == actions_of(doc)
    # A policy larger than one managed policy comes in parts, each within IAM's limit, together the whole.
    longest = policy("a-twenty-char-suffix")
    parts = split(longest)
    assert all(policy_size(p) <= 6144 for p in parts)
    assert [st for p in parts for st in p["Statement"]] == longest["Statement"]
    assert len(parts) <= 3  # a user or role takes 10 managed policies


def test_resources_are_scoped_by_suffix_account_and_region_and_star_only_with_a_reason():
    d = deployer_policies(Target(spec(), "pscope"), account=ACCOUNT)[0]
    for st in d.document["Statement"]:
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if res == ["*"]:
            for a in st["Action"]:
                assert a in d.unscoped and "not classified" not in d.unscoped[a], a
            continue
        for r in res:
            assert r.startswith("arn:aws:"), r
            if not r.startswith(("arn:aws:s3:::", "arn:aws:route53:::")):  # ARNs without an account
                assert f":{ACCOUNT}:" in r or r.startswith("arn:aws:iam::123456789012:"), r
            if st["Sid"] not in ("Network", "Databases", "Keys", "VpcQuota", "RdsServiceLinkedRole",
                                 "EndpointPrivateDns") \
                    and not r.endswith(":key/*"):  # keys have ids only
                assert "pscope" in r, (st["Sid"], r)  # named after the suffix
    by_sid = {st["Sid"]: st for st in d.document["Statement"]}
    # The functions' role to Lambda and (issue 12) the scheduler's role to Scheduler: both roles,
    # passed to those two services only.
    assert by_sid["PassFunctionRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": [
        "lambda.amazonaws.com", "scheduler.amazonaws.com"]}}
    assert sorted(by_sid["PassFunctionRole"]["Resource"]) == [
        f"arn:aws:iam::{ACCOUNT}:role/db-sync-lambda-role-pscope",
        f"arn:aws:iam::{ACCOUNT}:role/db-sync-scheduler-role-pscope"]
    secrets = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:*-aurora-secret-pscope-??????"
    assert by_sid["Secrets"]["Resource"] == secrets
    assert by_sid["ScriptsBucket"]["Resource"] == f"arn:aws:s3:::migration-scripts-pscope-{ACCOUNT}"
    assert set(d.unscoped) >= set(UNSCOPED_WHY) - {"sts:AssumeRole"}


def test_partition_comes_from_the_region():
    assert [partition_of(r) for r in ("us-east-1", "cn-north-1", "us-gov-west-1")] == ["aws", "aws-cn", "aws-us-gov"]
    d = derive(Principal("deployer", ACCOUNT, ("cn-north-1",), ("dev",), True), {"bucket": ("s3:CreateBucket",)},
               suffix="s", hub_region="cn-north-1", engine={})
    assert d.document["Statement"][0]["Resource"] == f"arn:aws-cn:s3:::migration-scripts-s-{ACCOUNT}"


def test_a_wildcard_action_is_refused():
    with pytest.raises(ValueError, match="without wildcards"):
        derive(Principal("deployer", ACCOUNT, (REGION,), ("dev",), True), {"x": ("ec2:Describe*",)},
               suffix="s", hub_region=REGION, engine={})


def test_cross_account_specs_get_one_policy_per_principal():
    from tests.aws.test_cross_account import DEV_ACCOUNT, PROD_ACCOUNT, spec3

    s = spec3().model_copy(update={"region": REGION})
    deployer, dev_role, prod_role = deployer_policies(Target(s, "pxa"), account=ACCOUNT)
    assert deployer.principal.envs == ("staging",) and deployer.principal.hub
    # prod is in another account (and, since cross-region secrets, in the hub's region: another
    # account in another region is refused, tests/aws/test_cross_account.py).
    assert prod_role.principal.regions == (REGION,) and prod_role.principal.account == PROD_ACCOUNT
    assume = {st["Sid"]: st for st in deployer.document["Statement"]}["AssumeEnvironmentRoles"]
    assert assume["Resource"] == sorted([f"arn:aws:iam::{DEV_ACCOUNT}:role/dbrepl-deploy",
                                         f"arn:aws:iam::{PROD_ACCOUNT}:role/dbrepl-deploy"])
    # The shared resources (bucket, functions, role) are the hub's: not in the other accounts' roles.
    for role in (dev_role, prod_role):
        acts = actions_of(role.document)
        assert not any(a.startswith(("lambda:", "iam:PassRole", "s3:")) for a in acts)
        assert "ec2:AcceptVpcPeeringConnection" in acts and "rds:CreateDBCluster" in acts
        assert all(PROD_ACCOUNT in json.dumps(st["Resource"]) or st["Resource"] == "*"
                   for st in prod_role.document["Statement"] if st["Sid"] not in ("Network", "EndpointPrivateDns"))
    # Peering names the other side's VPCs.
    net = {st["Sid"]: st for st in deployer.document["Statement"]}["Network"]["Resource"]
    assert f"arn:aws:ec2:{REGION}:{PROD_ACCOUNT}:vpc/*" in net


def test_cli_json_is_the_policy_document_only():
    from dbrepl.cli import app

    base = ["permissions", "--suffix", "pcli", "--json", "--account", ACCOUNT,
            "--config", str(ROOT / "config" / "environments.yaml")]
    parts = split(policy("pcli", fast_spec()))
    if len(parts) == 1:
        r = CliRunner().invoke(app, base)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == parts[0]
    else:  # larger than one managed policy: each part on its own, the whole refused without --part
        r = CliRunner().invoke(app, base)
        assert r.exit_code == 2 and f"comes in {len(parts)} parts: add --part 1" in r.output, r.output
    for i, expected in enumerate(parts, start=1):
        r = CliRunner().invoke(app, [*base, "--part", str(i)])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == expected
    r = CliRunner().invoke(app, [*base, "--part", str(len(parts) + 1)])
    assert r.exit_code == 2 and f"the policy has {len(parts)} part(s)" in r.output
    human = CliRunner().invoke(app, ["permissions", "--suffix", "pcli", "--account", ACCOUNT])
    assert human.exit_code == 0, human.output
    assert "Deployer" in human.output and ":secret:*-aurora-secret-pcli-" in human.output
    assert "Resource \"*\" because:" in human.output
    assert ("of IAM's 6144 characters" if len(parts) == 1 else f"so it comes in {len(parts)} parts") in human.output


def test_split_packs_whole_statements_within_the_limit():
    doc = policy("psplit")
    sizes = [policy_size({"Version": "2012-10-17", "Statement": [st]}) for st in doc["Statement"]]
    limit = max(sizes) + 40
    parts = split(doc, limit)
    assert len(parts) > 2 and all(policy_size(p) <= limit for p in parts)
    assert [st for p in parts for st in p["Statement"]] == doc["Statement"]
    assert split(doc, 10**6) == [doc]


@pytest.mark.parametrize("args, says", [
    (["--account", "12345"], "invalid --account '12345'"),
    (["--account", ACCOUNT, "--json", "--role", "arn:aws:iam::1:role/x"], "is not a role of this spec"),
    ([], "no suffix given"),
])
def test_cli_bad_input_exits_2_with_one_line(args, says):
    from dbrepl.cli import app

    if args:
        args = ["--suffix", "pbad", *args]
    r = CliRunner().invoke(app, ["permissions", *args])
    assert r.exit_code == 2, r.output
    assert says in r.output and len(r.output.strip().splitlines()) == 1




def test_policies_compare_as_parsed_json_but_string_values_stay_strings():
    """An account id or "true" inside a policy is text to IAM: decoding it as a number (an earlier
    normalise_policy did) would make a policy IAM refuses, or hide drift between "1" and 1."""
    from dbrepl.aws.policy import normalise_policy

    doc = {"Statement": [{"Action": "s3:GetObject", "Resource": "*",
                          "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"},
                                        "Bool": {"aws:SecureTransport": "true"}}}]}
    as_text = json.dumps(doc)
    assert normalise_policy(as_text) == normalise_policy(doc)
    cond = normalise_policy(doc)["Statement"][0]["Condition"]
    assert cond == {"StringEquals": {"aws:SourceAccount": "123456789012"}, "Bool": {"aws:SecureTransport": "true"}}
    assert normalise_policy(doc)["Statement"][0]["Action"] == ["s3:GetObject"]


# ---------------------------------------------------------------- dependent actions (issue 18, point 2)
# The SAR's "Dependent actions" of every action the derived policies hold (how it was read: its "source").
SAR_DEPENDENTS: dict[str, list[str]] = json.loads((ROOT / "tests" / "sar_dependent_actions.json").read_text())[
    "dependent_actions"]


def all_policies():
    from tests.aws.test_cross_account import spec3

    return [*deployer_policies(Target(spec(), "pdep"), account=ACCOUNT),
            *deployer_policies(Target(spec3().model_copy(update={"region": REGION}), "pdep"), account=ACCOUNT)]


def missing_dependents(doc: dict) -> dict[str, set[str]]:
    """action of `doc` -> the dependents AWS checks for it that `doc` does not grant."""
    acts = actions_of(doc)
    out = {}
    for a in acts:
        need = {d.action for d in DEPENDENT_ACTIONS.get(a, ()) if not d.not_needed}
        if need - acts:
            out[a] = need - acts
    return out


def test_every_dependent_the_reference_lists_is_in_the_table_and_the_granted_ones_in_the_policy():
    for d in all_policies():
        for a in actions_of(d.document):
            assert a in SAR_DEPENDENTS, (f"{a}: read its Dependent actions in the Service Authorization Reference, "
                                         "add them to tests/sar_dependent_actions.json and to DEPENDENT_ACTIONS")
            listed = {dep.action for dep in DEPENDENT_ACTIONS.get(a, ())}
            assert set(SAR_DEPENDENTS[a]) <= listed, (a, set(SAR_DEPENDENTS[a]) - listed)
        assert missing_dependents(d.document) == {}, d.principal.who


def test_a_policy_without_a_dependent_is_caught():
    doc = policy("pdep2")
    assert missing_dependents(doc) == {}
    for st in doc["Statement"]:
        st["Action"] = [a for a in st["Action"] if a not in ("route53:AssociateVPCWithHostedZone", "kms:Encrypt")]
    assert missing_dependents(doc) == {"ec2:CreateVpcEndpoint": {"route53:AssociateVPCWithHostedZone"},
                                       "secretsmanager:ReplicateSecretToRegions": {"kms:Encrypt"},
                                       "secretsmanager:UpdateSecret": {"kms:Encrypt"}}


def test_a_step_declaring_an_action_gets_its_dependents_transitively():
    d = derive(Principal("deployer", ACCOUNT, (REGION,), ("dev",), True), {"network": ("ec2:CreateVpcEndpoint",)},
               suffix="s", hub_region=REGION, engine={})
    assert actions_of(d.document) == {"ec2:CreateVpcEndpoint", "ec2:CreateTags", "ec2:DescribeSecurityGroups",
                                      "ec2:DescribeSubnets", "ec2:DescribeVpcs", "route53:AssociateVPCWithHostedZone"}
    assert d.sources["route53:AssociateVPCWithHostedZone"] == ["AWS checks it for ec2:CreateVpcEndpoint"]
    # A dependent's own dependent (Route 53 asks for ec2:DescribeVpcs) comes along when only it is listed.
    assert granted_dependents(["route53:AssociateVPCWithHostedZone"]) == {
        "ec2:DescribeVpcs": ["route53:AssociateVPCWithHostedZone"]}
    # The hosted zone is AWS's: any zone, in the partition.
    by_sid = {st["Sid"]: st for st in d.document["Statement"]}
    assert by_sid["EndpointPrivateDns"]["Resource"] == "arn:aws:route53:::hostedzone/*"


def test_no_table_entry_is_stale():
    declared = {a for d in all_policies() for a in actions_of(d.document)}
    for a, deps in DEPENDENT_ACTIONS.items():
        assert a in declared, f"{a}: no step calls it any more"
        assert len({d.action for d in deps}) == len(deps), a
        for dep in deps:
            assert dep.source, (a, dep.action)
            if dep.source.startswith(SAR) and "API operations" not in dep.source:
                assert dep.action in SAR_DEPENDENTS[a], f"{a}: the reference does not list {dep.action}"
            else:  # another page of AWS's documentation names it
                assert dep.source.startswith(("AWS ", SAR)), dep.source
            if dep.not_needed:
                assert len(dep.not_needed) > 20, (a, dep.action)


def test_the_replica_key_gets_encrypt_and_data_keys_on_its_arn():
    """ReplicateSecretToRegions under a customer key: kms:Encrypt and kms:GenerateDataKey on the replica's key
    (the hub's, in the hub's region) and kms:Decrypt on the primary's (the environment's region)."""
    from tests.aws.harness import policy_allows
    from tests.aws.test_cross_region import xregion_spec

    s = xregion_spec().model_copy(update={"region": REGION})
    d = deployer_policies(Target(s, "prep"), account=ACCOUNT)[0]
    hub_key = f"arn:aws:kms:{s.region}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    other = next(r for r in d.principal.regions if r != s.region)
    primary_key = f"arn:aws:kms:{other}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def allowed(action: str, arn: str) -> bool:
        return policy_allows(d.document, action, arn)

    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"):
        assert allowed(action, hub_key), action
    assert allowed("kms:Decrypt", primary_key)
    assert not allowed("kms:Encrypt", hub_key.replace(ACCOUNT, "210987654321"))


def test_alarms_are_named_exactly_not_by_pattern():
    """Issue 18, point 7: "*-sync-*-to-*-S" also matched another estate whose suffix ends in "-S"."""
    from tests.aws.iam_enforced import _iam_match

    doc = policy("s")
    alarms = next(st for st in doc["Statement"] if st["Sid"] == "Alarms")["Resource"]
    assert all("*" not in r and "?" not in r for r in alarms)
    base = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    for mine in ("data-sync-dev-to-staging-failure-s", "data-sync-dev-to-staging-stale-s",
                 "dev-aurora-replication-lag-s", "db-sync-schema-replication-errors-s"):
        assert base + mine in alarms
    for theirs in ("data-sync-dev-to-staging-failure-x-s", "dev-aurora-replication-lag-x-s",
                   "db-sync-data-replication-throttles-x-s"):
        assert not any(_iam_match(r, base + theirs) for r in alarms), theirs


def test_docs_show_the_dependent_actions_table():
    text = (ROOT / "docs" / "permissions.md").read_text()
    assert markdown_table() in text, "docs/permissions.md: paste dbrepl.engine.dependent_actions.markdown_table()"
