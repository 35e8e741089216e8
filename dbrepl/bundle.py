"""The Lambda bundle: a deterministic zip of the handlers, dbrepl.sync and pymysql.

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

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
ROOT = Path(dbrepl.__file__).resolve().parent.parent
HANDLERS_DIR = ROOT / "lambda_bundle"
HANDLERS = {"schema": "schema_sync.lambda_handler", "data": "data_sync.lambda_handler"}


def _files() -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if not HANDLERS_DIR.is_dir():
        raise FileNotFoundError(f"{HANDLERS_DIR} not found: run dbrepl from a checkout of the project")
    for p in sorted(HANDLERS_DIR.glob("*.py")):
        out.append((p.name, p))
    pkg = Path(dbrepl.__file__).resolve().parent
    out.append(("dbrepl/__init__.py", pkg / "__init__.py"))
    for p in sorted((pkg / "sync").rglob("*.py")):
        out.append((f"dbrepl/{p.relative_to(pkg).as_posix()}", p))
    pm = Path(pymysql.__file__).resolve().parent
    for p in sorted(pm.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".txt", ".typed"):
            out.append((f"pymysql/{p.relative_to(pm).as_posix()}", p))
    return sorted(out)


def build_bundle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for arc, path in _files():
            info = zipfile.ZipInfo(arc, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            z.writestr(info, path.read_bytes(), compresslevel=9)
    return buf.getvalue()


def code_sha256(data: bytes) -> str:
    """The form Lambda reports as CodeSha256: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def write_bundle(path: Path) -> tuple[Path, str, int]:
    data = build_bundle()
    path.write_bytes(data)
    return path, code_sha256(data), len(data)
