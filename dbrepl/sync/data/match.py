"""Which rows of a chunk differ: the entries one side has and the other lacks.

Both servers send one entry per row of a key range (`hash NUL key...`, no two alike on a
side), in the order their key index gives. Where the sides mostly agree, they list mostly the
same entries in the same order, so `unmatched` first skips what is equal position by position,
comparing whole slices of the two lists (one C loop per slice, no Python step per row), and
matches only what is left as sets. Skipping is always safe: an entry equal at both positions
is in both lists, and each entry is on a side once, so what is left holds every unmatched entry
and, for any entry left on one side, its equal (if any) on the other.

The order the servers give is relied on for speed only, never for the answer: if the sides
disagree in most places (or list rows in another order), the walk stops early and the rest is
matched as sets, which costs what matching everything as sets costs.

`unmatched_joined` does the same on the servers' joined values themselves (entries separated
by two NULs), without cutting them into one bytes object per row: equal stretches are compared
as bytes, and only the entries around a difference are cut out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BLOCK = 256  # entries compared at once while the sides agree
BLOCK_BYTES = 8192  # bytes compared at once while joined sides agree
SEP = b"\0\0"  # between the entries of a joined value
WINDOW = 32  # how far ahead a lone entry is looked for, to re-align after rows only one side has
# Stop walking when more than this share of the entries walked so far were left unmatched.
_GIVE_UP_SHARE = 16


def unmatched(a: Sequence[bytes], b: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(entries of `a` not in `b`, entries of `b` not in `a`), each in its list's order."""
    rest_a: list[bytes] = []
    rest_b: list[bytes] = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        n = min(BLOCK, na - i, nb - j)
        if a[i:i + n] == b[j:j + n]:
            i += n
            j += n
            continue
        lo = _alike_for(a, i, b, j, n)
        i += lo
        j += lo
        if len(rest_a) + len(rest_b) > 64 + (i + j) // _GIVE_UP_SHARE:
            break
        # a[i] != b[j]. Re-align if one side has entries the other lacks just here.
        ahead = _find(b, a[i], j + 1, min(nb, j + 1 + WINDOW))
        if ahead >= 0:
            rest_b.extend(b[j:ahead])
            j = ahead
            continue
        ahead = _find(a, b[j], i + 1, min(na, i + 1 + WINDOW))
        if ahead >= 0:
            rest_a.extend(a[i:ahead])
            i = ahead
            continue
        # A row that differs on both sides (or entries met again further on: the sets pair them).
        rest_a.append(a[i])
        rest_b.append(b[j])
        i += 1
        j += 1
    rest_a.extend(a[i:])
    rest_b.extend(b[j:])
    return _as_sets(rest_a, rest_b)


def _alike_for(a: Sequence[Any], i: int, b: Sequence[Any], j: int, n: int) -> int:
    """How far a[i:] and b[j:] are alike, at most n (n when a[i:i+n] == b[j:j+n]): found by
    halving, one slice comparison per step."""
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[i + lo:i + mid] == b[j + lo:j + mid]:
            lo = mid
        else:
            hi = mid
    if lo < n and a[i + lo:i + lo + 1] == b[j + lo:j + lo + 1]:
        lo += 1  # (alike up to n)
    return lo


def _as_sets(rest_a: list[bytes], rest_b: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """What is left of each side that the other lacks, each in its order."""
    if not rest_a or not rest_b:
        return rest_a, rest_b
    in_a, in_b = set(rest_a), set(rest_b)
    return [e for e in rest_a if e not in in_b], [e for e in rest_b if e not in in_a]


def _find(items: Sequence[bytes], item: bytes, start: int, stop: int) -> int:
    """The position of `item` in items[start:stop], or -1."""
    if start >= stop:
        return -1
    try:
        return items.index(item, start, stop)
    except ValueError:
        return -1


def unmatched_joined(a: bytes, b: bytes) -> tuple[list[bytes], list[bytes]]:
    """unmatched(a.split(SEP), b.split(SEP)) (an empty value: no entries), without the split.

    Where a value holds three NULs in a row (or starts or ends with two) an entry is empty or
    its separators are ambiguous to find from the middle, so the values are split as a whole
    (what the caller would have done)."""
    if not a or not b or not _plain(a) or not _plain(b):
        return unmatched(a.split(SEP) if a else [], b.split(SEP) if b else [])
    # Here every SEP in a value is a separator, and i and j are always where an entry starts.
    rest_a: list[bytes] = []
    rest_b: list[bytes] = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        n = min(BLOCK_BYTES, na - i, nb - j)
        if a[i:i + n] == b[j:j + n]:
            if i + n == na and j + n == nb:
                i, j = na, nb  # the rest is alike
                break
            last = a.rfind(SEP, i, i + n)
            if last >= 0:  # whole entries alike up to there, on both sides
                j += last + 2 - i
                i = last + 2
                continue
            # One entry longer than the block: compare it whole.
        # The entries at i and j (the first that differ, or one too long for a block).
        lo = _alike_for(a, i, b, j, n)
        start = a.rfind(SEP, i, i + lo)
        if start >= 0:  # skip the whole entries alike before the difference
            j += start + 2 - i
            i = start + 2
        end_a, end_b = _end(a, i), _end(b, j)
        ea, eb = a[i:end_a], b[j:end_b]
        if ea == eb:  # one long entry, alike
            i, j = end_a + 2, end_b + 2
            continue
        if len(rest_a) + len(rest_b) > 64 + (i + j) // 256:
            break
        found = _find_entry(b, ea, end_b + 2, WINDOW * (len(ea) + 2) * 2)
        if found >= 0:  # b has entries a lacks just here
            rest_b.extend(b[j:found - 2].split(SEP))
            j = found
            continue
        found = _find_entry(a, eb, end_a + 2, WINDOW * (len(eb) + 2) * 2)
        if found >= 0:
            rest_a.extend(a[i:found - 2].split(SEP))
            i = found
            continue
        rest_a.append(ea)
        rest_b.append(eb)
        i, j = end_a + 2, end_b + 2
    if i < na:
        rest_a.extend(a[i:].split(SEP))
    if j < nb:
        rest_b.extend(b[j:].split(SEP))
    return _as_sets(rest_a, rest_b)


def _plain(value: bytes) -> bool:
    """Every SEP in it separates two entries, none of them empty."""
    return b"\0\0\0" not in value and not value.startswith(SEP) and not value.endswith(SEP)


def _end(value: bytes, start: int) -> int:
    """Where the entry starting at `start` ends (its separator, or the value's end)."""
    end = value.find(SEP, start)
    return len(value) if end < 0 else end


def _find_entry(value: bytes, entry: bytes, start: int, span: int) -> int:
    """Where `entry` starts as a whole entry in value[start:start + span] (start being where an
    entry starts), or -1."""
    if start >= len(value):
        return -1
    if value.startswith(entry, start) and _end(value, start) == start + len(entry):
        return start
    at = value.find(SEP + entry, start, start + span + len(entry) + 2)
    while at >= 0:
        if _end(value, at + 2) == at + 2 + len(entry):
            return at + 2
        at = value.find(SEP + entry, at + 2, start + span + len(entry) + 2)
    return -1
