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
