"""The steps of the estate; importing this package registers them with the engine."""

from dbrepl.steps import (  # noqa: F401
    alarms,
    aurora,
    bucket,
    dashboard,
    kms,
    lambdas,
    network,
    peering,
    schedules,
    secrets,
)

ORDER = ("network", "kms", "secrets", "aurora", "peering", "bucket", "lambdas", "alarms", "schedules", "dashboard")
