"""The Lambda bundle: a deterministic zip of the handlers, dbrepl.sync and pymysql, and the
CA bundle the functions verify the clusters against.

Built from the installed packages: the handlers are dbrepl.sync.handlers, behind two
top-level entry modules written here. The spec's `databases.tls.ca_bundle` (when verification
is on) goes in as the top-level `contract.TLS_CA_FILE`, where the handlers look for it: its
content is part of the zip, so a changed bundle changes the hash and apply updates the code.

Same inputs, same bytes (fixed timestamps, permissions and order), so apply compares the
zip's SHA-256 with the function's CodeSha256 and uploads only when the code changed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pymysql

import dbrepl
from dbrepl.sync import contract

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PACKAGE = Path(dbrepl.__file__).resolve().parent
HANDLERS = contract.HANDLERS


def entry_module(kind: str) -> tuple[str, bytes]:
    """The zip's top-level `schema_sync.py` / `data_sync.py`: the handler Lambda imports."""
    module, target = contract.handler_module(kind), contract.handler_package_module(kind)
    text = (f'"""Lambda entry point: {contract.HANDLERS[kind]} (see {target})."""\n\n'
            f"from {target} import lambda_handler  # noqa: F401\n")
    return f"{module}.py", text.encode()


def _files(ca_bundle: Path | None = None) -> list[tuple[str, bytes | Path]]:
    """(name in the zip, content or file): the entry modules, dbrepl.sync and pymysql, all
    taken from the installed packages (no checkout needed), and the CA bundle when given."""
    out: list[tuple[str, bytes | Path]] = [entry_module(kind) for kind in HANDLERS]
    if ca_bundle is not None:
        out.append((contract.TLS_CA_FILE, Path(ca_bundle)))
    out.append(("dbrepl/__init__.py", PACKAGE / "__init__.py"))
    for p in sorted((PACKAGE / "sync").rglob("*.py")):
        out.append((f"dbrepl/{p.relative_to(PACKAGE).as_posix()}", p))
    pm = Path(pymysql.__file__).resolve().parent
    for p in sorted(pm.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".txt", ".typed"):
            out.append((f"pymysql/{p.relative_to(pm).as_posix()}", p))
    return sorted(out, key=lambda item: item[0])


def build_bundle(ca_bundle: Path | None = None) -> bytes:
    """The zip's bytes; `ca_bundle`: the PEM file the functions verify the clusters against."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for arc, data in _files(ca_bundle):
            info = zipfile.ZipInfo(arc, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            z.writestr(info, data if isinstance(data, bytes) else data.read_bytes(), compresslevel=9)
    return buf.getvalue()


def code_sha256(data: bytes) -> str:
    """The form Lambda reports as CodeSha256: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def write_bundle(path: Path, ca_bundle: Path | None = None) -> tuple[Path, str, int]:
    data = build_bundle(ca_bundle)
    path.write_bytes(data)
    return path, code_sha256(data), len(data)
