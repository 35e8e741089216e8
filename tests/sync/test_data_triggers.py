"""Data sync that honours the target's own triggers (issue 17), against a real MariaDB server.

Triggers live on the TARGET (the source is only read). Every case either converges (every
synced table equal to the source byte for byte, no orphan in the target, a second run
changes nothing) or is refused before COMMIT naming its cause, with every table of the
target exactly as it was. Source and target are two databases of one server (`db_pair`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from dbrepl.sync.data import TriggersRefused, sync_data
from dbrepl.sync.errors import DatabaseError, SyncError
from tests.sync.test_data_sync import assert_same, both, run, snapshot

pytestmark = pytest.mark.mariadb


# -- helpers (test_data_foreign_keys imports them) ----------------------------------------------


def sync(conns, src: str, dst: str, tables: list[str], **kw):
    _, s, t = conns
    return sync_data(s, t, [(src, x) for x in tables], target_databases={src: dst}, **kw)


def on(conn, db: str, *statements: str) -> None:
    """Run statements with `db` as the default database (trigger bodies name tables bare)."""
    run(conn, f"USE `{db}`", *statements)


def base_tables(conn, db: str) -> list[str]:
    return [r[0] for r in run(
        conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s"
        " AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME", args=(db,))]


def dump(conn, db: str) -> dict[str, list[tuple]]:
    """Every base table of `db`, every row as exact bytes: compared before and after a refusal."""
    tables = base_tables(conn, db)
    assert tables, f"no table in {db}"
    return {t: snapshot(conn, db, t) for t in tables}


def foreign_keys(conn, db: str) -> list[tuple[str, str, str, str, list[str], list[str]]]:
    """(constraint, child table, parent database, parent table, child columns, parent columns)."""
    found: dict[tuple[str, str], Any] = {}
    for name, table, rdb, rtable, col, rcol in run(
        conn,
        "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME,"
        " COLUMN_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
        " WHERE TABLE_SCHEMA=%s AND REFERENCED_TABLE_NAME IS NOT NULL"
        " ORDER BY CONSTRAINT_NAME, TABLE_NAME, ORDINAL_POSITION", args=(db,),
    ):
        fk = found.setdefault((name, table), (name, table, rdb, rtable, [], []))
        fk[4].append(col)
        fk[5].append(rcol)
    return list(found.values())


def orphans(conn, db: str) -> dict[str, int]:
    """Child rows of `db` whose (non-NULL) reference finds no parent row, per constraint."""
    bad = {}
    for name, table, rdb, rtable, cols, rcols in foreign_keys(conn, db):
        on_ = " AND ".join(f"c.`{a}` = p.`{b}`" for a, b in zip(cols, rcols, strict=True))
        not_null = " AND ".join(f"c.`{a}` IS NOT NULL" for a in cols)
        n = run(conn, f"SELECT COUNT(*) FROM `{db}`.`{table}` c LEFT JOIN `{rdb}`.`{rtable}` p ON {on_}"
                      f" WHERE {not_null} AND p.`{rcols[0]}` IS NULL")[0][0]
        if n:
            bad[f"{table}.{name}"] = n
    return bad


def assert_converged(conns, src: str, dst: str, tables: list[str], *, fks: int = 0, **kw) -> None:
    """Each table equal byte for byte, no orphan in the target (of `fks` or more foreign keys
    the check looked at), and a second run that finds nothing to do."""
    admin = conns[0]
    for t in tables:
        assert_same(admin, src, dst, t)
    assert len(foreign_keys(admin, dst)) >= fks
    assert orphans(admin, dst) == {}
    again = sync(conns, src, dst, tables, **kw)
    assert again.rows_synced == 0, again.to_dict()
    assert sum(getattr(t, "corrected", 0) for t in again.tables) == 0


def trigger_report(result, dst: str, name: str) -> dict[str, Any]:
    entries = [t.to_dict() for t in result.triggers]
    json.dumps(result.to_dict())  # JSON-able, triggers and foreign keys included
    assert result.to_dict()["triggers"] == entries
    found = [e for e in entries if e["trigger"] == f"{dst}.{name}"]
    assert len(found) == 1, (name, entries)
    return found[0]


def assert_refused(excinfo, dst: str, trigger: str, table: str, timing_event: str) -> str:
    """The refusal names the trigger as db.trigger, its table and its timing and event."""
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, SyncError)
    assert f"{dst}.{trigger}" in msg, msg
    assert re.search(rf"\b{re.escape(table)}\b", msg), msg
    assert timing_event in msg, msg
    return msg


# -- BEFORE INSERT triggers that rewrite their own row: corrected ---------------------------


STAMPED = ("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, created DATETIME NULL,"
           " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)")


@pytest.mark.parametrize("mode", ["default", "allow"])
def test_before_insert_timestamp_trigger_is_corrected(conns, db_pair, mode):
    """sakila's `SET NEW.create_date = NOW()`: every row the sync inserts is rewritten by the
    trigger and set back to the source's values in the same transaction (with
    triggers="allow" too). The table also has an ON UPDATE CURRENT_TIMESTAMP column, which
    the correction must not bump."""
    kw = {} if mode == "default" else {"triggers": mode}
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, STAMPED)
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, CONCAT('n', seq), '2001-01-01' + INTERVAL seq HOUR,"
               f" '2005-05-05 05:05:05' FROM `{src}`.seq_1_to_40",
        f"INSERT INTO `{dst}`.t SELECT * FROM `{src}`.t WHERE id <= 30 AND id <> 7",
        f"UPDATE `{dst}`.t SET name = 'changed', last_update = last_update WHERE id IN (5, 6)",
        f"INSERT INTO `{dst}`.t VALUES (50, 'extra', NULL, '2005-05-05 05:05:05'),"
        " (51, 'extra', NULL, '2005-05-05 05:05:05')")
    on(admin, dst, "CREATE TRIGGER t_created BEFORE INSERT ON t FOR EACH ROW SET NEW.created = NOW()")

    result = sync(conns, src, dst, ["t"], **kw)
    t = result.tables[0]
    assert (t.inserted, t.updated, t.deleted) == (11, 2, 2)
    assert t.corrected == 13  # every row inserted (new or rewritten) was rewritten by the trigger
    assert result.to_dict()["tables"][0]["corrected"] == 13
    entry = trigger_report(result, dst, "t_created")
    assert (entry["table"], entry["timing"], entry["event"]) == (f"{dst}.t", "BEFORE", "INSERT")
    assert (entry["fired"], entry["corrected"]) == (13, 13)
    if mode == "default":
        assert entry["treatment"] == "corrected"
    assert_converged(conns, src, dst, ["t"], **kw)
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t WHERE created >= '2020-01-01'")[0][0] == 0


def test_conditional_before_insert_trigger_on_an_empty_target_corrects_only_rewritten_rows(conns, db_pair):
    """`IF NEW.created IS NULL THEN SET NEW.created = NOW()`: the copy into an empty target
    is corrected too, and only the rows the trigger changed count (the source's NULLs must
    come back as NULL)."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, STAMPED)
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, CONCAT('n', seq),"
               f" IF(seq % 4 = 0, NULL, '2001-01-01' + INTERVAL seq DAY), '2005-05-05 05:05:05'"
               f" FROM `{src}`.seq_1_to_200")
    on(admin, dst, "CREATE TRIGGER t_created BEFORE INSERT ON t FOR EACH ROW"
                   " BEGIN IF NEW.created IS NULL THEN SET NEW.created = NOW(); END IF; END")

    result = sync(conns, src, dst, ["t"])
    assert result.tables[0].inserted == 200
    assert result.tables[0].corrected == 50
    entry = trigger_report(result, dst, "t_created")
    assert (entry["treatment"], entry["fired"], entry["corrected"]) == ("corrected", 200, 50)
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t WHERE created IS NULL")[0][0] == 50
    assert_converged(conns, src, dst, ["t"])


