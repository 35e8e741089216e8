"""The environment spec (config/environments.yaml): load, validate, and answer questions.

Everything here runs before any AWS call: a bad spec exits 2 having touched nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dbrepl.errors import BadInput, SpecError

# The spec's lookup (spec_path): --config, then DBREPL_CONFIG, then DEFAULT_CONFIG under the
# working directory. PACKAGED_SPEC (package data) is the default spec `dbrepl init` writes.
DEFAULT_CONFIG = Path("config/environments.yaml")
CONFIG_VARIABLE = "DBREPL_CONFIG"
PACKAGED_SPEC = "environments.yaml"

# The suffix ends every RDS identifier (letters, digits and single hyphens, no trailing hyphen):
# lowercase letters and digits in runs joined by single hyphens, 1-20 characters.
SUFFIX_RE = re.compile(r"^(?=.{1,20}$)[a-z0-9]+(-[a-z0-9]+)*$")
ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# Aurora MySQL 2 (5.7, RDS Extended Support) and 3 (8.0) version strings.
ENGINE_VERSION_RE = re.compile(r"^(5\.7\.mysql_aurora\.2|8\.0\.mysql_aurora\.3)\.\d{2}\.\d+$")
INSTANCE_CLASS_RE = re.compile(r"^db\.(serverless|[a-z][a-z0-9]*\.[a-z0-9]+)$")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)
WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
MAINT_RE = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d-(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d$"
)
LOG_EXPORTS = ("audit", "error", "general", "slowquery", "iam-db-auth-error", "instance")
AZ_ID_RE = re.compile(r"^[a-z]{2,}\d-az\d+$")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
PYTHON_RUNTIME_RE = re.compile(r"^python3\.(\d+)$")
USERNAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]{0,15}$")
# A cluster snapshot: its identifier (this account and region) or its ARN (a shared one, too).
SNAPSHOT_ID_RE = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)$")
SNAPSHOT_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:rds:[a-z]{2}(-[a-z]+)+-\d:\d{12}:cluster-snapshot:(rds:)?"
                             r"[A-Za-z][A-Za-z0-9-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subnet(_Model):
    """A subnet in one AZ: `az_id` (use1-az1, the same physical zone in every account) or
    `az_index` (the n-th of the region's AZ names in this account, as the seed chose them)."""

    cidr: str
    az_index: Annotated[int, Field(ge=0, le=5)] | None = None
    az_id: str | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return _check_cidr(v)

    @field_validator("az_id")
    @classmethod
    def _az_id(cls, v: str | None) -> str | None:
        if v is not None and not AZ_ID_RE.match(v):
            raise ValueError("must be an AZ ID like use1-az1 (aws ec2 describe-availability-zones shows ZoneId)")
        return v

    @model_validator(mode="after")
    def _one_zone(self) -> Subnet:
        if (self.az_index is None) == (self.az_id is None):
            raise ValueError(f"subnet {self.cidr}: give exactly one of az_id (e.g. use1-az1) or az_index")
        return self

    @property
    def zone(self) -> str:
        return self.az_id if self.az_id is not None else f"#{self.az_index}"


class Account(_Model):
    """Where an environment lives when it is not the caller's own account (issue 6)."""

    role_arn: str
    external_id: str | None = None
    session_name: str = "dbrepl"

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        # Any partition: aws, aws-cn, aws-us-gov, ...
        if not re.match(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]+$", v):
            raise ValueError("must be an IAM role ARN like arn:<partition>:iam::123456789012:role/name "
                             "(partition aws, aws-cn or aws-us-gov)")
        return v


class Environment(_Model):
    cidr: str
    subnets: Annotated[list[Subnet], Field(min_length=2)]
    protected: bool = False
    region: str | None = None
    account: Account | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return _check_cidr(v)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", v):
            raise ValueError("must be an AWS region name like us-east-1")
        return v

    @model_validator(mode="after")
    def _subnets_inside(self) -> Environment:
        vpc = ipaddress.IPv4Network(self.cidr)  # _check_cidr accepted IPv4 only
        nets = [ipaddress.IPv4Network(s.cidr) for s in self.subnets]
        for s, net in zip(self.subnets, nets, strict=True):
            if not net.subnet_of(vpc):
                raise ValueError(f"subnet {s.cidr} is outside the VPC {self.cidr}; pick a CIDR inside it")
        for i, a in enumerate(nets):
            for b in nets[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"subnets {a} and {b} overlap; give each its own range")
        if len({s.zone for s in self.subnets}) < 2:
            raise ValueError("subnets must span at least two availability zones (az_id or az_index); Aurora needs two")
        return self


def aurora_version_key(version: str) -> tuple[int, ...] | None:
    """An Aurora MySQL version as numbers, for ordering: 8.0.mysql_aurora.3.10.0 -> (8, 0, 3, 10, 0),
    so 3.10.0 is newer than 3.08.1 (compared as text it would not be). None: not such a version."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.mysql_aurora\.(\d+)\.(\d+)\.(\d+)", version or "")
    return tuple(int(x) for x in m.groups()) if m else None


def aurora_major(version: str) -> str:
    """The MySQL major a version is compatible with: 8.0 (Aurora MySQL 3), 5.7 (Aurora MySQL 2)."""
    return version.split(".mysql_aurora")[0]


# What Aurora MySQL offers Serverless v2 from (RDS User Guide, "Aurora Serverless v2 capacity"):
# db.serverless from 3.02.0, a maximum above 128 ACUs from 3.06.0, a minimum of 0 ACUs
# (automatic pause) from 3.08.0.
SERVERLESS_V2_FROM = (8, 0, 3, 2, 0)
SERVERLESS_V2_256_FROM = (8, 0, 3, 6, 0)
SERVERLESS_V2_PAUSE_FROM = (8, 0, 3, 8, 0)


class ServerlessV2(_Model):
    """The clusters' Serverless v2 capacity range (ServerlessV2ScalingConfiguration), in ACUs."""

    min_acu: float
    max_acu: float

    @field_validator("min_acu", "max_acu")
    @classmethod
    def _half_steps(cls, v: float, info: ValidationInfo) -> float:
        low = 0 if info.field_name == "min_acu" else 1
        if not low <= v <= 256:
            raise ValueError(f"{v:g} ACUs is outside what RDS accepts ({low} to 256); pick a value in that range")
        if (v * 2) % 1:
            raise ValueError(f"{v:g} ACUs is not a half step; RDS takes 0.5, 1, 1.5, ... (e.g. {round(v * 2) / 2:g})")
        return v

    @model_validator(mode="after")
    def _range(self) -> ServerlessV2:
        if self.min_acu > self.max_acu:
            raise ValueError(f"min_acu {self.min_acu:g} is above max_acu {self.max_acu:g}; "
                             "make min_acu at most max_acu")
        return self

    @property
    def scaling(self) -> dict[str, float]:
        """As CreateDBCluster/ModifyDBCluster take it."""
        return {"MinCapacity": self.min_acu, "MaxCapacity": self.max_acu}


class Aurora(_Model):
    engine: Literal["aurora-mysql"] = "aurora-mysql"
    engine_version: str = "8.0.mysql_aurora.3.10.0"
    auto_minor_version_upgrade: bool = False
    instance_class: str = "db.r5.large"
    instances: Annotated[int, Field(ge=1, le=15)] = 1
    master_username: str = "admin"
    port: Annotated[int, Field(ge=1150, le=65535)] = 3306
    backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7
    backup_window: str = "03:00-04:00"
    maintenance_window: str = "mon:04:00-mon:05:00"
    log_exports: list[str] = ["error", "general", "slowquery"]
    deletion_protection: bool = False
    publicly_accessible: Literal[False] = False
    # Serverless v2 capacity range; required with instance_class db.serverless.
    serverless_v2: ServerlessV2 | None = None
    # Reboot cluster members whose parameter group is pending-reboot, in environments not
    # protected (protected ones always need `apply --reboot`).
    reboot_for_parameters: bool = True
    # environment -> cluster snapshot (identifier or ARN) apply creates that environment's cluster
    # from; ignored, with a note in the plan, while the cluster exists (docs/configuration.md).
    restore_from_snapshot: dict[str, str] = {}

    @field_validator("restore_from_snapshot")
    @classmethod
    def _snapshots(cls, v: dict[str, str]) -> dict[str, str]:
        for env, snap in v.items():
            if not (SNAPSHOT_ID_RE.match(snap) or SNAPSHOT_ARN_RE.match(snap)):
                raise ValueError(f"{env}: {snap!r} is not a cluster snapshot identifier (a letter, then letters, "
                                 "digits and single hyphens) or ARN (arn:<partition>:rds:<region>:<account>:"
                                 "cluster-snapshot:<id>); name the snapshot `destroy` printed")
        return v

    @field_validator("engine_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not ENGINE_VERSION_RE.match(v):
            raise ValueError(
                "must look like 8.0.mysql_aurora.3.10.0 (Aurora MySQL 3) or 5.7.mysql_aurora.2.11.2 "
                "(Aurora MySQL 2, RDS Extended Support)"
            )
        return v

    @field_validator("instance_class")
    @classmethod
    def _class(cls, v: str) -> str:
        if not INSTANCE_CLASS_RE.match(v):
            raise ValueError("must look like db.r5.large or db.serverless")
        return v

    @field_validator("master_username")
    @classmethod
    def _user(cls, v: str) -> str:
        if not USERNAME_RE.match(v):
            raise ValueError("must start with a letter, letters and digits only, at most 16 characters")
        return v

    @field_validator("backup_window")
    @classmethod
    def _bw(cls, v: str) -> str:
        if not WINDOW_RE.match(v):
            raise ValueError("must be hh:mm-hh:mm in UTC, e.g. 03:00-04:00")
        return v

    @field_validator("maintenance_window")
    @classmethod
    def _mw(cls, v: str) -> str:
        if not MAINT_RE.match(v):
            raise ValueError("must be ddd:hh:mm-ddd:hh:mm in UTC, e.g. mon:04:00-mon:05:00")
        return v

    @model_validator(mode="after")
    def _windows(self) -> Aurora:
        """What RDS refuses at CreateDBCluster, refused here before anything is made: windows
        shorter than 30 minutes, and a backup window overlapping the maintenance window."""
        backup = _minutes_of_week_daily(self.backup_window)
        maint = _minutes_of_week(self.maintenance_window)
        if len(backup) // 7 < 30:
            raise ValueError(f"backup_window {self.backup_window} is shorter than 30 minutes, which RDS refuses")
        if len(maint) < 30:
            raise ValueError(f"maintenance_window {self.maintenance_window} is shorter than 30 minutes, "
                             "which RDS refuses")
        both = backup & maint
        if both:
            first = min(both)
            at = f"{DAYS[first // 1440]}:{first % 1440 // 60:02d}:{first % 60:02d}"
            raise ValueError(f"backup_window {self.backup_window} overlaps maintenance_window "
                             f"{self.maintenance_window} (at {at} UTC), which RDS refuses; move one of them")
        return self

    @model_validator(mode="after")
    def _serverless(self) -> Aurora:
        """What RDS refuses only once the cluster exists: a db.serverless instance in a cluster
        without a capacity range, and capacities the engine version does not offer."""
        if self.instance_class == "db.serverless" and self.serverless_v2 is None:
            raise ValueError("instance_class db.serverless needs aurora.serverless_v2, the clusters' capacity "
                             "range, which RDS requires first; add e.g. serverless_v2: {min_acu: 0.5, max_acu: 8}")
        sv2, version = self.serverless_v2, aurora_version_key(self.engine_version) or ()
        if sv2 is None:
            return self
        if version < SERVERLESS_V2_FROM:
            raise ValueError(f"serverless_v2: engine_version {self.engine_version} has no Serverless v2 "
                             "(Aurora MySQL 3.02.0 and later have it); raise engine_version or remove serverless_v2")
        if sv2.min_acu == 0 and version < SERVERLESS_V2_PAUSE_FROM:
            raise ValueError(f"serverless_v2.min_acu 0 (automatic pause) needs Aurora MySQL 3.08.0 or later, not "
                             f"{self.engine_version}; use min_acu 0.5 or raise engine_version")
        if sv2.max_acu > 128 and version < SERVERLESS_V2_256_FROM:
            raise ValueError(f"serverless_v2.max_acu above 128 needs Aurora MySQL 3.06.0 or later, not "
                             f"{self.engine_version}; use max_acu 128 or raise engine_version")
        return self

    @field_validator("log_exports")
    @classmethod
    def _logs(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in LOG_EXPORTS]
        if bad:
            raise ValueError(f"unknown log type {bad[0]!r}; choose from {', '.join(LOG_EXPORTS)}")
        return sorted(set(v))


def _span(start: int, end: int, period: int) -> set[int]:
    """The minutes from start up to end (exclusive), wrapping at period; end == start: all of it."""
    length = (end - start) % period or period
    return {(start + i) % period for i in range(length)}


def _hhmm(t: str) -> int:
    h, m = t.split(":")
    return int(h) * 60 + int(m)


def _minutes_of_week_daily(window: str) -> set[int]:
    """A daily hh:mm-hh:mm window as the minutes of the week it covers."""
    start, end = (_hhmm(t) for t in window.split("-"))
    day = _span(start, end, 1440)
    return {d * 1440 + m for d in range(7) for m in day}


def _minutes_of_week(window: str) -> set[int]:
    """A weekly ddd:hh:mm-ddd:hh:mm window as the minutes of the week it covers."""
    a, b = window.lower().split("-")
    at = [DAYS.index(x[:3]) * 1440 + _hhmm(x[4:]) for x in (a, b)]
    return _span(at[0], at[1], 7 * 1440)


class Secrets(_Model):
    password_length: Annotated[int, Field(ge=16, le=41)] = 32
    exclude_characters: str = "\"@/\\"

    @field_validator("exclude_characters")
    @classmethod
    def _exclude(cls, v: str) -> str:
        # RDS refuses these in master passwords whatever the spec says.
        missing = [c for c in "\"@/" if c not in v]
        if missing:
            raise ValueError(f"must exclude {''.join(missing)!r}: RDS refuses them in master passwords")
        return v


class Bucket(_Model):
    expire_days: Annotated[int, Field(ge=1)] = 30
    noncurrent_expire_days: Annotated[int, Field(ge=1)] = 30
    kms_env: str = "dev"


class Lambdas(_Model):
    runtime: str = "python3.12"
    timeout: Annotated[int, Field(ge=1, le=900)] = 300
    memory: Annotated[int, Field(ge=128, le=10240)] = 512
    log_retention_days: int = 7

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v: str) -> str:
        m = PYTHON_RUNTIME_RE.match(v)
        if not m or int(m.group(1)) < 12:
            raise ValueError("must be python3.12 or newer (python3.9 is deprecated)")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{v} is not a CloudWatch Logs retention; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return v


EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


# PutMetricAlarm: Period is 10, 20, 30 or a multiple of 60; Period x EvaluationPeriods at most
# one day for periods below an hour, at most 7 days otherwise (CloudWatch API reference).
ALARM_SHORT_PERIODS = (10, 20, 30)


def alarm_range_limit(period: int) -> int:
    """The longest Period x EvaluationPeriods PutMetricAlarm accepts for `period`, in seconds."""
    return 86400 if period < 3600 else 7 * 86400


class Alarms(_Model):
    metric: str = "AuroraReplicaLag"
    statistic: Literal["Average", "Maximum", "Minimum", "Sum", "SampleCount"] = "Average"
    period: Annotated[int, Field(ge=10)] = 60
    evaluation_periods: Annotated[int, Field(ge=1)] = 2
    threshold: float = 60000
    treat_missing_data: Literal["breaching", "notBreaching", "ignore", "missing"] = "notBreaching"
    # E-mail addresses subscribed to the estate's alarm topic (each confirms by a link AWS mails).
    notify: list[str] = []

    @field_validator("period")
    @classmethod
    def _alarm_period(cls, v: int) -> int:
        if v not in ALARM_SHORT_PERIODS and v % 60:
            raise ValueError(f"{v} is not a CloudWatch alarm period; use 10, 20, 30 or a multiple of 60 (e.g. 60)")
        return v

    @model_validator(mode="after")
    def _alarm_range(self) -> Alarms:
        limit = alarm_range_limit(self.period)
        if self.period * self.evaluation_periods > limit:
            raise ValueError(f"period {self.period} x evaluation_periods {self.evaluation_periods} is "
                             f"{self.period * self.evaluation_periods} s; CloudWatch evaluates at most {limit} s "
                             f"({'1 day below a period of 1 hour' if limit == 86400 else '7 days'}): lower "
                             f"evaluation_periods to {limit // self.period} or less")
        return self

    @field_validator("notify")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for a in v:
            if len(a) > 254 or not EMAIL_RE.match(a):
                raise ValueError(f"{a!r} is not an e-mail address; write it as name@example.com")
        if len(set(v)) != len(v):
            raise ValueError("an address is listed twice; list each once")
        return v


ROUTE_RE = re.compile(r"^([a-z][a-z0-9]{0,15})->([a-z][a-z0-9]{0,15})$")
EVERY_RE = re.compile(r"^(\d{1,4}) (minute|minutes|hour|hours|day|days)$")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# EventBridge Scheduler's cron: minutes hours day-of-month month day-of-week year.
CRON_RE = re.compile(r"^\S+( \S+){5}$")
# CloudWatch alarms: Period x EvaluationPeriods at most 1 day below an hour's period, 7 days above.
STALE_PERIODS = 2


def period_seconds(text: str) -> int:
    """'1 hour' -> 3600; ValueError naming the accepted form otherwise."""
    m = EVERY_RE.match(text.strip())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"{text!r} is not a period; write N minutes, N hours or N days (e.g. \"1 hour\")")
    n, unit = int(m.group(1)), m.group(2).rstrip("s")
    seconds = n * UNIT_SECONDS[unit]
    limit = alarm_range_limit(seconds)
    if seconds * STALE_PERIODS > limit:
        raise ValueError(f"{text!r} is too long for the staleness alarm (2 periods; CloudWatch watches at most "
                         "7 days); schedule at most every 84 hours")
    return seconds


