"""A failed verification names its cause (issue 17, point 4): which row and columns differ
(never the values), the target's triggers on the table and its generated columns."""

from __future__ import annotations

import pytest

from dbrepl.sync.data import VerificationFailed
from tests.sync.test_data_sync import both, run, sync

pytestmark = pytest.mark.mariadb


def test_a_rewrite_the_run_cannot_undo_is_named_with_its_columns_and_triggers(conns, db_pair):  # noqa: F811
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, secret_note VARCHAR(20) NOT NULL,"
                          " n INT NOT NULL, g INT AS (n * 2) VIRTUAL)")
    run(admin, f"INSERT INTO `{src}`.t (id, secret_note, n) VALUES (1, 'hush-value', 1), (2, 'keep', 2)",
        f"INSERT INTO `{dst}`.t (id, secret_note, n) VALUES (2, 'keep', 2)")
    for event in ("INSERT", "UPDATE"):
        run(admin, f"CREATE TRIGGER `{dst}`.stamp_{event.lower()} BEFORE {event} ON `{dst}`.t FOR EACH ROW"
                   " SET NEW.secret_note = 'rewritten'")
    before = run(admin, f"SELECT id, secret_note, n FROM `{dst}`.t ORDER BY id")
    # allow: not refused up front; the correction is rewritten again and verification decides.
    with pytest.raises(VerificationFailed) as e:
        sync(conns, src, dst, ["t"], triggers="allow")
    msg = str(e.value)
    assert "the row with key 1 differs in column(s) secret_note" in msg, msg
    assert f"{dst}.stamp_insert (BEFORE INSERT)" in msg and f"{dst}.stamp_update (BEFORE UPDATE)" in msg, msg
    assert "generated column(s) g" in msg, msg
    assert "hush-value" not in msg and "rewritten" not in msg, "values are never printed"
    assert run(admin, f"SELECT id, secret_note, n FROM `{dst}`.t ORDER BY id") == before


def test_a_row_missing_after_applying_is_named_by_key(conns, db_pair):  # noqa: F811
    """A trigger deleting what the sync inserted leaves a row missing: the message says which.
    (A multi-table DELETE is a write the body reader does not recognise, documented in
    docs/data-sync.md, so nothing orders u before t; the verification still catches it.)"""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "CREATE TABLE u (id INT PRIMARY KEY)")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1, 1), (2, 2), (3, 3)", f"INSERT INTO `{dst}`.t VALUES (1, 1)",
        f"INSERT INTO `{src}`.u VALUES (1), (3)", f"INSERT INTO `{dst}`.u VALUES (1)")
    # u is synced after t, and u's insert deletes t's row 3.
    run(admin, f"CREATE TRIGGER `{dst}`.eat AFTER INSERT ON `{dst}`.u FOR EACH ROW"
               " DELETE t FROM t WHERE t.id = NEW.id")
    with pytest.raises(VerificationFailed) as e:
        sync(conns, src, dst, ["t", "u"], triggers="allow")
    msg = str(e.value)
    assert "the row with key 3 is missing on the target" in msg, msg
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t")[0][0] == 1
