"""match.unmatched: the entries one side has and the other lacks, exactly as set differences
would name them, in each side's order, whatever the two lists look like."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dbrepl.sync.data import match
from dbrepl.sync.data.match import unmatched


def by_sets(a: list[bytes], b: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    sa, sb = set(a), set(b)
    return [e for e in a if e not in sb], [e for e in b if e not in sa]


def entry(key: int, version: int = 0) -> bytes:
    return b"%016x\0%d" % ((key * 7919 + version) % (1 << 64), key)


@st.composite
def sides(draw):
    """A source list in key order and a target made from it by edits: changed rows, rows
    removed, rows added, runs of either, and sometimes a shuffle (no order at all)."""
    n = draw(st.integers(0, 1500))
    src = [entry(k) for k in range(n)]
    dst = list(src)
    for _ in range(draw(st.integers(0, 40))):
        op = draw(st.sampled_from(["change", "drop", "add", "drop_run", "add_run"]))
        at = draw(st.integers(0, max(0, len(dst) - 1)))
        if op == "change" and dst:
            dst[at] = dst[at] + b"'"
        elif op == "drop" and dst:
            del dst[at]
        elif op == "add":
            dst.insert(at, entry(10_000 + draw(st.integers(0, 10_000))))
        elif op == "drop_run":
            del dst[at:at + draw(st.integers(1, 80))]
        elif op == "add_run":
            start = 30_000 + draw(st.integers(0, 10_000))
            dst[at:at] = [entry(start + k) for k in range(draw(st.integers(1, 80)))]
    dst = list(dict.fromkeys(dst))  # a side never lists an entry twice
    if draw(st.booleans()) and draw(st.booleans()):
        random.Random(draw(st.integers(0, 99))).shuffle(dst)
    if draw(st.booleans()):
        src, dst = dst, src
    return src, dst


@settings(max_examples=300, deadline=None, derandomize=True)
@given(sides())
def test_unmatched_is_the_set_differences_in_order(case):
    a, b = case
    assert unmatched(a, b) == by_sets(a, b)


def test_equal_sides_leave_nothing():
    a = [entry(k) for k in range(5000)]
    assert unmatched(a, list(a)) == ([], [])
    assert unmatched([], a) == ([], a)
    assert unmatched(a, []) == (a, [])


def test_runs_only_one_side_has_are_found_and_the_walk_realigns(monkeypatch):
    """A run of rows longer than the look-ahead window, then rows alike again: the walk must
    still pair what follows (here it is checked by making the set fallback fail loudly)."""
    a = [entry(k) for k in range(3000)]
    b = a[:1000] + a[1005:2000] + [entry(9_000 + k) for k in range(3)] + a[2000:]
    changed = b.index(a[2500])
    b[changed] = b[changed] + b"x"
    calls = []
    real_set = set

    def spy_set(items=()):
        items = list(items)
        calls.append(len(items))
        return real_set(items)

    monkeypatch.setattr(match, "set", spy_set, raising=False)
    only_a, only_b = unmatched(a, b)
    assert only_a == a[1000:1005] + [a[2500]]
    assert only_b == [entry(9_000 + k) for k in range(3)] + [b[changed]]
    # Only the few rows left over were matched as sets, never the whole lists.
    assert calls and max(calls) <= 10


def test_sides_in_no_common_order_fall_back_to_sets_and_stay_exact():
    a = [entry(k) for k in range(4000)]
    b = list(a)
    random.Random(7).shuffle(b)
    b[10] += b"!"
    assert unmatched(a, b) == by_sets(a, b)
    assert len(unmatched(a, b)[0]) == 1


# --------------------------------------------------------------------------- joined values

SEP = match.SEP


def joined(entries: list[bytes]) -> bytes:
    return SEP.join(entries)


@st.composite
def entry_lists(draw):
    """Two lists of distinct entries as the servers send them (`hash NUL key...`, single NULs
    inside), the second made from the first by edits, long entries and odd bytes included."""
    long_ones = draw(st.booleans())
    n = draw(st.integers(0, 1200))
    src = []
    for k in range(n):
        key = b"%d" % k
        if long_ones and k % 97 == 0:
            key += b"x" * draw(st.integers(100, 20_000))  # longer than a block
        src.append(b"%016x\0" % ((k * 2654435761) % (1 << 64)) + key + (b"\0\x01" if k % 5 == 0 else b""))
    dst = list(src)
    for _ in range(draw(st.integers(0, 40))):
        op = draw(st.sampled_from(["change", "drop", "add", "drop_run", "add_run", "tail"]))
        at = draw(st.integers(0, max(0, len(dst) - 1)))
        if op == "change" and dst:
            dst[at] = dst[at][:-1] + bytes([dst[at][-1] ^ 1 or 1])
        elif op == "drop" and dst:
            del dst[at]
        elif op == "add":
            dst.insert(at, b"%016x\0new%d" % (at, draw(st.integers(0, 10**6))))
        elif op == "drop_run":
            del dst[at:at + draw(st.integers(1, 80))]
        elif op == "add_run":
            base = draw(st.integers(0, 10**6))
            dst[at:at] = [b"%016x\0run%d" % (k, base + k) for k in range(draw(st.integers(1, 80)))]
        elif op == "tail" and dst:
            dst[at] += b"\0"  # a key ending in NUL: the value then holds three NULs in a row
    dst = [e for e in dict.fromkeys(dst) if e]
    if draw(st.booleans()):
        src, dst = dst, src
    return src, dst


@settings(max_examples=300, deadline=None, derandomize=True)
@given(entry_lists())
def test_unmatched_joined_is_unmatched_of_the_split_values(case):
    a, b = case
    A, B = joined(a), joined(b)
    want = unmatched(A.split(SEP) if A else [], B.split(SEP) if B else [])
    assert match.unmatched_joined(A, B) == want
    if match._plain(A) and match._plain(B):
        assert want == by_sets(a, b)  # (the split gives back the entries)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_unmatched_joined_of_any_bytes_is_the_split_answer(a, b):
    """Whatever the values hold (empty entries, runs of NULs), the answer is the split one's."""
    a, b = a.replace(b"\1", b"\0"), b.replace(b"\1", b"\0")  # NULs are likely
    pa, pb = a.split(SEP) if a else [], b.split(SEP) if b else []
    if len(set(pa)) == len(pa) and len(set(pb)) == len(pb):  # a side never repeats an entry
        assert match.unmatched_joined(a, b) == unmatched(pa, pb) == by_sets(pa, pb)


def test_unmatched_joined_cuts_out_only_the_entries_around_a_difference(monkeypatch):
    entries = [b"%016x\0%d" % (k, k) for k in range(20_000)]
    other = list(entries)
    other[5_000] += b"!"
    del other[12_000]
    cut = []
    split = bytes.split

    class Spy(bytes):
        def split(self, *a):
            parts = split(self, *a)
            cut.append(len(parts))
            return parts

    only_a, only_b = match.unmatched_joined(Spy(joined(entries)), Spy(joined(other)))
    assert only_a == [entries[5_000], entries[12_000]] and only_b == [other[5_000]]
    assert not cut  # the values themselves were never split