# -- BEFORE UPDATE triggers -----------------------------------------------------------------


TOUCHED = ("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, created DATETIME NULL,"
           " touched DATETIME NULL)")


def _touched_pair(admin, src, dst):
    both(admin, src, dst, TOUCHED)
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, CONCAT('n', seq), '2001-01-01', '2002-02-02'"
               f" FROM `{src}`.seq_1_to_20",
        f"INSERT INTO `{dst}`.t SELECT * FROM `{src}`.t WHERE id <= 15",
        f"UPDATE `{dst}`.t SET name = 'old' WHERE id IN (2, 3)",
        f"INSERT INTO `{dst}`.t VALUES (99, 'extra', NULL, NULL)")


@pytest.mark.parametrize("mode", ["correct", "refuse", "allow"])
def test_before_update_trigger_alone_never_fires_and_converges(conns, db_pair, mode):
    """The sync deletes and inserts; with nothing to correct it issues no UPDATE, so a
    BEFORE UPDATE trigger (even one rewriting NEW) is not in the way, whatever the mode."""
    admin, _, _ = conns
    src, dst = db_pair
    _touched_pair(admin, src, dst)
    on(admin, dst, "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW SET NEW.touched = NOW()")
    result = sync(conns, src, dst, ["t"], triggers=mode)
    assert (result.tables[0].inserted, result.tables[0].updated, result.tables[0].deleted) == (5, 2, 1)
    assert_converged(conns, src, dst, ["t"], triggers=mode)
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t WHERE touched <> '2002-02-02'")[0][0] == 0


