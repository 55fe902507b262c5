"""The SQL gate's text rules: exactly one SELECT statement, a trailing semicolon dropped, and
the one CREATE ... AS SELECT form the SQL box accepts."""

from __future__ import annotations

import re

import duckdb

from studio_core.common.errors import StudioError
from studio_core.data.duckerrors import _one_line

TRAILING_SEMICOLON = re.compile(r";(?:\s|--[^\n]*)*$")  # a final ';', even with comments after it
READ_ONLY_CREATE = re.compile(
    r'\s*(?P<head>CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?'
    r'(?P<name>"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)\s+AS)\s+(?P<body>(?:\(\s*)?(?:SELECT|WITH|FROM|VALUES|TABLE)\b.*)', re.I | re.S)


def single_select(sql: str, field: str) -> str:
    """``sql`` if it is exactly one SELECT/WITH statement (trailing ``;`` dropped), else a
    StudioError: a query that is pasted into ``(...)`` elsewhere must not be able to close the
    parenthesis and run a second statement."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise StudioError(f"{field}: {_one_line(exc)}; fix the query") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise StudioError(f"{field} must be one SELECT query; remove other statements and semicolons")
    return TRAILING_SEMICOLON.sub("", sql.strip()).strip()