class Schedule(_Model):
    """A sync run on a timer: `every` (a rate) or `cron` (with `period`, the longest gap between
    two runs, which the staleness alarm watches)."""

    route: str
    kind: Literal["data", "schema"] = "data"
    every: str | None = None
    cron: str | None = None
    period: str | None = None
    allow_protected: bool = False

    @field_validator("route")
    @classmethod
    def _route(cls, v: str) -> str:
        m = ROUTE_RE.match(v.replace(" ", ""))
        if not m:
            raise ValueError(f"route {v!r} must be written source->target, e.g. dev->staging")
        if m.group(1) == m.group(2):
            raise ValueError(f"route {v!r} syncs an environment into itself; name two different ones")
        return f"{m.group(1)}->{m.group(2)}"

    @field_validator("every", "period")
    @classmethod
    def _period(cls, v: str | None) -> str | None:
        if v is not None:
            period_seconds(v)
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and not CRON_RE.match(v.strip()):
            raise ValueError(f"cron {v!r} needs six fields (minutes hours day-of-month month day-of-week year), "
                             "e.g. \"0 3 * * ? *\"")
        return v if v is None else v.strip()

    @model_validator(mode="after")
    def _when(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"schedule {self.route}: give exactly one of every (e.g. \"1 hour\") or cron")
        if self.cron is not None and self.period is None:
            raise ValueError(f"schedule {self.route}: a cron entry needs period, the longest gap between two runs "
                             "(e.g. \"1 day\"), for its staleness alarm")
        if self.every is not None and self.period is not None:
            raise ValueError(f"schedule {self.route}: period is for cron entries; every already gives it")
        return self

    @property
    def source(self) -> str:
        return self.route.split("->")[0]

    @property
    def target(self) -> str:
        return self.route.split("->")[1]

    @property
    def seconds(self) -> int:
        """The schedule's period: what the failure and staleness alarms count over."""
        return period_seconds(self.every or self.period or "")

    @property
    def expression(self) -> str:
        """EventBridge Scheduler's ScheduleExpression."""
        if self.cron is not None:
            return f"cron({self.cron})"
        m = EVERY_RE.match((self.every or "").strip())
        assert m is not None
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        return f"rate({n} {unit}{'' if n == 1 else 's'})"  # EventBridge: singular for 1, plural above


