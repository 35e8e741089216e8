"""No password in any output, whatever it holds (issue 19, item 2).

A DSN is redacted on its raw text, before any parsing (`redact_dsn`), so a DSN no parser can
read is hidden too; a password holding characters a URL reserves (/ ? # @) is diagnosed as
such (percent-encode them, or MYSQL_PWD), not as a bad port or database. The property test
feeds passwords of every URL-special character and random text through every entry point that
shows a DSN: the CLI (sync and migrate, human and --json), the application layer, the
library's exceptions.
No server is needed: the DSNs that parse point at a closed port.
"""

from __future__ import annotations

import atexit
import json
import shutil
import socket
import tempfile
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dbrepl.app import sync as app_sync
from dbrepl.cli import app
from dbrepl.errors import DbreplError
from dbrepl.sync.connection import parse_dsn, redact_dsn, redact_text
from dbrepl.sync.errors import SyncError

runner = CliRunner()
URL_SPECIAL = list(":/?#[]@!$&'()*+,;=%~ ")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is: connections are refused


CLOSED = _closed_port()
SCRIPTS = tempfile.mkdtemp(prefix="dbrepl-redaction-")  # no scripts: migrate still connects (and fails)
atexit.register(shutil.rmtree, SCRIPTS, True)

passwords = st.text(
    alphabet=st.one_of(st.sampled_from(URL_SPECIAL),
                       st.characters(codec="utf-8", categories=("L", "N", "P", "S"))),
    min_size=1, max_size=24,
).map(lambda text: "Zq7" + text)  # a prefix no message holds by chance


def _leaks(password: str, *texts: str) -> list[str]:
    """The forms of the password found in the texts (as typed, percent-encoded), wrapping undone."""
    forms = {password, quote(password, safe="")}
    found = []
    for text in texts:
        for joined in (text, text.replace("\n", ""), text.replace("\n", " ")):
            found += [f for f in forms if f in joined]
    return found


def _dsns(password: str, database: str = "db1") -> list[str]:
    """The password as typed (unencoded) and percent-encoded, with and without options."""
    return [f"mysql://u:{password}@127.0.0.1:{CLOSED}/{database}",
            f"mysql://u:{quote(password, safe='')}@127.0.0.1:{CLOSED}/{database}",
            f"mysql://u:{password}@127.0.0.1:{CLOSED}/{database}?ssl-mode=disabled",
            f"mysql://u:{password}@127.0.0.1/{database}?ssl-ca=/no/such@file.pem"]


def test_the_issue_example_names_percent_encoding_not_the_port() -> None:
    dsn = "mysql://u:p#s?s:w@127.0.0.1:3421/db1"
    with pytest.raises(SyncError) as info:
        parse_dsn(dsn, {})
    message = str(info.value)
    assert "p#s?s:w" not in message and "invalid port" not in message
    assert "mysql://u:***@127.0.0.1:3421/db1" in message
    assert "percent-encode" in message and "%23" in message and "%3F" in message and "MYSQL_PWD" in message


def test_a_slash_in_the_password_is_not_read_as_a_database() -> None:
    with pytest.raises(SyncError) as info:
        parse_dsn("mysql://u:se/cret@127.0.0.1:3421/db1", {})
    assert "se/cret" not in str(info.value) and "cret" not in str(info.value)
    assert "%2F" in str(info.value)


def test_percent_encoded_passwords_parse_to_the_password() -> None:
    password = "p#s?s:w/@%x"
    endpoint = parse_dsn(f"mysql://u:{quote(password, safe='')}@h:3307/db1", {})
    assert (endpoint.password, endpoint.host, endpoint.port, endpoint.database) == (password, "h", 3307, "db1")


@pytest.mark.parametrize(("dsn", "shown"), [
    ("mysql://u:p@ss@h:1/db", "mysql://u:***@h:1/db"),
    ("mysql://u@h/db", "mysql://u@h/db"),
    ("mysql://u:pw@h/db?ssl-ca=/tmp/a@b/ca.pem", "mysql://u:***@h/db?ssl-ca=/tmp/a@b/ca.pem"),
    ("mysql://u@h/db?ssl-ca=/tmp/a@b/ca.pem", "mysql://u@h/db?ssl-ca=/tmp/a@b/ca.pem"),
    ("mysql://h:secret/db", "mysql://h:***/db"),  # a password typed where the host goes
    ("mysql:/u:secret@h/db", "mysql:***@h/db"),
])
def test_redact_dsn_works_on_the_raw_text(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_an_at_in_the_ca_path_is_not_taken_for_a_password() -> None:
    with pytest.raises(SyncError) as info:
        parse_dsn("mysql://u:pw@h/db?ssl-ca=/no/such@dir/ca.pem", {})
    assert "CA bundle" in str(info.value) and "percent-encode" not in str(info.value)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=passwords)
@example(password="Zq7p#s?s:w")
@example(password="Zq7/@/@")
@example(password="Zq7 a b@c")
@example(password="Zq7\u0101[")  # not latin-1: pymysql failed encoding it
def test_no_password_in_any_output(password: str) -> None:
    dsns = _dsns(password)
    for dsn in dsns:
        other = dsn.replace("/db1", "/db2")
        texts = [redact_dsn(dsn), redact_text(f"({dsn} {other})")]
        try:
            endpoint = parse_dsn(dsn, {})
            texts += [endpoint.display(), repr(endpoint)]
        except SyncError as exc:
            texts.append(str(exc))
        try:
            pair = app_sync.resolve_pair(dsn, other, config=None, suffix=None, environ={})
        except DbreplError as exc:
            texts.append(str(exc))
        else:
            texts.append(json.dumps(app_sync.schema_between_dsns(pair, dry_run=True), default=str))
            texts.append(json.dumps(app_sync.data_between_dsns(pair, ["t"], dry_run=True), default=str))
        commands = [["sync", "schema", dsn, other, "--dry-run", "--json"],
                    ["sync", "data", dsn, other, "--table", "t", "--dry-run"]]
        if dsn == dsns[0]:  # the password as typed: every way the CLI may show it (a CLI run is slow)
            commands += [["sync", "schema", dsn, other, "--dry-run"],
                         ["sync", "data", dsn, other, "--table", "t", "--dry-run", "--json"],
                         ["sync", "schema", dsn, other, other],  # a usage error quotes the argument
                         ["sync", "schema", dsn.replace("mysql://", "mysql:/"), "dev"],
                         ["migrate", "status", dsn, "--scripts", SCRIPTS, "--json"],
                         ["migrate", "apply", dsn, "--scripts", SCRIPTS]]
        for args in commands:
            r = runner.invoke(app, args)
            assert r.exit_code in (1, 2), r.output
            assert "Traceback" not in r.output
            texts.append(r.output)
        assert not _leaks(password, *texts), (dsn, [t for t in texts if _leaks(password, t)])
