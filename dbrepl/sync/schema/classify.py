"""Which column changes can lose or rewrite data (destructive) and which cannot (safe).

The rule: a change is safe when every value the old column can hold survives unchanged in
the new one. Anything we cannot prove safe is destructive, so an unknown type pair needs
--allow-destructive rather than silently truncating.
"""

from __future__ import annotations

import re

from dbrepl.sync.schema.model import Column
from dbrepl.sync.splitter import split_top_level

_INTS = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_TEXTS = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_BLOBS = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_TEMPORAL = {"datetime", "timestamp", "time"}
# Charsets every character of which utf8mb4 can hold.
_INTO_UTF8MB4 = {"ascii", "latin1", "utf8", "utf8mb3", "utf8mb4", "ucs2", "utf16", "utf32", "binary"}
_BYTES_PER_CHAR = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2, "utf16": 4, "utf32": 4}

_TYPE = re.compile(r"^(\w+)(?:\((.*)\))?\s*(.*)$", re.DOTALL)


def _parse(column_type: str) -> tuple[str, list[str], set[str]]:
    m = _TYPE.match(column_type.strip())
    if not m:
        return column_type, [], set()
    base, args, attrs = m.group(1).lower(), m.group(2), m.group(3).lower().split()
    return base, (split_top_level(args) if args else []), set(attrs)


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def type_loss(old: Column, new: Column) -> str | None:
    """Why changing old's type into new's may lose data, or None when it cannot."""
    if old.column_type.lower() == new.column_type.lower():
        return None
    ob, oa, oattr = _parse(old.column_type)
    nb, na, nattr = _parse(new.column_type)
    why = f"type {old.column_type} -> {new.column_type} may lose data"
    if ob in _INTS and nb in _INTS:
        if "zerofill" in oattr ^ nattr:
            return None if _INTS[nb] >= _INTS[ob] and ("unsigned" in oattr) == ("unsigned" in nattr) else why
        o_uns, n_uns = "unsigned" in oattr, "unsigned" in nattr
        if o_uns == n_uns:
            return None if _INTS[nb] >= _INTS[ob] else why
        if o_uns and not n_uns:
            return None if _INTS[nb] > _INTS[ob] else why
        return why  # signed -> unsigned loses negatives
    if ob in ("decimal", "numeric") and nb in ("decimal", "numeric"):
        op, os_ = _int(oa[0], 10) if oa else 10, _int(oa[1]) if len(oa) > 1 else 0
        np_, ns = _int(na[0], 10) if na else 10, _int(na[1]) if len(na) > 1 else 0
        ok = ns >= os_ and np_ - ns >= op - os_ and ("unsigned" in oattr or "unsigned" not in nattr)
        return None if ok else why
    if ob == "float" and nb in ("float", "double") and not oa and not na:
        return None
    if ob in ("varchar", "char") and nb in ("varchar", "char"):
        if ob == "varchar" and nb == "char":
            return why  # CHAR strips trailing spaces
        return None if _int(na[0]) >= _int(oa[0]) else why
    if ob in ("varbinary", "binary") and nb in ("varbinary", "binary"):
        if ob != nb:
            return why  # BINARY pads with zero bytes
        return None if _int(na[0]) >= _int(oa[0]) else why
    if ob in ("varchar", "char") and nb in _TEXTS:
        bpc = _BYTES_PER_CHAR.get((new.charset or "").lower(), 1)
        return None if _int(oa[0]) * bpc <= _TEXTS[nb] and ob == "varchar" else why
    if ob in _TEXTS and nb in _TEXTS:
        return None if _TEXTS[nb] >= _TEXTS[ob] else why
    if ob == "varbinary" and nb in _BLOBS:
        return None if _int(oa[0]) <= _BLOBS[nb] else why
    if ob in _BLOBS and nb in _BLOBS:
        return None if _BLOBS[nb] >= _BLOBS[ob] else why
    if ob in ("enum", "set") and nb == ob:
        # Members appended at the end keep every stored value (and its index).
        return None if na[: len(oa)] == oa else why
    if ob in _TEMPORAL and nb == ob:
        return None if (_int(na[0]) if na else 0) >= (_int(oa[0]) if oa else 0) else why
    if ob == "date" and nb == "datetime":
        return None
    if ob == "bit" and nb == "bit":
        return None if (_int(na[0], 1) if na else 1) >= (_int(oa[0], 1) if oa else 1) else why
    if ob == nb and oa == na:  # only display attributes differ (e.g. width)
        return None
    return why


def column_loss(old: Column, new: Column) -> list[str]:
    """Every reason modifying `old` into `new` is destructive (empty: safe)."""
    reasons = []
    if new.generated and not old.generated:
        reasons.append("turns a stored column into a generated one (its values are replaced)")
    elif old.generated and not new.generated:
        reasons.append("a generated column re-added as a stored one starts from its default")
    elif not new.generated:
        if (why := type_loss(old, new)) is not None:
            reasons.append(why)
        oc, nc = (old.charset or "").lower(), (new.charset or "").lower()
        if oc and nc and oc != nc and not (nc == "utf8mb4" and oc in _INTO_UTF8MB4):
            reasons.append(f"charset {oc} -> {nc} may lose characters")
        if old.nullable and not new.nullable and not old.generated:
            reasons.append("NULL -> NOT NULL replaces or refuses existing NULLs")
    return reasons


# Engines that keep no rows (or lose them at restart).
_NON_DURABLE_ENGINES = {"memory", "heap", "blackhole", "federated", "connect", "sequence"}


def engine_loss(old: str | None, new: str | None) -> str | None:
    if old and new and old.lower() != new.lower() and new.lower() in _NON_DURABLE_ENGINES:
        return f"engine {old} -> {new} does not keep the rows"
    return None
