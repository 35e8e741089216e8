"""Where a database lives and how to open a connection to it (pymysql only).

Every connection dbrepl opens goes through `connect`, which applies the endpoint's `Tls`:
TLS is required; with a CA bundle the server's certificate chain and host name are verified
against it, without one the connection is encrypted but the server is not authenticated
(`Tls.warning` says so, once per run, in the result).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql

from dbrepl.sync.errors import DatabaseError, InvalidInput
from dbrepl.sync.ident import check_plain_name

DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10
# Lambda stops at 300 s; a statement must fail well before that so the handler can still
# write its SSM record.
READ_TIMEOUT = 240
WRITE_TIMEOUT = 240
# Where a user learns what the TLS warning means and how to turn verification on.
TLS_DOCS = "docs/configuration.md, \"TLS to the databases\""


@dataclass(frozen=True)
class Tls:
    """How a connection uses TLS.

    `enabled` (the default): TLS is required, a server that does not offer it is refused.
    `ca_bundle`: a PEM file of CA certificates; given, the server's certificate must chain to
    one of them and name the host connected to. `enabled=False` only for a DSN that says
    `ssl-mode=disabled` (a local server without TLS).
    """

    ca_bundle: str | None = None
    enabled: bool = True
    # What to do when the server offers no TLS (a DSN: the exact DSN with ?ssl-mode=disabled).
    no_tls_fix: str = field(default="turn TLS on in the server (ssl_cert, ssl_key)", compare=False)

    @property
    def mode(self) -> str:
        """`verified`, `unverified` or `off`: what a result reports."""
        if not self.enabled:
            return "off"
        return "verified" if self.ca_bundle else "unverified"

    def warning(self, label: str, fix: str, found: str | None = None) -> str | None:
        """The line a run prints when the connection to `label` is not verified (None when it is);
        `found`: what the handshake gave (e.g. TLSv1.3). Printed only once a connection is made
        (`handshake_warning`): before that nothing is known about the server's TLS."""
        if not self.enabled:
            return f"TLS to {label} is off: the password and the data travel in plain text ({fix})"
        if not self.ca_bundle:
            what = f" (encrypted with {found}, but the server's certificate was not checked)" if found else ""
            return f"TLS to {label} is not verified{what}: {fix} (see {TLS_DOCS})"
        return None

    def context(self) -> ssl.SSLContext:
        """The SSL context of a connection (TLS 1.2 or newer)."""
        if self.ca_bundle:
            try:
                ctx = ssl.create_default_context(cafile=self.ca_bundle)  # chain and host name checked
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput(f"cannot read the CA bundle {self.ca_bundle}: {exc}; point it at a PEM file "
                                   "of CA certificates") from None
            # Python 3.13 turns on VERIFY_X509_STRICT, which refuses some CA certificates still in
            # use (pymysql clears it too); the chain and the host name are still checked.
            ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


@dataclass(frozen=True)
class Endpoint:
    """Host, port and credentials of one MySQL/MariaDB server; `database` is optional."""

    host: str
    port: int = DEFAULT_PORT
    user: str = ""
    # repr=False: an Endpoint ends up in logs, tracebacks and test output.
    password: str = field(default="", repr=False)
    database: str | None = None
    tls: Tls = Tls()

    def with_database(self, database: str | None) -> Endpoint:
        return replace(self, database=database)

    def display(self) -> str:
        """A DSN for messages, never with the password."""
        db = f"/{self.database}" if self.database else ""
        return f"mysql://{self.user}@{self.host}:{self.port}{db}"


DSN_SSL_MODES = ("required", "verify_identity", "disabled")
DSN_TLS_FIX = "add ?ssl-ca=PATH to the DSN to verify the server"
DSN_TLS_OFF = "ssl-mode=disabled in the DSN"


def handshake_warning(label: str, endpoint: Endpoint, conn: Any, fix: str) -> str | None:
    """`Tls.warning` for a connection `connect` opened, naming the TLS version it found."""
    sock = getattr(conn, "_sock", None)
    found = sock.version() if isinstance(sock, ssl.SSLSocket) else None
    return endpoint.tls.warning(label, fix if endpoint.tls.enabled else DSN_TLS_OFF, found)


