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
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCK = 256  # entries compared at once while the sides agree
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
        # The first position at which they differ, by halving: a[i:i+lo] == b[j:j+lo].
        lo, hi = 0, n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[i + lo:i + mid] == b[j + lo:j + mid]:
                lo = mid
            else:
                hi = mid
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
