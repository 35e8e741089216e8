"""Service models are parsed once per process and shared by every session the factory makes."""

from __future__ import annotations

from dbrepl.aws import session as sessions
from dbrepl.aws.session import SessionFactory, forget_models, shared_loader


def test_models_are_parsed_once_and_shared_across_factories_and_sessions(monkeypatch):
    forget_models()
    loader = shared_loader()
    parsed: list[str] = []
    real = loader.file_loader.load_file

    def counting(file_path):
        parsed.append(file_path)
        return real(file_path)

    monkeypatch.setattr(loader.file_loader, "load_file", counting)
    first = SessionFactory("us-east-1").client("rds")
    n = len(parsed)
    assert n > 0 and any("rds" in p for p in parsed)
    # Another factory (another region: another session) and another client: nothing parsed again.
    second = SessionFactory("eu-west-1").client("rds")
    assert len(parsed) == n
    assert first.meta.region_name == "us-east-1" and second.meta.region_name == "eu-west-1"
    # boto3 adds its data path to the loader of every session it wraps: one copy stays.
    paths = list(shared_loader().search_paths)
    assert len(paths) == len(set(paths))
    forget_models()
    assert shared_loader() is not loader
    assert sessions.shared_loader() is shared_loader()


def test_models_parse_to_what_botocore_itself_reads():
    import botocore.loaders

    ours, theirs = shared_loader(), botocore.loaders.create_loader()
    for service in ("ec2", "rds", "resourcegroupstaggingapi"):
        for kind in ("service-2", "endpoint-rule-set-1"):
            assert ours.load_service_model(service, kind) == theirs.load_service_model(service, kind)


def test_collection_is_held_while_a_model_is_parsed_and_restored_after():
    import gc

    forget_models()
    frozen = gc.get_freeze_count()
    seen: list[bool] = []
    loader = shared_loader()
    real = loader.load_service_model

    def watching(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    loader.load_service_model = watching  # the instance's, this test's loader only
    try:
        SessionFactory("us-east-1").client("kms")
        assert seen and not any(seen)  # no collection while parsing
        assert gc.isenabled()  # and back on afterwards
        assert gc.get_freeze_count() > frozen  # the new model was moved out of the collector's way
        gc.disable()  # a caller's own setting is kept
        SessionFactory("us-east-1").client("sts")
        assert not gc.isenabled()
    finally:
        gc.enable()
        forget_models()


def test_aws_data_path_is_searched_first(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    forget_models()
    try:
        assert shared_loader().search_paths[0] == str(tmp_path)
    finally:
        monkeypatch.delenv("AWS_DATA_PATH")
        forget_models()