class Sync(_Model):
    hub: str = "staging"
    databases: list[str] = ["app"]
    reference_tables: list[str] = []
    # Absent: no schedules. The default spec (environments.yaml, what `dbrepl init` writes) has one:
    # reference data dev->staging every hour. A model default could name environments a spec lacks.
    schedules: list[Schedule] = []

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, v: list[Schedule]) -> list[Schedule]:
        seen = set()
        for sc in v:
            if (sc.kind, sc.route) in seen:
                raise ValueError(f"{sc.kind} {sc.route} is scheduled twice; keep one entry")
            seen.add((sc.kind, sc.route))
        return v

    @field_validator("databases")
    @classmethod
    def _dbs(cls, v: list[str]) -> list[str]:
        for d in v:
            if not re.match(r"^[A-Za-z0-9_$]{1,64}$", d):
                raise ValueError(f"database name {d!r} may hold only letters, digits, '_' and '$'")
            if d.lower() in ("mysql", "sys", "information_schema", "performance_schema"):
                raise ValueError(f"{d!r} is a system schema; name application databases")
        return v

    @field_validator("reference_tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        for t in v:
            if not re.match(r"^[A-Za-z0-9_$]{1,64}\.[A-Za-z0-9_$]{1,64}$", t):
                raise ValueError(f"reference table {t!r} must be written database.table")
        return v


RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


class DatabaseTls(_Model):
    """TLS to the clusters (docs/configuration.md, "TLS to the databases"). TLS is always on;
    `ca_bundle` (a path relative to the spec, resolved when the spec is loaded) turns on
    verification of the server's certificate and host name, unless `verify: false`."""

    ca_bundle: Path | None = None
    verify: bool = True

    @field_validator("ca_bundle")
    @classmethod
    def _bundle(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        base = (info.context or {}).get("spec_dir") if isinstance(info.context, dict) else None
        path = (Path(base) / v if base and not v.is_absolute() else v).resolve()
        if not path.is_file():
            raise ValueError(f"CA bundle {path} not found; download the RDS bundle ({RDS_CA_BUNDLE_URL}) "
                             "next to the spec, or remove the key")
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as e:
            raise ValueError(f"CA bundle {path} cannot be read ({e.__class__.__name__})") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"CA bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
                             f"use the RDS bundle ({RDS_CA_BUNDLE_URL})")
        return path

    @property
    def verified_bundle(self) -> Path | None:
        """The bundle connections verify against; None: encrypted but unverified."""
        return self.ca_bundle if self.verify else None


class Databases(_Model):
    """How dbrepl connects to the clusters."""

    tls: DatabaseTls = DatabaseTls()


class Timing(_Model):
    """How long to wait and how often to look; near zero against a local emulator."""

    poll_delay: Annotated[float, Field(ge=0)] = 30.0
    retry_delay: Annotated[float, Field(ge=0)] = 5.0
    aurora_timeout_minutes: Annotated[float, Field(gt=0)] = 120
    eni_release_timeout_minutes: Annotated[float, Field(gt=0)] = 45
    iam_propagation_timeout_seconds: Annotated[float, Field(gt=0)] = 120
    # EC2 ids not yet visible right after their create, DeleteVpcEndpoints/DeleteObjects items that
    # failed, a secret name still being freed after a forced delete: conditions that clear in seconds.
    consistency_timeout_seconds: Annotated[float, Field(gt=0)] = 300
    # A function leaving Pending / LastUpdateStatus InProgress, or refusing an update while one runs.
    function_timeout_minutes: Annotated[float, Field(gt=0)] = 15
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 10
    workers: Annotated[int, Field(ge=1, le=64)] = 16


class SchemaSettings(_Model):
    """How schema syncs treat locking ALTERs (docs/schema-sync.md, "Schema changes that never
    surprise-lock production"): one needing COPY or LOCK=SHARED/EXCLUSIVE on a table above
    `blocking_limit` (protected targets: any size) is refused, or handed to `online_tool` with
    --direct; a DDL waits at most `lock_wait_timeout` seconds for a metadata lock."""

    blocking_limit: str = "256 MB"
    lock_wait_timeout: Annotated[int, Field(ge=1, le=31536000)] = 30
    online_tool: Literal["pt-online-schema-change"] | None = None
    chunk_time: Annotated[float, Field(gt=0, le=60)] = 0.5  # --chunk-time: seconds per copied chunk
    max_load: str = "Threads_running=25"  # --max-load: pause the copy above it
    critical_load: str = "Threads_running=50"  # --critical-load: stop the change above it

    @field_validator("blocking_limit")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.fullmatch(r"\s*\d+(\.\d+)?\s*([KMGT]i?B?|B)?\s*", str(v), re.IGNORECASE):
            raise ValueError(f"blocking_limit {v!r} is not a size; write e.g. 256 MB, 1 GB or 0")
        return str(v)

    @field_validator("max_load", "critical_load")
    @classmethod
    def _load(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_]+=\d+(,[A-Za-z_]+=\d+)*", v):
            raise ValueError(f"{v!r} must be status variables with thresholds, e.g. Threads_running=25")
        return v


class Spec(_Model):
    version: Literal[1] = 1
    region: str | None = None
    environments: dict[str, Environment]
    peering: list[tuple[str, str]]
    aurora: Aurora = Aurora()
    secrets: Secrets = Secrets()
    bucket: Bucket = Bucket()
    lambdas: Lambdas = Lambdas()
    alarms: Alarms = Alarms()
    sync: Sync = Sync()
    databases: Databases = Databases()
    timing: Timing = Timing()
    schema_settings: SchemaSettings = Field(SchemaSettings(), alias="schema")  # "schema" is BaseModel's

    @field_validator("environments")
    @classmethod
    def _envs(cls, v: dict[str, Environment]) -> dict[str, Environment]:
        if not v:
            raise ValueError("name at least one environment")
        for name in v:
            if not ENV_NAME_RE.match(name) or name == "shared":
                raise ValueError(
                    f"environment name {name!r} must be lowercase letters and digits, start with a "
                    "letter, at most 16 characters, and not 'shared'"
                )
        items = list(v.items())
        for i, (a, ea) in enumerate(items):
            for b, eb in items[i + 1:]:
                if ipaddress.ip_network(ea.cidr).overlaps(ipaddress.ip_network(eb.cidr)):
                    raise ValueError(
                        f"VPC CIDRs of {a} ({ea.cidr}) and {b} ({eb.cidr}) overlap; peered VPCs need "
                        "distinct ranges"
                    )
        return v

    @model_validator(mode="after")
    def _topology(self) -> Spec:
        envs = set(self.environments)
        seen: set[frozenset[str]] = set()
        for a, b in self.peering:
            for e in (a, b):
                if e not in envs:
                    raise ValueError(
                        f"peering names unknown environment {e!r}; known: {', '.join(sorted(envs))}"
                    )
            if a == b:
                raise ValueError(f"peering {a}<->{b} joins an environment to itself")
            pair = frozenset((a, b))
            if pair in seen:
                raise ValueError(f"peering {a}<->{b} is listed twice")
            seen.add(pair)
        if self.sync.hub not in envs:
            raise ValueError(f"sync.hub {self.sync.hub!r} is not an environment; known: {', '.join(sorted(envs))}")
        for e in sorted(envs - {self.sync.hub}):
            if frozenset((e, self.sync.hub)) not in seen:
                raise ValueError(
                    f"sync.hub {self.sync.hub!r} is not peered with {e!r}; add [{self.sync.hub}, {e}] "
                    "to peering (peering is not transitive)"
                )
        for e in self.aurora.restore_from_snapshot:
            if e not in envs:
                raise ValueError(f"aurora.restore_from_snapshot names unknown environment {e!r}; known: "
                                 f"{', '.join(sorted(envs))}")
        if self.bucket.kms_env not in envs:
            raise ValueError(f"bucket.kms_env {self.bucket.kms_env!r} is not an environment")
        for i, sc in enumerate(self.sync.schedules):
            for e in (sc.source, sc.target):
                if e not in envs:
                    raise ValueError(f"sync.schedules[{i}]: route {sc.route} names unknown environment {e!r}; "
                                     f"known: {', '.join(sorted(envs))}")
            if sc.kind == "data" and not self.sync.reference_tables:
                raise ValueError(f"sync.schedules[{i}]: a data schedule syncs sync.reference_tables, which is "
                                 "empty; list the tables (database.table) or remove the entry")
            if self.environments[sc.target].protected and not sc.allow_protected:
                raise ValueError(f"sync.schedules[{i}]: {sc.target} is protected; set allow_protected: true on "
                                 f"the entry to schedule {sc.kind} syncs into it")
        if self.region is not None and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", self.region):
            raise ValueError("region must be an AWS region name like us-east-1")
        return self

    # Questions the steps ask -------------------------------------------------------------

    @property
    def env_names(self) -> list[str]:
        return list(self.environments)

    def peers_of(self, env: str) -> list[str]:
        return [b if a == env else a for a, b in self.peering if env in (a, b)]

    def peering_name(self, a: str, b: str, suffix: str) -> str:
        return f"{a}-to-{b}-peering-{suffix}"


def check_suffix(suffix: str | None) -> str:
    if not suffix:
        raise BadInput("no suffix given: pass --suffix S or set DBREPL_SUFFIX")
    if not SUFFIX_RE.match(suffix):
        raise BadInput(
            f"invalid suffix {suffix!r}: use 1-20 characters of lowercase letters, digits and single '-' "
            "between them (RDS identifiers end with it: no leading or trailing '-', no '--')"
        )
    return suffix


def _check_cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as e:
        raise ValueError(f"{v!r} is not a valid CIDR block ({e})") from None
    if net.version != 4:
        raise ValueError(f"{v!r} must be an IPv4 CIDR block")
    if not 16 <= net.prefixlen <= 28:
        raise ValueError(f"{v!r}: AWS allows prefix lengths /16 to /28")
    return v


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-after", "function-"))]
    return ".".join(parts) if parts else "(top level)"


def _one_line(path: Path, err: ValidationError) -> str:
    errors = err.errors(include_url=False)
    first = errors[0]
    msg = first["msg"].removeprefix("Value error, ")
    kind = first["type"]
    loc = _loc(first["loc"])
    if kind == "extra_forbidden":
        msg = "unknown key; remove it or fix its spelling (see docs/configuration.md)"
    elif kind == "missing":
        msg = "required key is missing; add it (see docs/configuration.md)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {loc}: {msg}{more}"


def spec_path(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the spec is read from: `path` (--config), else DBREPL_CONFIG, else
    ./config/environments.yaml. No fallback to the packaged default: `dbrepl init` writes it."""
    environ = os.environ if environ is None else environ
    return Path(path) if path else Path(environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG)


def missing_spec_message(path: Path, given: bool) -> str:
    """What to do when there is no spec at `path` (`given`: named by --config or DBREPL_CONFIG)."""
    if given:
        return (f"{path}: file not found; pass --config PATH, or run `dbrepl init {path}` "
                "to write the default spec there")
    above = next((d / path for d in Path.cwd().parents if (d / path).is_file()), None) if not path.is_absolute() \
        else None
    if above is not None:  # in a subdirectory of the estate's folder: the spec is not looked for upward
        rel = os.path.relpath(above)
        return (f"no spec found at {path} (specs are not looked for in the folders above; {rel} is there): "
                f"pass --config {rel}, or run from {os.path.relpath(above.parents[len(path.parts) - 1])}")
    return f"no spec found at {path}: run `dbrepl init` to write the default one, or pass --config"


def load_yaml(text: str, path: Path | str) -> Any:
    """Parse YAML as safe_load does, but refuse a key given twice in one mapping (YAML itself keeps
    the last copy without a word, so an edit of the first would be ignored). SpecError names both
    lines and the key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _refuse_duplicate_keys(node, path, ())
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise SpecError(f"{path}: malformed YAML at {where}: {problem}; fix the syntax") from None


def _refuse_duplicate_keys(node: yaml.Node, path: Path | str, where: tuple[str, ...],
                           seen_nodes: set[int] | None = None) -> None:
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # an alias (*name) of a node already walked
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"(complex key at line {line})"
            if (key.tag, name) in lines:
                dotted = ".".join((*where, name))
                raise SpecError(f"{path}: key {dotted} is given twice (lines {lines[(key.tag, name)]} and {line}); "
                                "YAML would silently keep only the last: merge them into one and delete the other")
            lines[(key.tag, name)] = line
            _refuse_duplicate_keys(value, path, (*where, name), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            at = (*where[:-1], f"{where[-1]}[{i}]") if where else (f"[{i}]",)
            _refuse_duplicate_keys(item, path, at, seen_nodes)


def load_spec(path: Path | str | None = None) -> Spec:
    """Read and validate the spec; every problem is a SpecError naming file, key and fix."""
    given = bool(path) or bool(os.environ.get(CONFIG_VARIABLE))
    path = spec_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(missing_spec_message(path, given)) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the spec ({e.__class__.__name__})") from None
    data = load_yaml(text, path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping with 'environments' and 'peering'")
    try:
        # The context resolves paths in the spec (databases.tls.ca_bundle) against the folder
        # that holds the spec as named (a symbolic link is not followed: config/ in a checkout).
        return Spec.model_validate(data, context={"spec_dir": str(path.absolute().parent)})
    except ValidationError as e:
        raise SpecError(_one_line(path, e)) from None