def test_before_update_rewriting_with_a_corrected_before_insert_is_refused(conns, db_pair):
    """The correction is an UPDATE, which the BEFORE UPDATE trigger would rewrite again:
    refused before any change, naming the BEFORE UPDATE trigger. With triggers="allow" the
    run goes ahead and the verification before COMMIT rolls it back."""
    admin, _, _ = conns
    src, dst = db_pair
    _touched_pair(admin, src, dst)
    on(admin, dst,
       "CREATE TRIGGER t_created BEFORE INSERT ON t FOR EACH ROW SET NEW.created = NOW()",
       "CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW SET NEW.touched = NOW()")
    before = dump(admin, dst)

    with pytest.raises(TriggersRefused) as excinfo:
        sync(conns, src, dst, ["t"])
    assert_refused(excinfo, dst, "t_touch", "t", "BEFORE UPDATE")
    assert dump(admin, dst) == before

    with pytest.raises(DatabaseError):
        sync(conns, src, dst, ["t"], triggers="allow")
    assert dump(admin, dst) == before


# -- AFTER triggers writing another synced table: ordered -----------------------------------


FILM = ("CREATE TABLE film (film_id SMALLINT UNSIGNED PRIMARY KEY, title VARCHAR(128) NOT NULL,"
        " description TEXT, length SMALLINT UNSIGNED)")
FILM_TEXT = ("CREATE TABLE film_text (film_id SMALLINT NOT NULL PRIMARY KEY, title VARCHAR(255) NOT NULL,"
             " description TEXT)")
# sakila's three triggers, as its schema file writes them.
FILM_TRIGGERS = (
    "CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW BEGIN"
    " INSERT INTO film_text (film_id, title, description) VALUES (new.film_id, new.title, new.description);"
    " END",
    "CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW BEGIN"
    " IF (old.title != new.title) OR (old.description != new.description) OR (old.film_id != new.film_id) THEN"
    " UPDATE film_text SET title=new.title, description=new.description, film_id=new.film_id"
    " WHERE film_id=old.film_id; END IF; END",
    "CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW BEGIN"
    " DELETE FROM film_text WHERE film_id = old.film_id; END",
)


def _film_pair(admin, src, dst):
    both(admin, src, dst, FILM, FILM_TEXT)
    run(admin,
        f"INSERT INTO `{src}`.film SELECT seq, CONCAT('TITLE ', seq), CONCAT('about ', seq), 60 + seq"
        f" FROM `{src}`.seq_1_to_30",
        f"INSERT INTO `{src}`.film_text SELECT film_id, title, description FROM `{src}`.film",
        # The source's film_text is not exactly what the trigger writes: one description of
        # its own, and no text for film 25 (a new film on the target): only film_text's own
        # comparison, AFTER film's, can get these right.
        f"UPDATE `{src}`.film_text SET description = 'its own' WHERE film_id = 3",
        f"DELETE FROM `{src}`.film_text WHERE film_id = 25",
        f"INSERT INTO `{dst}`.film SELECT * FROM `{src}`.film WHERE film_id <= 20",
        f"INSERT INTO `{dst}`.film_text SELECT film_id, title, description FROM `{dst}`.film",
        f"UPDATE `{dst}`.film SET title = 'OLD TITLE' WHERE film_id = 2",
        f"UPDATE `{dst}`.film_text SET title = 'OLD TITLE' WHERE film_id = 2",
        f"INSERT INTO `{dst}`.film VALUES (40, 'GONE', 'gone', 1)",
        f"INSERT INTO `{dst}`.film_text VALUES (40, 'GONE', 'gone')")
    on(admin, dst, *FILM_TRIGGERS)


