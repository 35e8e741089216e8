"""Physical names: the seed template's, so a person who knows the template recognises the estate."""

from __future__ import annotations

from dbrepl.sync import contract


def vpc(env: str, s: str) -> str:
    return f"{env}-vpc-{s}"


def subnet(env: str, i: int, s: str) -> str:
    return f"{env}-private-subnet-{i}-{s}"


def route_table(env: str, s: str) -> str:
    return f"{env}-route-table-{s}"


def db_sg(env: str, s: str) -> str:
    return f"{env}-aurora-sg-{s}"


def function_sg(s: str) -> str:
    return f"lambda-db-sync-sg-{s}"


def endpoint_sg(hub: str, s: str) -> str:
    return f"{hub}-vpc-endpoints-sg-{s}"


def endpoint(hub: str, service: str, s: str) -> str:
    return f"{hub}-{service}-endpoint-{s}"


def kms_alias(env: str, s: str) -> str:
    return f"alias/{env}-key-{s}"


def secret(env: str, s: str) -> str:
    return f"{env}-aurora-secret-{s}"


def subnet_group(env: str, s: str) -> str:
    return f"{env}-aurora-subnet-group-{s}"


def cluster_parameter_group(env: str, s: str) -> str:
    return f"{env}-aurora-cluster-params-{s}"


def cluster(env: str, s: str) -> str:
    return f"{env}-aurora-cluster-{s}"


def instance(env: str, i: int, s: str) -> str:
    return f"{env}-aurora-instance-{i}-{s}"


def connection_parameter(env: str, s: str) -> str:
    return contract.connection_parameter(env, s)


def peering(a: str, b: str, s: str) -> str:
    return f"{a}-to-{b}-peering-{s}"


def bucket(s: str, account: str) -> str:
    return f"migration-scripts-{s}-{account}"


def role(s: str) -> str:
    return f"db-sync-lambda-role-{s}"


FUNCTIONS = {"schema": "schema-replication", "data": "data-replication"}


def function(kind: str, s: str) -> str:
    return f"db-sync-{FUNCTIONS[kind]}-{s}"


def log_group(kind: str, s: str) -> str:
    return f"/aws/lambda/{function(kind, s)}"


def alarm(env: str, s: str) -> str:
    return f"{env}-aurora-replication-lag-{s}"


# Issue 12: schedules, the alarm topic, the alarms that watch syncs and functions, the dashboard.
def schedule_group(s: str) -> str:
    return f"dbrepl-{s}"


def schedule(kind: str, source: str, target: str, s: str) -> str:
    return f"{kind}-{source}-to-{target}-{s}"


def scheduler_role(s: str) -> str:
    return f"db-sync-scheduler-role-{s}"


def alarm_topic(s: str) -> str:
    return f"dbrepl-alarms-{s}"


def sync_failure_alarm(kind: str, source: str, target: str, s: str) -> str:
    return f"{kind}-sync-{source}-to-{target}-failure-{s}"


def sync_stale_alarm(kind: str, source: str, target: str, s: str) -> str:
    return f"{kind}-sync-{source}-to-{target}-stale-{s}"


def function_alarm(kind: str, metric: str, s: str) -> str:
    """metric: Errors or Throttles (AWS/Lambda)."""
    return f"db-sync-{FUNCTIONS[kind]}-{metric.lower()}-{s}"


def dashboard(s: str) -> str:
    return f"dbrepl-{s}"


# Issue 18: where Scheduler puts the runs it could not deliver, and the alarm that watches it.
def schedule_dead_letters(s: str) -> str:
    return f"dbrepl-schedules-dlq-{s}"


def schedule_dead_letters_alarm(s: str) -> str:
    return f"schedules-dead-letters-{s}"