def parse_dsn(dsn: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Parse `mysql://user[:password]@host[:port]/database[?ssl-ca=PATH&ssl-mode=MODE]`; the
    password may come from MYSQL_PWD.

    TLS as in MySQL's own clients: `ssl-mode=required` (the default: encrypted, unverified),
    `ssl-ca=PATH` (verified against that CA bundle: chain and host name; `ssl-mode` is then
    `verify_identity`), `ssl-mode=disabled` (plain text, for a local server without TLS).
    Every message shows the DSN through `redact_dsn` (the raw text, before any parsing).
    """
    environ = os.environ if environ is None else environ
    if not isinstance(dsn, str) or not dsn.startswith("mysql://"):
        raise InvalidInput("a DSN must look like mysql://user[:password]@host[:port]/database")
    shown = redact_dsn(dsn)
    _check_userinfo(dsn, shown)
    try:
        parts = urlsplit(dsn)
        host = parts.hostname
    except ValueError:  # brackets that are not an IPv6 address
        raise InvalidInput(f"DSN {shown}: the host is not a name, an IPv4 address or [IPv6]") from None
    if not host:
        raise InvalidInput(f"DSN {shown} has no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidInput(f"DSN {shown} has an invalid port: write host:PORT with PORT a number") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise InvalidInput(f"DSN {shown} names no database (mysql://user@host:port/database)")
    check_plain_name(database, "database")
    if parts.fragment or "/" in database:
        raise InvalidInput(f"DSN {shown}: only one database name may follow the host")
    tls = _dsn_tls(parts.query, shown)
    password = unquote(parts.password) if parts.password is not None else environ.get("MYSQL_PWD", "")
    endpoint = Endpoint(
        host=host, port=port, user=unquote(parts.username or ""),
        password=password, database=database, tls=tls,
    )
    if not tls.enabled:
        return endpoint
    # The DSN as it would run in plain text (the password from MYSQL_PWD: never printed).
    fix = (f"if it is a local server without TLS, connect in plain text with {endpoint.display()}?ssl-mode=disabled"
           + (" (and MYSQL_PWD=... for the password)" if parts.password is not None else ""))
    return replace(endpoint, tls=replace(tls, no_tls_fix=fix))


# Characters a URL reserves that end the user:password part early when left unencoded (/ ? # @),
# or that Python's URL parser refuses there ([ ]: IPv6 brackets).
_URL_RESERVED = {"/": "%2F", "?": "%3F", "#": "%23", "@": "%40", "[": "%5B", "]": "%5D"}
PASSWORD_ENCODING_FIX = ("percent-encode them in the DSN ({}), or leave the password out of the DSN "
                         "and set MYSQL_PWD")


def _check_userinfo(dsn: str, shown: str) -> None:
    """A user:password holding / ? # or @ unencoded is cut short by every URL parser, which then
    misreads the rest (a "port" or a "database" made of the password): say what it is."""
    userinfo = _userinfo(dsn)
    if userinfo is None:
        return
    found = [c for c in _URL_RESERVED if c in userinfo]
    if found:
        codes = ", ".join(f"{c} as {_URL_RESERVED[c]}" for c in found)
        raise InvalidInput(f"DSN {shown}: the user or password holds characters a URL reserves; "
                           + PASSWORD_ENCODING_FIX.format(codes))


def _userinfo(text: str) -> str | None:
    """What stands between `scheme://` (or the start) and the LAST `@`: user[:password], or None.

    The last `@`, not the first: an unencoded `@` (or `/`, `?`, `#`) may sit in a password;
    but an `@` in the options (`?ssl-ca=/path/with@sign`) is not, when `@host/db?ssl-...`
    stands before them. Any other doubt hides more than the password, never less.
    """
    start = text.find("://")
    start = 0 if start < 0 else start + 3
    options = [m.start() for m in _BEFORE_OPTIONS.finditer(text, start)]
    at = options[-1] if options else text.rfind("@", start)
    return None if at < 0 else text[start:at]


# `@host[:port]/database?ssl-`: where the options start in a DSN whose path holds an `@`.
_BEFORE_OPTIONS = re.compile(r"@[^@/?#]+/[^@/?#]*\?ssl-(?:ca|mode)=", re.IGNORECASE)


def redact_dsn(text: str) -> str:
    """`text` (a DSN as given, parsable or not) safe to print: `user:***@...`.

    Works on the raw string, before any parsing, so a DSN no parser can read is hidden too:
    everything between the first `:` after `scheme://` and the last `@` is the password. Without
    an `@`, a `host:xxx` whose xxx is not a port (a password typed without a host) is hidden too.
    """
    if not isinstance(text, str):
        return "***"
    start = text.find("://")
    start = 0 if start < 0 else start + 3
    userinfo = _userinfo(text)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        rest = text[start + len(userinfo):]
        return text[:start] + user + (":***" if colon else "") + rest
    authority = re.split(r"[/?#]", text[start:], maxsplit=1)[0]
    host, colon, port = authority.partition(":")
    if colon and not port.isdigit():
        return text[:start] + host + ":***" + text[start + len(authority):]
    return text


def _dsn_tls(query: str, shown: str) -> Tls:
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise InvalidInput(f"DSN {shown}: options must be written ?ssl-ca=PATH&ssl-mode=MODE") from None
    unknown = sorted(set(options) - {"ssl-ca", "ssl-mode"})
    if unknown:
        raise InvalidInput(f"DSN {shown}: unknown option {unknown[0]!r}; the DSN takes ssl-ca and ssl-mode")
    mode = options.get("ssl-mode", "").lower().replace("-", "_")
    ca = options.get("ssl-ca")
    if mode and mode not in DSN_SSL_MODES:
        raise InvalidInput(f"DSN {shown}: ssl-mode must be one of {', '.join(DSN_SSL_MODES)}")
    if mode == "disabled":
        if ca is not None:
            raise InvalidInput(f"DSN {shown}: ssl-mode=disabled and ssl-ca contradict each other; drop one")
        return Tls(enabled=False)
    if mode == "verify_identity" and not ca:
        raise InvalidInput(f"DSN {shown}: ssl-mode=verify_identity needs ssl-ca=PATH (the server's CA bundle)")
    if ca is not None:
        if not ca or not os.path.isfile(ca):
            raise InvalidInput(f"DSN {shown}: CA bundle {ca!r} not found; give the path of a PEM file (ssl-ca=PATH)")
        return Tls(ca_bundle=os.path.abspath(ca))
    return Tls()


def redact_text(text: str) -> str:
    """Free text (a usage error quoting the command line) with every DSN-like word redacted:
    `redact_dsn` for a word with `://`, everything before the last `@` for another word with one."""
    def one(word: str) -> str:
        if "://" in word:
            return redact_dsn(word)
        if "@" in word:
            return "***" + word[word.rfind("@"):]
        return word

    return "".join(one(w) for w in re.split(r"(\s+)", text))


def connect(
    endpoint: Endpoint, database: str | None = None, *, autocommit: bool = True,
    select_database: bool = True,
) -> pymysql.connections.Connection:
    """Open a utf8mb4 connection with bounded timeouts and the endpoint's TLS; failures raise
    DatabaseError. The one place dbrepl opens a database connection.

    `select_database=False` connects without a current database: a schema sync qualifies
    every name and may have to create the DSN's database first.
    """
    db = (database if database is not None else endpoint.database) if select_database else None
    shown = endpoint.with_database(db).display()
    tls = endpoint.tls
    # An SSLContext makes pymysql require TLS (no silent fall-back to plain text).
    options: dict[str, Any] = {"ssl": tls.context()} if tls.enabled else {"ssl_disabled": True}
    try:
        conn = pymysql.connect(
            host=endpoint.host, port=endpoint.port, user=endpoint.user,
            # bytes: pymysql would encode a str as latin-1 and fail on any other character
            password=endpoint.password.encode("utf-8"), database=db, charset="utf8mb4",
            autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT, write_timeout=WRITE_TIMEOUT, **options,
        )
    except pymysql.err.MySQLError as exc:
        # The pymysql message never contains the password; the endpoint display neither.
        raise DatabaseError(f"Failed to connect to {shown}: {_why(exc, tls)}") from exc
    # pymysql before 2.2 went on in plain text when the server offered no TLS: check.
    if tls.enabled and not isinstance(getattr(conn, "_sock", None), ssl.SSLSocket):
        conn.close()
        raise DatabaseError(f"Failed to connect to {shown}: the server does not offer TLS, which dbrepl requires; "
                            f"{tls.no_tls_fix}")
    return conn


def _why(exc: pymysql.err.MySQLError, tls: Tls) -> str:
    """The reason of a failed connect, with TLS failures named as such."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        detail = getattr(cause, "verify_message", None) or text
        return (f"TLS verification failed: the server's certificate does not verify against the CA bundle "
                f"{tls.ca_bundle} ({detail}); is it the CA of this server?")
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed ({cause.reason or cause})"
    if "SSL is required but the server doesn't support it" in text:
        return f"the server does not offer TLS, which dbrepl requires; {tls.no_tls_fix}"
    code = exc.args[0] if exc.args else None
    if not tls.enabled and code in (1045, 3159):  # MariaDB says access denied, MySQL insecure transport
        return (f"{exc}; the connection was plain text (ssl-mode=disabled): a server that requires TLS "
                "(require_secure_transport) refuses it, drop ssl-mode=disabled from the DSN")
    return str(exc)