@pytest.mark.parametrize("order", [["film_text", "film"], ["film", "film_text"]], ids=["text-first", "film-first"])
def test_after_triggers_writing_another_synced_table_converge_in_any_listed_order(conns, db_pair, order):
    """film's ins_film/upd_film/del_film write film_text; film_text is compared and applied
    after film whatever the order given, and ends equal to the source."""
    admin, _, _ = conns
    src, dst = db_pair
    _film_pair(admin, src, dst)
    result = sync(conns, src, dst, order)
    film = next(t for t in result.tables if t.table == "film")
    assert (film.inserted, film.updated, film.deleted) == (10, 1, 1)
    ins, dele = trigger_report(result, dst, "ins_film"), trigger_report(result, dst, "del_film")
    for entry, event in ((ins, "INSERT"), (dele, "DELETE")):
        assert (entry["table"], entry["timing"], entry["event"], entry["treatment"]) == (
            f"{dst}.film", "AFTER", event, "ordered")
        assert entry["writes"] == [f"{dst}.film_text"]
    assert ins["fired"] == 11 and dele["fired"] == 2  # 10 new + 1 rewritten; 1 extra + 1 rewritten
    assert_converged(conns, src, dst, ["film", "film_text"])
    assert run(admin, f"SELECT description FROM `{dst}`.film_text WHERE film_id = 3") == (("its own",),)
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.film_text WHERE film_id IN (25, 40)")[0][0] == 0


def test_target_text_row_for_a_film_it_lacks(conns, db_pair):
    """Drift: the target's film_text already holds the row ins_film will insert for a film
    the target lacks (a duplicate key for the trigger). Either the run converges or it is
    refused, rolled back, naming film_text; never a half-applied target."""
    admin, _, _ = conns
    src, dst = db_pair
    _film_pair(admin, src, dst)
    run(admin, f"INSERT INTO `{dst}`.film_text VALUES (21, 'TITLE 21', 'about 21')")  # film 21 not on dst
    before = dump(admin, dst)
    try:
        sync(conns, src, dst, ["film_text", "film"])
    except SyncError as e:
        assert dump(admin, dst) == before
        assert "film_text" in str(e), str(e)  # the table (or trigger) in the way, not only `film`
    else:
        assert_converged(conns, src, dst, ["film", "film_text"])


# -- triggers writing tables outside the synced set: allowed, reported ------------------------


def test_after_trigger_writing_an_unsynced_audit_table_fires_and_is_reported(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)",
         "CREATE TABLE audit (n INT AUTO_INCREMENT PRIMARY KEY, op CHAR(1) NOT NULL, row_id INT NOT NULL,"
         " v VARCHAR(10))")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e'),(6,'f')",
        f"INSERT INTO `{dst}`.t VALUES (1,'a'),(2,'b'),(3,'OLD'),(4,'d'),(5,'e'),(9,'x')",
        f"INSERT INTO `{src}`.audit (op, row_id) VALUES ('S', 0)")  # the source's audit is never read
    on(admin, dst,
       "CREATE TRIGGER t_audit_ins AFTER INSERT ON t FOR EACH ROW"
       " INSERT INTO audit (op, row_id, v) VALUES ('I', NEW.id, NEW.v)",
       "CREATE TRIGGER t_audit_del AFTER DELETE ON t FOR EACH ROW"
       " INSERT INTO audit (op, row_id, v) VALUES ('D', OLD.id, OLD.v)")

    result = sync(conns, src, dst, ["t"])
    assert result.rows_synced == 3  # 6 inserted, 3 rewritten, 9 deleted
    audit = run(admin, f"SELECT op, row_id, v FROM `{dst}`.audit ORDER BY n")
    ins, dele = trigger_report(result, dst, "t_audit_ins"), trigger_report(result, dst, "t_audit_del")
    for entry, event, op in ((ins, "INSERT", "I"), (dele, "DELETE", "D")):
        assert (entry["table"], entry["timing"], entry["event"], entry["treatment"]) == (
            f"{dst}.t", "AFTER", event, "external")
        assert entry["writes"] == [f"{dst}.audit"]
        assert entry["fired"] == sum(r[0] == op for r in audit) > 0, audit
    assert {r for r in audit if r[0] == "I"} >= {("I", 6, "f"), ("I", 3, "c")}
    assert {r for r in audit if r[0] == "D"} >= {("D", 9, "x")}
    assert_converged(conns, src, dst, ["t"])
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.audit")[0][0] == len(audit), "the second run wrote nothing"


# -- triggers that cannot be honoured: refused before any change -------------------------------


SIGNAL = ("CREATE TRIGGER t_check BEFORE INSERT ON t FOR EACH ROW BEGIN"
          " IF NEW.v < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative v refused'; END IF; END")


