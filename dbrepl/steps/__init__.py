"""The eight steps of the estate; importing this package registers them with the engine."""

from dbrepl.steps import alarms, aurora, bucket, kms, lambdas, network, peering, secrets  # noqa: F401

ORDER = ("network", "kms", "secrets", "aurora", "peering", "bucket", "lambdas", "alarms")
