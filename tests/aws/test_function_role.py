"""The functions' role gets only what the functions call (issue 11, point 4).

An applied estate's role policies (the inline policy and AWSLambdaVPCAccessExecutionRole) are
given to an IAM user; the schema, migrate and data handlers then run in-process as that user
under moto's IAM enforcement, against a real MariaDB standing in for the clusters. Every AWS
call they make is listed: each must be allowed by the inline policy (action and resource), and
every action of the inline policy must be one of them or explained.
"""

from __future__ import annotations

import fnmatch
import json
import threading

import pytest

from dbrepl.aws.session import new_session
from dbrepl.steps.lambdas import INLINE_POLICY, VPC_ACCESS_POLICY
from dbrepl.sync import contract
from dbrepl.sync.data.event import run_data_event
from dbrepl.sync.schema.event import run_schema_event
from tests import mariadb_server
from tests.aws.iam_enforced import iam_action, iam_enforced

REGION, ACCOUNT, SUFFIX = "us-east-1", "123456789012", "frole1"
# Actions the role holds that no handler code calls, and why they are still needed.
EXPLAINED = {
    "kms:Decrypt": "Secrets Manager and S3 decrypt the secrets and scripts with the environments' keys "
                   "on the function's behalf (kms:ViaService)",
    "logs:CreateLogStream": "Lambda's runtime writes the functions' logs",
    "logs:PutLogEvents": "Lambda's runtime writes the functions' logs",
}


@pytest.fixture(scope="module")
def server():
    if mariadb_server.find_binaries() is None:
        pytest.skip("MariaDB server binaries not installed")
    s = mariadb_server.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def applied(aws):
    from dbrepl.aws.session import SessionFactory
    from tests.aws.harness import CallLog, Estate, fast_spec

    e = Estate(fast_spec(), SUFFIX, SessionFactory(REGION), CallLog())
    e.apply()
    return e


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def hook(self, client) -> None:
        signing = client.meta.service_model.signing_name

        def before(model, params, **kw) -> None:  # the call's own parameters, before serialising
            with self.lock:
                self.seen.append((iam_action(signing, model.name), dict(params)))

        client.meta.events.register("before-parameter-build.*.*", before)


def _resource(action: str, params: dict) -> tuple[str, dict[str, str]]:
    """The ARN IAM checks a handler's call against, and the request's condition keys."""
    if action == "secretsmanager:GetSecretValue":
        return params["SecretId"], {}
    if action == "ssm:PutParameter":
        return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{params['Name']}", {}
    if action == "s3:ListBucket":
        return f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params.get("Prefix", "")}
    if action == "s3:GetObject":
        return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {}
    raise AssertionError(f"the handlers called {action}, which the role does not grant")