def _signal_pair(admin, src, dst, negative: bool):
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)",
         "CREATE TABLE other (id INT PRIMARY KEY)")
    run(admin, f"INSERT INTO `{src}`.t SELECT seq, seq FROM `{src}`.seq_1_to_20",
        f"INSERT INTO `{dst}`.t SELECT seq, seq + (seq % 5 = 0) FROM `{src}`.seq_1_to_12",
        f"INSERT INTO `{src}`.other VALUES (1), (2)", f"INSERT INTO `{dst}`.other VALUES (3)")
    if negative:
        run(admin, f"UPDATE `{src}`.t SET v = -1 WHERE id = 17")
    on(admin, dst, SIGNAL)


@pytest.mark.parametrize("mode", ["correct", "refuse"])
def test_signal_trigger_is_refused_before_any_change(conns, db_pair, mode):
    admin, _, _ = conns
    src, dst = db_pair
    _signal_pair(admin, src, dst, negative=False)
    before = dump(admin, dst)
    with pytest.raises(TriggersRefused) as excinfo:
        sync(conns, src, dst, ["other", "t"], triggers=mode)  # `other` first: nothing of it is written either
    msg = assert_refused(excinfo, dst, "t_check", "t", "BEFORE INSERT")
    if mode == "correct":
        assert "SIGNAL" in msg.upper(), msg
    assert dump(admin, dst) == before


