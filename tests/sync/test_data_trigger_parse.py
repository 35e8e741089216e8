"""How trigger bodies are read (no server): what they write, rewrite, signal and call, and
how the plan orders and refuses. The behaviour on a real server is in test_data_triggers.py."""

from __future__ import annotations

import pytest

from dbrepl.sync.data.triggers import TriggersRefused, order_tables, parse_trigger, plan_triggers


def trig(body: str, timing: str = "AFTER", event: str = "INSERT", table: str = "t", name: str = "tr"):
    return parse_trigger("db", name, ("db", table), timing, event, body)


def test_writes_are_found_with_their_kind_and_database():
    t = trig("BEGIN INSERT INTO audit (a) VALUES (NEW.id); UPDATE other.x SET n = n + 1 WHERE id = NEW.id;"
             " DELETE FROM `we``ird` WHERE id = NEW.id; REPLACE INTO r VALUES (1); END")
    assert t.writes == ((("db", "audit"), "INSERT"), (("db", "r"), "REPLACE"),
                        (("other", "x"), "UPDATE"), (("db", "we`ird"), "DELETE"))
    assert not t.rewrites and not t.signals and not t.calls


@pytest.mark.parametrize("body", [
    "SET @x = (SELECT v FROM a WHERE id = NEW.id FOR UPDATE)",
    "INSERT INTO a (id) VALUES (NEW.id) ON DUPLICATE KEY UPDATE n = n + 1",
    "SET @s = 'INSERT INTO b VALUES (1)'",  # a string, not a statement
    "SET @s = 1 -- DELETE FROM b\n",
    "SET @s = 1 /* UPDATE b SET x = 1 */",
    "SET @s = INSERT('abc', 1, 1, 'x')",  # the string function
])
def test_what_only_looks_like_a_write_is_not_one(body):
    writes = [w for w, _ in trig(body).writes]
    assert ("db", "b") not in writes
    if "ON DUPLICATE" in body:
        assert writes == [("db", "a")]  # the INSERT, not `n` from the UPDATE clause


@pytest.mark.parametrize("body, cols", [
    ("SET NEW.created = NOW()", ("created",)),
    ("BEGIN SET NEW.a = 1, NEW.`b c` := 2; END", ("a", "b c")),
    ("BEGIN SELECT NOW() INTO NEW.stamp; END", ("stamp",)),
    ("BEGIN IF NEW.a = 1 THEN SET @x = 1; END IF; END", ()),  # a comparison, not an assignment
    ("UPDATE other SET v = NEW.v WHERE id = NEW.id", ()),
])
def test_rewrites_are_assignments_to_new_in_before_triggers(body, cols):
    assert trig(body, timing="BEFORE").rewrites == cols
    assert trig(body, timing="AFTER").rewrites == ()


def test_signal_and_call_are_seen_outside_strings_only():
    assert trig("SIGNAL SQLSTATE '45000'").signals
    assert trig("BEGIN IF NEW.a < 0 THEN RESIGNAL; END IF; END").signals
    assert not trig("SET @m = 'SIGNAL'").signals
    assert trig("CALL db2.p(NEW.id)").calls == ("db2.p",)


def test_plan_corrects_orders_and_refuses():
    stamp = trig("SET NEW.created = NOW()", timing="BEFORE", table="c", name="stamp")
    film = trig("INSERT INTO film_text VALUES (NEW.id)", table="film", name="ins_film")
    plan = plan_triggers([stamp, film], [("db", "film_text"), ("db", "film"), ("db", "c")], "correct")
    assert plan.needs_correction(("db", "c")) and not plan.needs_correction(("db", "film"))
    assert plan.edges == {(("db", "film"), ("db", "film_text"))}
    tables = [("db", "film_text"), ("db", "film"), ("db", "c")]
    assert [tables[i] for i in order_tables(tables, plan.edges)] == [("db", "film"), ("db", "film_text"), ("db", "c")]

    rewrite_on_update = trig("SET NEW.created = NOW()", timing="BEFORE", event="UPDATE", table="c", name="upd")
    with pytest.raises(TriggersRefused) as e:
        plan_triggers([stamp, rewrite_on_update], [("db", "c")], "correct")
    assert "db.upd (BEFORE UPDATE on db.c)" in str(e.value) and "db.stamp" in str(e.value)
    assert e.value.triggers[0]["trigger"] == "db.upd"

    # The same UPDATE trigger is harmless when nothing is corrected: the sync never updates.
    assert plan_triggers([rewrite_on_update], [("db", "c")], "correct").fired == set()
    with pytest.raises(TriggersRefused, match="--triggers refuse"):
        plan_triggers([film], [("db", "film")], "refuse")
    assert plan_triggers([trig("SIGNAL SQLSTATE '45000'", name="no")], [("db", "t")], "allow").fired == {("db", "no")}


def test_a_cycle_through_an_unsynced_table_is_refused():
    a = trig("INSERT INTO hop VALUES (NEW.id)", table="a", name="a_hop")
    hop = trig("DELETE FROM b WHERE id = NEW.id", table="hop", name="hop_b")
    b = trig("INSERT INTO a VALUES (OLD.id)", event="DELETE", table="b", name="b_a")
    with pytest.raises(TriggersRefused, match="come back"):
        plan_triggers([a, hop, b], [("db", "a"), ("db", "b")], "correct")
