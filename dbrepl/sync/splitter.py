"""Split SQL scripts into statements the way the `mysql` client does (docs/corrections.md, item 9).

Written here rather than taken from a library: sqlparse (the usual choice) does not know the
client-side DELIMITER command and would be one more dependency in the Lambda bundle; the
lexical rules we need are few and are tested in tests/sync/test_splitter.py:

- strings '...' and "..." (backslash escapes and doubled quotes), identifiers `...`;
- comments `-- ` (dash dash then whitespace or end of line), `#`, `/* ... */`; executable
  comments `/*! ... */` and `/*M! ... */` are kept, the server runs them;
- `DELIMITER xx` at the start of a line changes the statement terminator (stored programs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from dbrepl.sync.errors import InvalidInput


class Token(NamedTuple):
    kind: str  # space, comment, vcomment, string, ident, word, punct
    text: str


_DELIMITER_LINE = re.compile(r"[ \t]*delimiter[ \t]+(\S+)[ \t]*(?:\r?\n|$)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9_$@.:]+|[^\sA-Za-z0-9_$@.:'\"`()#,;/*-]+|[/*-]")
_PUNCT = "(),;"


def _end_of_quoted(text: str, i: int) -> int:
    """Index just past the quoted string or identifier opening at text[i]."""
    quote = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\" and quote != "`":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and text[j + 1] == quote:  # doubled quote stands for itself
                j += 2
                continue
            return j + 1
        j += 1
    raise InvalidInput(f"unterminated {'identifier' if quote == '`' else 'string'} starting {text[i:i + 30]!r}")


def _comment_end(text: str, i: int) -> int | None:
    """If a comment starts at text[i], the index just past it, else None."""
    c = text[i]
    if c == "#":
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("--", i) and (i + 2 == len(text) or text[i + 2] in " \t\r\n\f\v"):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        if j < 0:
            raise InvalidInput(f"unterminated comment starting {text[i:i + 30]!r}")
        return j + 2
    return None


def tokenize(text: str) -> Iterator[Token]:
    """Yield the lexical tokens of `text`; joining their texts gives `text` back."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            yield Token("space", text[i:j])
        elif c in "'\"`":
            j = _end_of_quoted(text, i)
            yield Token("ident" if c == "`" else "string", text[i:j])
        elif (end := _comment_end(text, i)) is not None:
            j = end
            body = text[i:j]
            kind = "vcomment" if body.startswith(("/*!", "/*M!")) else "comment"
            yield Token(kind, body)
        elif c in _PUNCT:
            j = i + 1
            yield Token("punct", c)
        else:
            m = _WORD.match(text, i)
            j = m.end() if m else i + 1
            yield Token("word", text[i:j])
        i = j


def split_statements(text: str) -> list[str]:
    """Statements of a script, without terminators; comment-only pieces are dropped."""
    statements: list[str] = []
    delimiter = ";"
    i, n = 0, len(text)
    start = 0
    code_seen = False  # has the current statement anything but whitespace and comments?
    line_start = True
    while i < n:
        if line_start and not code_seen:
            m = _DELIMITER_LINE.match(text, i)
            if m:
                delimiter = m.group(1)
                i = start = m.end()
                continue
        c = text[i]
        line_start = False
        if text.startswith(delimiter, i):
            _add(statements, text[start:i])
            i = start = i + len(delimiter)
            code_seen = False
            continue
        if c in "'\"`":
            i = _end_of_quoted(text, i)
            code_seen = True
        elif (j := _comment_end(text, i)) is not None:
            # An executable comment is code; a delimiter inside any comment ends nothing.
            code_seen = code_seen or text.startswith(("/*!", "/*M!"), i)
            i = j
        else:
            code_seen = code_seen or not c.isspace()
            line_start = c == "\n"
            i += 1
    _add(statements, text[start:])
    return statements


def _has_code(piece: str) -> bool:
    return any(t.kind not in ("space", "comment") for t in tokenize(piece))


def _add(statements: list[str], piece: str) -> None:
    if _has_code(piece):
        statements.append(piece.strip())


def normalise_statement(statement: str) -> str:
    """The statement with comments removed and whitespace runs outside quotes collapsed.

    Two scripts that differ only in comments, indentation or line endings normalise to the
    same text; any change to what the server would run changes it.
    """
    out: list[str] = []
    for tok in tokenize(statement):
        if tok.kind in ("comment", "space"):
            # Whitespace next to ( ) , ; never matters; elsewhere one space stands for any run.
            if out and out[-1] != " " and out[-1] not in _PUNCT:
                out.append(" ")
        else:
            if tok.kind == "punct" and out and out[-1] == " ":
                out.pop()
            out.append(tok.text)
    return "".join(out).strip()


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside parentheses, quotes and comments (for column lists)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for tok in tokenize(text):
        if tok.kind == "punct":
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
            elif tok.text == separator and depth == 0:
                parts.append("".join(current).strip())
                current = []
                continue
        current.append(tok.text)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return parts


def matching_paren(text: str, open_index: int) -> int:
    """Index of the parenthesis closing the one at text[open_index]."""
    depth = 0
    pos = open_index
    for tok in tokenize(text[open_index:]):
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
            if depth == 0:
                return pos
        pos += len(tok.text)
    raise InvalidInput(f"unbalanced parentheses in {text[open_index:open_index + 40]!r}")