def test_signal_trigger_with_allow_converges_when_no_row_meets_its_condition(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    _signal_pair(admin, src, dst, negative=False)
    result = sync(conns, src, dst, ["other", "t"], triggers="allow")
    assert result.rows_synced == 8 + 2 + 3
    assert_converged(conns, src, dst, ["other", "t"], triggers="allow")


def test_signal_trigger_with_allow_that_fires_rolls_everything_back(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    _signal_pair(admin, src, dst, negative=True)
    before = dump(admin, dst)
    with pytest.raises(DatabaseError, match="negative v refused"):
        sync(conns, src, dst, ["other", "t"], triggers="allow")
    assert dump(admin, dst) == before


def test_triggers_writing_synced_tables_in_a_cycle_are_refused(conns, db_pair):
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE a (id INT PRIMARY KEY, v INT)", "CREATE TABLE b (id INT PRIMARY KEY, v INT)")
    run(admin, f"INSERT INTO `{src}`.a VALUES (1,1),(2,2)", f"INSERT INTO `{src}`.b VALUES (1,1),(3,3)",
        f"INSERT INTO `{dst}`.a VALUES (1,1),(5,5)", f"INSERT INTO `{dst}`.b VALUES (1,1),(6,6)")
    on(admin, dst,
       "CREATE TRIGGER a_to_b AFTER INSERT ON a FOR EACH ROW INSERT IGNORE INTO b VALUES (NEW.id, NEW.v)",
       "CREATE TRIGGER b_to_a AFTER DELETE ON b FOR EACH ROW DELETE FROM a WHERE id = OLD.id")
    before = dump(admin, dst)
    with pytest.raises(TriggersRefused) as excinfo:
        sync(conns, src, dst, ["a", "b"])
    msg = str(excinfo.value)
    assert f"{dst}.a_to_b" in msg or f"{dst}.b_to_a" in msg, msg
    assert re.search(r"cycl|circular|loop|come back", msg, re.IGNORECASE), msg  # why
    assert dump(admin, dst) == before


@pytest.mark.parametrize("which", ["timestamp", "audit-delete", "film"])
def test_refuse_mode_refuses_any_trigger_the_sync_would_fire(conns, db_pair, which):
    """triggers="refuse" (pt-table-sync's --check-triggers): triggers the default would
    correct, allow or order are all refused, before any change."""
    admin, _, _ = conns
    src, dst = db_pair
    if which == "film":
        _film_pair(admin, src, dst)
        tables, trigger, table, what = ["film", "film_text"], "ins_film", "film", "AFTER INSERT"
    else:
        both(admin, src, dst, STAMPED, "CREATE TABLE audit (n INT AUTO_INCREMENT PRIMARY KEY, row_id INT)")
        run(admin, f"INSERT INTO `{src}`.t VALUES (1, 'a', NULL, '2005-05-05'), (2, 'b', NULL, '2005-05-05')",
            f"INSERT INTO `{dst}`.t VALUES (1, 'a', NULL, '2005-05-05'), (3, 'c', NULL, '2005-05-05')")
        tables = ["t"]
        if which == "timestamp":
            on(admin, dst, "CREATE TRIGGER t_created BEFORE INSERT ON t FOR EACH ROW SET NEW.created = NOW()")
            trigger, table, what = "t_created", "t", "BEFORE INSERT"
        else:
            on(admin, dst, "CREATE TRIGGER t_gone AFTER DELETE ON t FOR EACH ROW"
                           " INSERT INTO audit (row_id) VALUES (OLD.id)")
            trigger, table, what = "t_gone", "t", "AFTER DELETE"
    before = dump(admin, dst)
    with pytest.raises(TriggersRefused) as excinfo:
        sync(conns, src, dst, tables, triggers="refuse")
    assert_refused(excinfo, dst, trigger, table, what)
    assert dump(admin, dst) == before


def test_unknown_triggers_mode_is_invalid_input(conns, db_pair):
    from dbrepl.sync.errors import InvalidInput

    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, "CREATE TABLE t (id INT PRIMARY KEY)")
    run(admin, f"INSERT INTO `{src}`.t VALUES (1)")
    with pytest.raises(InvalidInput, match="triggers"):
        sync(conns, src, dst, ["t"], triggers="ignore")
    assert run(admin, f"SELECT COUNT(*) FROM `{dst}`.t")[0][0] == 0


# -- a sakila-like database ---------------------------------------------------------------------


SAKILA = (
    "CREATE TABLE language (language_id TINYINT UNSIGNED PRIMARY KEY, name CHAR(20) NOT NULL,"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE category (category_id TINYINT UNSIGNED PRIMARY KEY, name VARCHAR(25) NOT NULL,"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE actor (actor_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, first_name VARCHAR(45) NOT NULL,"
    " last_name VARCHAR(45) NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    " ON UPDATE CURRENT_TIMESTAMP, KEY idx_actor_last_name (last_name))",
    "CREATE TABLE film (film_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, title VARCHAR(128) NOT NULL,"
    " description TEXT, release_year YEAR, language_id TINYINT UNSIGNED NOT NULL,"
    " rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',"
    " special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " KEY idx_title (title), CONSTRAINT fk_film_language FOREIGN KEY (language_id)"
    " REFERENCES language (language_id) ON DELETE RESTRICT ON UPDATE CASCADE)",
    "CREATE TABLE film_text (film_id SMALLINT NOT NULL PRIMARY KEY, title VARCHAR(255) NOT NULL, description TEXT)",
    "CREATE TABLE film_actor (actor_id SMALLINT UNSIGNED NOT NULL, film_id SMALLINT UNSIGNED NOT NULL,"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " PRIMARY KEY (actor_id, film_id), KEY idx_fk_film_id (film_id),"
    " CONSTRAINT fk_film_actor_actor FOREIGN KEY (actor_id) REFERENCES actor (actor_id) ON DELETE RESTRICT,"
    " CONSTRAINT fk_film_actor_film FOREIGN KEY (film_id) REFERENCES film (film_id) ON DELETE RESTRICT)",
    "CREATE TABLE film_category (film_id SMALLINT UNSIGNED NOT NULL, category_id TINYINT UNSIGNED NOT NULL,"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " PRIMARY KEY (film_id, category_id),"
    " CONSTRAINT fk_film_category_film FOREIGN KEY (film_id) REFERENCES film (film_id) ON DELETE RESTRICT,"
    " CONSTRAINT fk_film_category_category FOREIGN KEY (category_id) REFERENCES category (category_id)"
    " ON DELETE RESTRICT)",
    "CREATE TABLE customer (customer_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
    " first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL, email VARCHAR(50),"
    " active BOOLEAN NOT NULL DEFAULT TRUE, create_date DATETIME NOT NULL,"
    " last_update TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE inventory (inventory_id MEDIUMINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
    " film_id SMALLINT UNSIGNED NOT NULL, last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    " ON UPDATE CURRENT_TIMESTAMP,"
    " CONSTRAINT fk_inventory_film FOREIGN KEY (film_id) REFERENCES film (film_id) ON DELETE RESTRICT)",
    "CREATE TABLE rental (rental_id INT AUTO_INCREMENT PRIMARY KEY, rental_date DATETIME NOT NULL,"
    " inventory_id MEDIUMINT UNSIGNED NOT NULL, customer_id SMALLINT UNSIGNED NOT NULL, return_date DATETIME,"
    " last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " UNIQUE KEY (rental_date, inventory_id, customer_id),"
    " CONSTRAINT fk_rental_inventory FOREIGN KEY (inventory_id) REFERENCES inventory (inventory_id)"
    " ON DELETE RESTRICT,"
    " CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id) ON DELETE RESTRICT)",
    "CREATE TABLE payment (payment_id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
    " customer_id SMALLINT UNSIGNED NOT NULL, rental_id INT, amount DECIMAL(5,2) NOT NULL,"
    " payment_date DATETIME NOT NULL,"
    " last_update TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " CONSTRAINT fk_payment_rental FOREIGN KEY (rental_id) REFERENCES rental (rental_id) ON DELETE SET NULL,"
    " CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id) ON DELETE RESTRICT)",
)
SAKILA_TRIGGERS = (
    "CREATE TRIGGER customer_create_date BEFORE INSERT ON customer FOR EACH ROW SET NEW.create_date = NOW()",
    "CREATE TRIGGER payment_date BEFORE INSERT ON payment FOR EACH ROW SET NEW.payment_date = NOW()",
    "CREATE TRIGGER rental_date BEFORE INSERT ON rental FOR EACH ROW SET NEW.rental_date = NOW()",
    *FILM_TRIGGERS,
)
# film_text listed before film on purpose.
SAKILA_TABLES = ["actor", "category", "customer", "film_text", "film", "film_actor", "film_category",
                 "inventory", "language", "payment", "rental"]


def _load_sakila_source(admin, src):
    on(admin, src,
       "SET @t = '2006-02-15 04:34:33'",
       "INSERT INTO language SELECT seq, ELT(seq, 'English', 'Italian', 'Japanese', 'Mandarin', 'French',"
       " 'German'), @t FROM seq_1_to_6",
       "INSERT INTO category SELECT seq, CONCAT('Category ', seq), @t FROM seq_1_to_16",
       "INSERT INTO actor SELECT seq, CONCAT('FIRST', seq), CONCAT('LAST', seq % 37), @t FROM seq_1_to_100",
       "INSERT INTO film SELECT seq, CONCAT('FILM TITLE ', seq), CONCAT('A story about ', seq),"
       " 2000 + seq % 20, 1 + seq % 6, 0.99 + seq % 5, ELT(1 + seq % 5, 'G','PG','PG-13','R','NC-17'),"
       " IF(seq % 3 = 0, 'Trailers,Deleted Scenes', ''), @t FROM seq_1_to_300",
       "INSERT INTO film_text SELECT film_id, title, description FROM film",
       "UPDATE film_text SET description = 'its own text' WHERE film_id % 50 = 0",
       "INSERT INTO film_actor SELECT (f.seq * 7 + k.seq * 13) % 100 + 1, f.seq, @t"
       " FROM seq_1_to_300 f JOIN seq_0_to_2 k",
       "INSERT INTO film_category SELECT seq, 1 + seq % 16, @t FROM seq_1_to_300",
       "INSERT INTO customer SELECT seq, CONCAT('CUST', seq), CONCAT('NAME', seq % 41),"
       " IF(seq % 9 = 0, NULL, CONCAT('c', seq, '@example.org')), seq % 10 <> 0,"
       " '2006-02-14 22:04:36' + INTERVAL seq MINUTE, @t FROM seq_1_to_200",
       "INSERT INTO inventory SELECT seq, 1 + (seq - 1) % 300, @t FROM seq_1_to_600",
       "INSERT INTO rental SELECT seq, '2005-05-24 22:53:30' + INTERVAL seq * 37 MINUTE, seq,"
       " 1 + (seq * 7) % 200, IF(seq % 8 = 0, NULL, '2005-05-26 22:04:30' + INTERVAL seq HOUR), @t"
       " FROM seq_1_to_600",
       "INSERT INTO payment SELECT seq, 1 + (seq * 7) % 200, IF(seq % 25 = 0, NULL, seq), 0.99 + seq % 9,"
       " '2005-05-25 11:30:37' + INTERVAL seq * 41 MINUTE, @t FROM seq_1_to_600",
       *SAKILA_TRIGGERS)


def test_sakila_like_database_copies_then_follows_changes(conns, db_pair):
    """11 tables with foreign keys, sakila's three NOW() triggers and the film/film_text trio:
    a copy into an empty target, then a run after changes on both sides; each converges."""
    admin, _, _ = conns
    src, dst = db_pair
    both(admin, src, dst, *SAKILA)
    _load_sakila_source(admin, src)
    on(admin, dst, *SAKILA_TRIGGERS)

    first = sync(conns, src, dst, SAKILA_TABLES)
    by = {t.table: t for t in first.tables}
    assert {t: by[t].inserted for t in ("film", "customer", "rental", "payment", "film_actor")} == {
        "film": 300, "customer": 200, "rental": 600, "payment": 600, "film_actor": 900}
    assert (by["customer"].corrected, by["rental"].corrected, by["payment"].corrected) == (200, 600, 600)
    # film_text was filled by ins_film before its own comparison, which fixed the 6 texts of its own.
    assert (by["film_text"].inserted, by["film_text"].updated, by["film_text"].deleted) == (0, 6, 0)
    assert trigger_report(first, dst, "ins_film")["fired"] == 300
    assert trigger_report(first, dst, "customer_create_date")["treatment"] == "corrected"
    for t in SAKILA_TABLES:
        assert_same(admin, src, dst, t)
    assert len(foreign_keys(admin, dst)) == 10 and orphans(admin, dst) == {}

    on(admin, src,
       "UPDATE film SET title = CONCAT(title, ' II') WHERE film_id % 40 = 0",  # upd_film on the source too
       "DELETE FROM payment WHERE rental_id IN (SELECT rental_id FROM rental JOIN inventory USING (inventory_id)"
       " WHERE film_id IN (299, 300))",
       "DELETE FROM rental WHERE inventory_id IN (SELECT inventory_id FROM inventory WHERE film_id IN (299, 300))",
       "DELETE FROM inventory WHERE film_id IN (299, 300)",
       "DELETE FROM film_actor WHERE film_id IN (299, 300)",
       "DELETE FROM film_category WHERE film_id IN (299, 300)",
       "DELETE FROM film WHERE film_id IN (299, 300)",
       "INSERT INTO film (film_id, title, description, release_year, language_id)"
       " SELECT seq, CONCAT('NEW FILM ', seq), 'new', 2006, 2 FROM seq_301_to_305",
       "INSERT INTO inventory (inventory_id, film_id) SELECT 600 + seq, 300 + seq FROM seq_1_to_5",
       "INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id)"
       " SELECT 700 + seq, NOW(), 600 + seq, seq FROM seq_1_to_5",
       "INSERT INTO payment (payment_id, customer_id, rental_id, amount, payment_date)"
       " SELECT 700 + seq, seq, 700 + seq, 2.99, NOW() FROM seq_1_to_5",
       "UPDATE customer SET email = CONCAT('new', customer_id, '@example.org') WHERE customer_id % 10 = 0",
       "DELETE FROM payment WHERE payment_id % 17 = 0",
       "DELETE FROM rental WHERE rental_id % 97 = 0",  # SET NULL on their payments (source side)
       "UPDATE film_category SET category_id = 1 WHERE film_id % 23 = 0")
    on(admin, dst,
       "UPDATE film_text SET description = 'drift' WHERE film_id % 30 = 1",
       "UPDATE customer SET first_name = 'DRIFT' WHERE customer_id = 5",
       "DELETE FROM payment WHERE payment_id BETWEEN 100 AND 104")

    second = sync(conns, src, dst, SAKILA_TABLES)
    assert second.rows_synced > 0
    for t in SAKILA_TABLES:
        assert_same(admin, src, dst, t)
    assert orphans(admin, dst) == {}
    third = sync(conns, src, dst, SAKILA_TABLES)
    assert third.rows_synced == 0, third.to_dict()


# -- the CLI, DSN to DSN ----------------------------------------------------------------------------


def cli_dsn(mariadb, db: str) -> str:
    return f"mysql://root@127.0.0.1:{mariadb.port}/{db}?ssl-ca={mariadb.ca_bundle}"


def cli(*args: str):
    from dbrepl.cli import app

    r = CliRunner().invoke(app, list(args), env={"MYSQL_PWD": ""})
    assert "Traceback" not in r.output, r.output
    return r


def test_cli_triggers_refuse_exits_1_naming_the_trigger(conns, db_pair, mariadb):
    admin, _, _ = conns
    src, dst = db_pair
    _film_pair(admin, src, dst)
    before = dump(admin, dst)
    s, d = cli_dsn(mariadb, src), cli_dsn(mariadb, dst)

    r = cli("sync", "data", s, d, "--table", "film", "--table", "film_text", "--triggers", "refuse")
    assert r.exit_code == 1, r.output
    assert f"{dst}.ins_film" in r.output or f"{dst}.del_film" in r.output, r.output
    r = cli("sync", "data", s, d, "--table", "film", "--table", "film_text", "--triggers", "refuse", "--json")
    assert r.exit_code == 1, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "refused" and "ins_film" in body["error"], body
    assert dump(admin, dst) == before

    r = cli("sync", "data", s, d, "--table", "film_text", "--table", "film", "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["status"] == "success" and body["rows_synced"] > 0, body
    assert {e["trigger"] for e in body["triggers"]} >= {f"{dst}.ins_film", f"{dst}.del_film"}, body
    assert body["foreign_keys"] == [], body
    for t in ("film", "film_text"):
        assert_same(admin, src, dst, t)