def _allowed(doc: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    for st in doc["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if action not in acts or not any(fnmatch.fnmatchcase(resource, r) for r in res):
            continue
        ok = True
        for op, conds in st.get("Condition", {}).items():
            for key, want in conds.items():
                want = want if isinstance(want, list) else [want]
                have = context.get(key)
                ok &= have is not None and (any(fnmatch.fnmatchcase(have, w) for w in want) if op == "StringLike"
                                            else have in want)
        if ok:
            return True
    return False


def test_the_handlers_need_exactly_what_the_role_grants(applied, server):
    iam, lam = applied.client("iam"), applied.client("lambda")
    role = f"db-sync-lambda-role-{SUFFIX}"
    inline = iam.get_role_policy(RoleName=role, PolicyName=INLINE_POLICY)["PolicyDocument"]
    inline = json.loads(inline) if isinstance(inline, str) else inline
    attached = [a["PolicyArn"] for a in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    assert attached == [VPC_ACCESS_POLICY]

    # A user holding exactly the role's policies, standing in for the function.
    user = f"function-{SUFFIX}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(inline))
    iam.attach_user_policy(UserName=user, PolicyArn=VPC_ACCESS_POLICY)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    session = new_session(REGION, credentials=(key["AccessKeyId"], key["SecretAccessKey"]))
    calls = Calls()

    def client(service: str):
        c = session.client(service)
        calls.hook(c)
        return c

    # The function's configured environment, its databases on the stand-in server.
    environ = dict(lam.get_function_configuration(FunctionName=f"db-sync-schema-replication-{SUFFIX}")
                   ["Environment"]["Variables"])
    sm = applied.client("secretsmanager")
    for env in ("dev", "staging", "prod"):
        environ[contract.endpoint_variable(env)] = "127.0.0.1"
        environ[contract.port_variable(env)] = str(server.port)
    root = server.connect(ssl_disabled=True)
    with root.cursor() as cur:
        # One server stands in for every cluster: each secret gets a user of its own on it.
        for env in ("dev", "staging", "prod"):
            user_, password = f"{env}_{SUFFIX}", f"pw-{env}-0123456789abcdef"
            sm.put_secret_value(SecretId=environ[contract.secret_arn_variable(env)],
                                SecretString=json.dumps({"username": user_, "password": password}))
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user_, password))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO `{user_}`@'%'")
        cur.execute("CREATE DATABASE IF NOT EXISTS app")
        cur.execute("CREATE TABLE IF NOT EXISTS app.lookup_data (id INT PRIMARY KEY, v VARCHAR(20))")
    root.close()
    s3 = applied.client("s3")
    s3.put_object(Bucket=environ[contract.MIGRATION_BUCKET], Key="migrations/V1__perm_check.sql",
                  Body=b"CREATE TABLE perm_check (id INT PRIMARY KEY);")

    with iam_enforced():
        schema = run_schema_event({"source_env": "dev", "target_env": "staging"}, environ, client)
        migrate = run_schema_event({"action": "migrate", "target_env": "staging"}, environ, client)
        data = run_data_event({"source_env": "dev", "target_env": "staging"}, environ, client)
    for r in (schema, migrate, data):
        assert r["status"] == "success", r
        assert "record_error" not in r, r

    called = {a for a, _ in calls.seen}
    assert called == {"secretsmanager:GetSecretValue", "s3:ListBucket", "s3:GetObject", "ssm:PutParameter"}
    for action, params in calls.seen:
        resource, context = _resource(action, params)
        assert _allowed(inline, action, resource, context), (action, resource)

    granted = {a for st in inline["Statement"] for a in st["Action"]}
    assert granted - called == set(EXPLAINED)
    # kms:Decrypt only through the two services, on the keys the secrets and scripts use.
    by_sid = {st["Sid"]: st for st in inline["Statement"]}
    decrypt = by_sid["DecryptThroughSecretsAndScripts"]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == [
        f"s3.{REGION}.amazonaws.com", f"secretsmanager.{REGION}.amazonaws.com"]
    keys = set(decrypt["Resource"])
    for env in ("dev", "staging", "prod"):
        assert sm.describe_secret(SecretId=environ[contract.secret_arn_variable(env)])["KmsKeyId"] in keys
    sse = s3.get_bucket_encryption(Bucket=environ[contract.MIGRATION_BUCKET])
    assert sse["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"][
        "KMSMasterKeyID"] in keys


def test_a_role_without_one_action_fails_the_run(applied, server):
    """The check above can fail: without ssm:PutParameter the run's record is refused."""
    iam = applied.client("iam")
    inline = iam.get_role_policy(RoleName=f"db-sync-lambda-role-{SUFFIX}", PolicyName=INLINE_POLICY)["PolicyDocument"]
    inline = json.loads(inline) if isinstance(inline, str) else inline
    inline["Statement"] = [st for st in inline["Statement"] if st["Sid"] != "WriteRunRecords"]
    user = f"function-less-{SUFFIX}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(inline))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    session = new_session(REGION, credentials=(key["AccessKeyId"], key["SecretAccessKey"]))
    environ = dict(applied.client("lambda").get_function_configuration(
        FunctionName=f"db-sync-schema-replication-{SUFFIX}")["Environment"]["Variables"])
    for env in ("dev", "staging", "prod"):
        environ[contract.endpoint_variable(env)] = "127.0.0.1"
        environ[contract.port_variable(env)] = str(server.port)
    with iam_enforced():
        r = run_schema_event({"source_env": "dev", "target_env": "staging"}, environ, session.client)
    assert "AccessDenied" in r.get("record_error", ""), r
