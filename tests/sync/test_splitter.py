"""The SQL splitter: quotes, comments and DELIMITER blocks, as the mysql client splits."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbrepl.sync.errors import InvalidInput
from dbrepl.sync.splitter import normalise_statement, split_statements, split_top_level, tokenize


def test_semicolons_inside_quotes_and_identifiers_do_not_split():
    sql = """INSERT INTO t VALUES ('a;b', "c;d", 'it''s;', 'back\\\\'';x');
SELECT `we;ird` FROM `t``;`;"""
    assert split_statements(sql) == [
        """INSERT INTO t VALUES ('a;b', "c;d", 'it''s;', 'back\\\\'';x')""",
        "SELECT `we;ird` FROM `t``;`",
    ]


def test_backslash_escaped_quote_stays_inside_the_string():
    assert split_statements("SELECT 'a\\';b'; SELECT 2") == ["SELECT 'a\\';b'", "SELECT 2"]


def test_comments():
    sql = """-- leading; comment
SELECT 1; # hash; comment
/* block ; comment */ SELECT 2 /* inline; */ ;
SELECT 3 --not-a-comment
; -- only a comment;
/* nothing here; */"""
    parts = split_statements(sql)
    assert [normalise_statement(p) for p in parts] == ["SELECT 1", "SELECT 2", "SELECT 3 --not-a-comment"]
    assert len(parts) == 3


def test_executable_comments_are_code():
    assert split_statements("/*!40101 SET NAMES utf8mb4 */;\n/* just a comment */;") == [
        "/*!40101 SET NAMES utf8mb4 */"]


def test_delimiter_blocks():
    sql = """CREATE TABLE t (id INT);
DELIMITER $$
CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN
  SET NEW.id = NEW.id + 1; -- inner ; statements
  IF NEW.id > 10 THEN SET NEW.id = 10; END IF;
END$$
delimiter //
CREATE PROCEDURE p() BEGIN SELECT '$$;//'; END//
DELIMITER ;
SELECT 1;"""
    parts = split_statements(sql)
    assert len(parts) == 4
    assert parts[0] == "CREATE TABLE t (id INT)"
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END")
    assert "SET NEW.id = 10;" in parts[1]
    assert parts[2] == "CREATE PROCEDURE p() BEGIN SELECT '$$;//'; END"
    assert parts[3] == "SELECT 1"


def test_crlf_and_missing_final_terminator():
    assert split_statements("SELECT 1;\r\nSELECT 2\r\n") == ["SELECT 1", "SELECT 2"]


def test_unterminated_string_or_comment_is_refused():
    with pytest.raises(InvalidInput):
        split_statements("SELECT 'abc; SELECT 2;")
    with pytest.raises(InvalidInput):
        split_statements("SELECT 1 /* open")


def test_normalise_collapses_layout_but_not_strings():
    assert normalise_statement("CREATE TABLE t (\n  a INT ,\n  b INT -- x\n)") == "CREATE TABLE t(a INT,b INT)"
    assert normalise_statement("SELECT 'a   b'") == "SELECT 'a   b'"


def test_split_top_level_respects_parentheses_and_quotes():
    assert split_top_level("a INT, b ENUM('x,y','z'), c DECIMAL(10,2) COMMENT 'a,b'") == [
        "a INT", "b ENUM('x,y','z')", "c DECIMAL(10,2) COMMENT 'a,b'"]


_text = st.text(alphabet=st.sampled_from(list("ab;'\"`\\-#/*$ \n")), max_size=12)


@given(st.lists(_text, min_size=1, max_size=5))
def test_quoted_values_survive_splitting(values):
    """Any value, properly quoted, stays inside its statement."""
    def q(v: str) -> str:
        return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"

    statements = [f"INSERT INTO t VALUES ({q(v)})" for v in values]
    assert split_statements(";\n".join(statements) + ";") == statements


@given(st.text(max_size=60))
def test_tokenize_is_lossless(text):
    with contextlib.suppress(InvalidInput):  # unterminated quote or comment
        assert "".join(t.text for t in tokenize(text)) == text
