"""The files dbrepl writes for its user: the default spec (`dbrepl init`) and the Lambda
bundle (`dbrepl bundle`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bundle:
    path: Path
    code_sha256: str
    size: int
    ca_bundle: Path | None  # the spec's CA bundle inside the zip, None when there is none


def write_default_spec(path: Path | None, *, force: bool = False) -> Path:
    """Write the default spec (with its comments) to `path` (default config/environments.yaml)."""
    from dbrepl.init import write_default_spec as write

    return write(path, force=force)


def write_bundle(output: Path, config: Path | None) -> Bundle:
    """Write the deterministic Lambda bundle, with the spec's CA bundle as apply deploys it."""
    from dbrepl.bundle import write_bundle as write
    from dbrepl.spec import load_spec, spec_path

    # Without any spec (none given, none at the default path), no CA bundle.
    found = config is not None or spec_path(None).is_file()
    ca = load_spec(config).databases.tls.verified_bundle if found else None
    path, sha, size = write(output, ca)
    return Bundle(path, sha, size, ca)
